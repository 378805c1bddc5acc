"""kernels.conv2d under torch.compile(fullgraph=True) and torch.export, and backend choice
without the interpreter."""

import importlib
import json
import os
import subprocess
import sys
import pytest

import torch

from cnnc import kernels
from kernels_testlib import DEVICE

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class DepthwiseBlock(torch.nn.Module):
    """What generated code looks like: conv + folded BN + activation + residual, one call."""

    def __init__(self, channels=8):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(channels, 1, 3, 3, generator=g) / 3)
        self.scale = torch.nn.Parameter(torch.rand(channels, generator=g) + 0.5)
        self.shift = torch.nn.Parameter(torch.randn(channels, generator=g))

    def forward(self, x):
        y = kernels.conv2d(x, self.weight, padding=1, groups=x.shape[1], scale=self.scale,
                           shift=self.shift, activation="silu", residual=x)
        return y * 2


@pytest.mark.slow
def test_torch_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()
    block = DepthwiseBlock().to(DEVICE)
    x = torch.randn(2, 8, 6, 6, device=DEVICE, requires_grad=True)
    compiled = torch.compile(block, fullgraph=True)
    y = compiled(x)
    y.square().sum().backward()
    got = (x.grad.clone(), block.weight.grad.clone(), block.scale.grad.clone())
    x.grad = None
    block.zero_grad()
    y_eager = block(x)
    y_eager.square().sum().backward()
    torch.testing.assert_close(y, y_eager)
    for a, b in zip(got, (x.grad, block.weight.grad, block.scale.grad)):
        torch.testing.assert_close(a, b)


def test_torch_export_keeps_one_op():
    block = DepthwiseBlock().to(DEVICE).eval()
    x = torch.randn(2, 8, 6, 6, device=DEVICE)
    exported = torch.export.export(block, (x,))
    targets = [n.target for n in exported.graph.nodes if n.op == "call_function"]
    assert torch.ops.cnnc_kernels.conv2d.default in targets
    x2 = torch.randn(2, 8, 6, 6, device=DEVICE)
    torch.testing.assert_close(exported.module()(x2), block(x2))


@pytest.mark.slow
def test_cpu_without_interpreter_uses_torch():
    """A CPU call in a process without TRITON_INTERPRET takes the torch fallback."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    code = ("import torch\nfrom cnnc import kernels\n"
            "x = torch.randn(1, 4, 5, 5); w = torch.randn(4, 1, 3, 3)\n"
            "y = kernels.conv2d(x, w, padding=1, groups=4, activation='relu')\n"
            "ref = torch.relu(torch.nn.functional.conv2d(x, w, padding=1, groups=4))\n"
            "assert torch.allclose(y, ref, atol=1e-6)\n"
            "print(kernels.backend_for(x, w, groups=4), kernels.INTERPRET)\n")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["torch", "False"]


# ---------------------------------------------------------------------------
# The eager path: outside any tracer, `kernels.conv2d` calls the operators' bodies directly
# (host time); anything that may trace takes the registered operators.
# ---------------------------------------------------------------------------
def test_eager_path_taken_only_outside_tracers():
    from torch._subclasses.fake_tensor import FakeTensorMode

    conv2d_module = importlib.import_module("cnnc.kernels.conv2d")
    eager = conv2d_module._eager
    x, w = torch.randn(1, 4, 5, 5), torch.nn.Parameter(torch.randn(4, 1, 3, 3))
    assert eager(x, w, None)
    with FakeTensorMode():
        assert not eager(torch.empty(1, 4, 5, 5), w)
    with torch.device("cpu"):  # a torch-function mode
        assert not eager(x, w)
    assert torch.func.vmap(lambda t: torch.tensor(eager(t, w)))(x.unsqueeze(0)).all().item() is False

    class Sub(torch.Tensor):
        pass

    assert not eager(x.as_subclass(Sub), w)


@pytest.mark.parametrize("groups", [4, 2])
def test_eager_path_equals_the_operator(groups):
    """Same forward and gradients, bit for bit, through `kernels.conv2d` (eager path) and
    through the registered operator (what torch.compile and export see)."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 7, 6, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    w = torch.randn(8, 4 // groups, 3, 3, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    scale = (torch.rand(8, generator=g, dtype=torch.float64) + 0.5).to(DEVICE).requires_grad_()
    shift = torch.randn(8, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    residual = torch.randn(2, 8, 4, 3, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    leaves = (x, w, scale, shift, residual)
    eager = kernels.conv2d(x, w, stride=2, padding=1, groups=groups, scale=scale, shift=shift,
                           residual=residual, activation="silu")
    op = torch.ops.cnnc_kernels.conv2d(x, w, [2, 2], [1, 1], [1, 1], groups, scale, shift, "silu", residual,
                                       kernels.default_policy().key)
    assert torch.equal(eager, op)
    assert type(eager.grad_fn).__name__ != type(op.grad_fn).__name__  # two different autograd routes
    go = torch.randn(op.shape, generator=g, dtype=torch.float64).to(DEVICE)
    for a, b in zip(torch.autograd.grad(eager, leaves, go), torch.autograd.grad(op, leaves, go)):
        assert torch.equal(a, b)
    with torch.no_grad():
        assert torch.equal(kernels.conv2d(x, w, stride=2, padding=1, groups=groups, scale=scale, shift=shift,
                                          residual=residual, activation="silu"), op)


# ---------------------------------------------------------------------------
# torch.compile on a GPU, traced on the CPU with fake CUDA tensors (tools/trace_kernels.py): the
# kernels become launches Inductor makes itself (the triton_op), with no graph break, nothing
# copied for them, and the filter re-layout and BatchNorm fold on the weights alone (freezing
# folds those into constants)
# ---------------------------------------------------------------------------
def _trace(*args):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    run = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tools", "trace_kernels.py"), *args],
                         env=env, capture_output=True, text=True, timeout=1200, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr[-4000:]
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_compiled_graph_launches_the_kernels_itself():
    pytest.importorskip("lark")
    block, mobilenet = _trace("--models", "block", "mobilenet_v2")
    assert block["frames"] == 1 and block["graphs"] == 1  # fullgraph: no break
    assert block["triton_launches"] == {"depthwise_conv2d_kernel": 1, "grouped_conv2d_kernel": 1}
    assert block["cloned_inputs"] == [] and block["opaque_cnnc_ops"] == {}
    assert block["aten_convolutions"] == 1  # the dense conv: cuDNN
    # the depthwise tap-major copy (t + clone), the grouped permute (+ clone) and the BatchNorm fold
    # depend on the weights only, and feed the launches (weight, scale, shift of each)
    ops = block["weight_only_ops"]
    assert ops["t.default"] >= 1 and ops["permute.default"] == 1 and ops["clone.default"] == 2 and ops["rsqrt.default"] == 3
    assert block["weight_only_into_launches"] == 6
    # a whole network: its 17 depthwise convs, one graph
    assert mobilenet["frames"] == 1 and mobilenet["graphs"] == 1
    assert mobilenet["triton_launches"] == {"depthwise_conv2d_kernel": 17}
    assert mobilenet["cloned_inputs"] == [] and mobilenet["opaque_cnnc_ops"] == {}
    assert mobilenet["weight_only_ops"]["clone.default"] == 17


@pytest.mark.slow
def test_compiled_graph_takes_cudnn_without_a_measurement():
    """dispatch=measured on a device without a table: every conv is an aten convolution."""
    (block,) = _trace("--models", "block", "--policy", "", "--device-name", "A GPU without a table")
    assert block["frames"] == 1 and block["triton_launches"] == {} and block["aten_convolutions"] == 3


# ---------------------------------------------------------------------------
# The filter re-layout is made once per weight version, and never served stale
# ---------------------------------------------------------------------------
def test_filter_relayout_follows_the_weight():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 4, 6, 6, generator=g, dtype=torch.float64).to(DEVICE)
    w = torch.nn.Parameter(torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64).to(DEVICE))

    def check():
        with torch.no_grad():
            got = kernels.conv2d(x, w, padding=1, groups=4)
        torch.testing.assert_close(got, torch.nn.functional.conv2d(x, w.detach(), padding=1, groups=4))

    check()
    first = w.__dict__["_cnnc_relayout"][2]
    check()
    assert w.__dict__["_cnnc_relayout"][2] is first  # made once
    with torch.no_grad():
        w.mul_(2)  # in place: a new version
    check()
    for _ in range(3):  # new storages without a new version, alternating as an allocator may hand them out
        w.data = torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64).to(DEVICE)
        check()
    w.data = torch.flip(w.data, [2])  # flipped rows, same shape and version
    check()
