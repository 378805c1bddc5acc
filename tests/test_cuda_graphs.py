"""`cnnc.compile(..., cuda_graphs=True)` / `backends.cuda_graphs.CUDAGraphed`: inference as CUDA
graph replays. Capture needs a GPU (the `cuda` test); without one, what is checked is the wrapper's
contract: eval only, CUDA inputs only, the module's own state_dict, the kernel policy it sets."""
import pytest
import torch

import cnnc
from cnnc.backends import runtime
from cnnc.backends.cuda_graphs import CUDAGraphed
from cnnc.kernels import Policy
from cnnc_testlib import TEST_SPECS

pytest.importorskip("lark")
SPEC = TEST_SPECS / "codegen_tiny.cnn"


def test_compile_with_cuda_graphs_wraps_the_module():
    model = cnnc.compile(SPEC, fused=True, cuda_graphs=True, kernel_policy="dw_forward=taps")
    plain = cnnc.compile(SPEC, fused=True)
    assert isinstance(model, CUDAGraphed) and model.graphs() == 0
    assert model.cnnc_spec == plain.cnnc_spec
    # the same state_dict, under the same names, in and out
    assert list(model.state_dict()) == list(plain.state_dict())
    model.load_state_dict(plain.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), plain.state_dict().values()))
    # dispatch decided by device time (replays pay no host time), the rest of the policy kept
    layers = [m for m in model.modules() if isinstance(m, (runtime.Conv2d, runtime.FusedConv2d))]
    assert layers and all(m.kernel_policy == Policy(dw_forward="taps", dispatch_timing="device") for m in layers)


def test_contract_without_a_gpu():
    model = CUDAGraphed(torch.nn.Conv2d(3, 4, 3))
    with pytest.raises(RuntimeError, match="eval mode only"):
        model(torch.randn(1, 3, 8, 8))
    model.eval()
    with pytest.raises(ValueError, match="every input must be a CUDA tensor"):
        model(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="warmup"):
        CUDAGraphed(torch.nn.Conv2d(3, 4, 3), warmup=0)


@pytest.mark.cuda
def test_replays_compute_the_forward():
    net = cnnc.compile(SPEC, fused=True).cuda().eval()
    model = CUDAGraphed(net)
    for shape in ((2, 3, 32, 32), (2, 3, 32, 32), (1, 3, 32, 32)):
        x = torch.randn(shape, device="cuda")
        with torch.no_grad():
            want = net(x)
        got = model(x)
        torch.testing.assert_close(got[0] if isinstance(got, tuple) else got,
                                   want[0] if isinstance(want, tuple) else want)
    assert model.graphs() == 2  # one per input shape
    model.reset()
    assert model.graphs() == 0
