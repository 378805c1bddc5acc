"""Generated modules work with the PyTorch ecosystem (CPU): torch.compile(fullgraph=True),
torch.export, ONNX export (checked, and run with onnx's reference evaluator), and
DistributedDataParallel (two processes, gloo) with the gradients of a single process.

Specs: resnet18 and mobilenet_v1 (depthwise convs: the `kernels.conv2d` custom op) for
torch.compile; resnet18, mobilenet_v1, densenet121 and inception_v1 (LRN, train-only auxiliary
heads) for export and ONNX, plus convnext_tiny and efficientnet_b0 (layer norm over channels,
layer scale, stochastic depth, squeeze-excite) as slow cases. Small inputs keep it quick.
"""
import os
import socket
import tempfile
import warnings

import pytest

torch = pytest.importorskip("torch")

import cnnc  # noqa: E402
from cnnc_testlib import SPECS  # noqa: E402

torch.set_num_threads(2)
EXPORT_SPECS = [("resnet18", 64), ("mobilenet_v1", 64), ("densenet121", 64), ("inception_v1", 96),
                pytest.param("convnext_tiny", 64, marks=pytest.mark.slow),
                pytest.param("efficientnet_b0", 64, marks=pytest.mark.slow)]


def _model(name, size, **params):
    torch.manual_seed(0)
    model = cnnc.compile(SPECS / f"{name}.cnn", size=size, **params)
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _close(a, b, tol=1e-4):
    return ((a - b).norm() / b.norm()).item() < tol


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v1"])
def test_torch_compile_fullgraph(name):
    torch._dynamo.reset()
    model = _model(name, 64)
    x = torch.randn(2, 3, 64, 64)
    compiled = torch.compile(model, fullgraph=True)  # fullgraph: a graph break is an error
    with torch.no_grad():
        assert _close(compiled(x), model(x))


@pytest.mark.slow  # 11 s
def test_torch_compile_training_mode_with_aux_outputs():
    """The `if self.training:` branch and the outputs NamedTuple trace as one graph (aot_eager
    keeps this quick; inductor is exercised above)."""
    torch._dynamo.reset()
    model = _model("inception_v1", 96, classes=10).train()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    torch.manual_seed(0)
    out = compiled(torch.randn(2, 3, 96, 96))
    assert out._fields == ("aux1", "aux2", "logits") and out.aux1.shape == (2, 10)
    (out.logits.sum() + out.aux1.sum()).backward()


@pytest.mark.parametrize("name,size", EXPORT_SPECS)
def test_torch_export(name, size):
    model = _model(name, size)
    x = torch.randn(1, 3, size, size)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        assert _close(program.module()(x), model(x))


# the ONNX exporter takes 17-27 s on densenet121 and inception_v1 here: those in the slow tier
ONNX_SPECS = [("resnet18", 64), ("mobilenet_v1", 64)] + [
    pytest.param(name, size, marks=pytest.mark.slow)
    for name, size in (("densenet121", 64), ("inception_v1", 96), ("convnext_tiny", 64), ("efficientnet_b0", 64))]


@pytest.mark.parametrize("name,size", ONNX_SPECS)
def test_onnx_export(name, size):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from onnx.reference import ReferenceEvaluator

    model = _model(name, size)
    x = torch.randn(1, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (x,), dynamo=True, verbose=False)
    proto = program.model_proto
    onnx.checker.check_model(proto)
    ops = {n.op_type for n in proto.graph.node}
    assert "Conv" in ops and not any(n.domain.startswith("cnnc") for n in proto.graph.node)
    if name in ("resnet18", "mobilenet_v1", "inception_v1"):  # run it (numpy: keep it to the small ones)
        (ours,) = ReferenceEvaluator(proto).run(None, {proto.graph.input[0].name: x.numpy()})
        with torch.no_grad():
            assert _close(torch.from_numpy(ours), model(x), 1e-4)


# ---- DistributedDataParallel ------------------------------------------------------------------------
#
# DDP averages gradients over processes, so with an even split of the same global batch the result
# equals one process's gradient of the mean loss, provided each sample's loss does not depend on the
# other samples in its shard. BatchNorm in training mode breaks that (batch statistics per shard),
# so the comparison runs the model in eval mode (BatchNorm on running statistics, dropout off):
# the gradients of all parameters then must agree. mobilenet_v1 puts the depthwise `kernels.conv2d`
# custom op and its registered autograd under DDP.

DDP_SPEC, DDP_SIZE, DDP_BATCH = "mobilenet_v1", 32, 4


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, workdir):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = cnnc.compile(SPECS / f"{DDP_SPEC}.cnn", size=DDP_SIZE, classes=10)
        model.load_state_dict(torch.load(os.path.join(workdir, "state.pth"), weights_only=True))
        model.eval()
        ddp = DistributedDataParallel(model)
        x, y = torch.load(os.path.join(workdir, "batch.pth"), weights_only=True)
        shard = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
        loss = torch.nn.functional.cross_entropy(ddp(x[shard]), y[shard])
        loss.backward()
        if rank == 0:
            torch.save({k: p.grad for k, p in model.named_parameters()}, os.path.join(workdir, "grads.pth"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_gradients_equal_single_process():
    import torch.multiprocessing as mp

    model = _model(DDP_SPEC, DDP_SIZE, classes=10)
    x = torch.randn(DDP_BATCH, 3, DDP_SIZE, DDP_SIZE)
    y = torch.arange(DDP_BATCH) % 10
    with tempfile.TemporaryDirectory() as workdir:
        torch.save(model.state_dict(), os.path.join(workdir, "state.pth"))
        torch.save((x, y), os.path.join(workdir, "batch.pth"))
        mp.spawn(_ddp_worker, args=(2, _free_port(), workdir), nprocs=2, join=True)
        grads = torch.load(os.path.join(workdir, "grads.pth"), weights_only=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    assert grads.keys() == dict(model.named_parameters()).keys()
    for name, p in model.named_parameters():
        assert torch.allclose(grads[name], p.grad, rtol=1e-4, atol=1e-6), name
