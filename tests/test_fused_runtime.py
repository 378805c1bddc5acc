"""runtime.FusedConv2d: the eval-mode fold is made once and refolded exactly when its inputs
change; training keeps BatchNorm's semantics; every spec runs fused; the fused module runs fewer
ATen ops than the plain one; float64 modules fold in float64; activations run in place only where
nothing else reads the value.

References are independent of the code under test: eager F.conv2d / F.batch_norm on the layer's
current parameters, the plain (unfused) module, or a module generated without in-place activations.
"""
import copy

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import cnnc  # noqa: E402
from cnnc.backends import codegen, runtime  # noqa: E402
from cnnc_testlib import SPECS, TEST_SPECS, randomize_batchnorm, small_graph  # noqa: E402

torch.set_num_threads(2)
SPEC_NAMES = sorted(p.stem for p in SPECS.glob("*.cnn"))
# whole networks fast enough for the fast tier here (about 2 s each); the others are `slow`
FAST = {"lenet5", "resnet_cifar", "nin", "mobilenet_v1"}


def _tiers(names, fast):
    return [n if n in fast else pytest.param(n, marks=pytest.mark.slow) for n in names]


def _layer(groups=1, bias=False, activation="relu", dtype=torch.float32, channels=8):
    torch.manual_seed(0)
    layer = runtime.FusedConv2d(channels, channels, 3, padding=1, groups=groups, bias=bias, bn=True,
                                activation=activation)
    return randomize_batchnorm(layer).to(dtype).eval()


def _reference(layer, x, residual=None):
    """Eval-mode conv -> BatchNorm -> (+ residual) -> activation, unfused, in float64."""
    d = torch.float64
    bn = layer.bn
    y = F.conv2d(x.to(d), layer.weight.to(d), None if layer.bias is None else layer.bias.to(d), layer.stride,
                 layer.padding, layer.dilation, layer.groups)
    y = F.batch_norm(y, bn.running_mean.to(d), bn.running_var.to(d), bn.weight.to(d), bn.bias.to(d), False, 0.0,
                     bn.eps)
    if residual is not None:
        y = y + residual.to(d)
    return runtime._ACTIVATIONS[layer.activation](y) if layer.activation else y


def _close(a, b, tol=1e-5):
    b = b.to(a.dtype)
    return ((a - b).norm() / b.norm()).item() < tol


def _run(layer, x, residual=None):
    with torch.inference_mode():
        return layer(x, residual)


# ---- the plan: chosen and folded once ------------------------------------------------------


@pytest.mark.parametrize("groups", [1, 8])
@pytest.mark.parametrize("activation", [None, "relu", "relu6", "silu", "gelu", "hardswish", "sigmoid"])
def test_eval_forward_matches_the_unfused_layers(groups, activation):
    layer = _layer(groups=groups, bias=True, activation=activation)
    x, r = torch.randn(2, 8, 9, 9), torch.randn(2, 8, 9, 9)
    assert _close(_run(layer, x), _reference(layer, x))
    assert _close(_run(layer, x, r), _reference(layer, x, r))
    # channels_last in, and a channels_last residual
    xc, rc = x.contiguous(memory_format=torch.channels_last), r.contiguous(memory_format=torch.channels_last)
    assert _close(_run(layer, xc, rc), _reference(layer, x, r))


def test_the_plan_is_made_once_and_chosen_by_device_and_dtype():
    layer = _layer()
    x = torch.randn(1, 8, 6, 6)
    _run(layer, x)
    plan = layer._plan
    expected = "onednn" if runtime._HAS_ONEDNN else "torch"
    assert plan.impl == expected and plan.why
    _run(layer, torch.randn(1, 8, 6, 6))
    assert layer._plan is plan  # same device, dtype and shape, unchanged weights: no refold
    x3 = torch.randn(3, 8, 6, 6)
    assert _close(_run(layer, x3), _reference(layer, x3))
    if runtime._HAS_ONEDNN:
        # oneDNN's weight is packed for one input shape (packed for batch 8, resnet50 ran 2.3x
        # slower at batch 1): a plan per shape, kept, so alternating batch sizes never re-pack
        other = layer._plan
        assert other is not plan and other.impl == "onednn"
        _run(layer, x)
        assert layer._plan is plan
        _run(layer, x3)
        assert layer._plan is other
        for n in range(4, 4 + runtime._MAX_SHAPES):  # at most _MAX_SHAPES shapes are kept
            _run(layer, torch.randn(n, 8, 6, 6))
        assert len(layer._plans) == runtime._MAX_SHAPES and plan.key not in layer._plans
        with torch.no_grad():
            layer.bn.running_mean += 1  # new weights: the plans of the old ones are dropped
        assert _close(_run(layer, x3), _reference(layer, x3))
        assert list(layer._plans) == [layer._plan.key]
    else:
        assert layer._plan is plan  # no packing: the fold does not depend on the shape
    layer.double()
    xd = x.double()
    assert _close(_run(layer, xd), _reference(layer, xd), 1e-12)
    assert layer._plan is not plan and layer._plan.impl == "torch"  # float64: F.conv2d on folded weights


def _assert_fresh(layer, x):
    """The layer's eval output equals the reference on its current parameters."""
    assert _close(_run(layer, x), _reference(layer, x))


def test_optimizer_steps_invalidate_the_fold():
    layer = _layer()
    x = torch.randn(2, 8, 6, 6)
    before = _run(layer, x).clone()
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x).square().sum().backward()  # eval mode with grad: the differentiable fold
    opt.step()
    after = _run(layer, x)
    assert not torch.allclose(before, after)
    _assert_fresh(layer, x)


def test_load_state_dict_invalidates_the_fold():
    layer, other = _layer(), _layer()
    with torch.no_grad():
        for t in other.state_dict().values():
            if t.is_floating_point():
                t.mul_(1.5)
    x = torch.randn(2, 8, 6, 6)
    _run(layer, x)
    layer.load_state_dict(other.state_dict())
    assert layer._plan is None  # the post hook
    _assert_fresh(layer, x)
    _run(layer, x)
    layer.load_state_dict({k: v * 0.5 for k, v in other.state_dict().items()}, assign=True)
    _assert_fresh(layer, x)


def test_in_place_edits_under_no_grad_and_replaced_data_invalidate_the_fold():
    layer = _layer()
    x = torch.randn(2, 8, 6, 6)
    edits = [lambda: layer.bn.running_var.mul_(3.0),  # a buffer, in place: its version counter
             lambda: layer.bn.running_mean.add_(1.0),
             lambda: layer.bn.weight.mul_(-1.0),
             lambda: layer.weight.add_(0.1)]
    for edit in edits:
        _run(layer, x)
        with torch.no_grad():
            edit()
        _assert_fresh(layer, x)
    _run(layer, x)
    layer.bn.bias.data = layer.bn.bias.data + 1.0  # replaced: its data pointer
    _assert_fresh(layer, x)


def test_data_edits_in_place_need_eval_or_refold():
    """The documented limit: `p.data.mul_()` bumps no version counter, so the cached fold stays
    until `eval()` / `train()` or `refold()` (runtime.FusedConv2d's docstring)."""
    layer = _layer()
    x = torch.randn(2, 8, 6, 6)
    before = _run(layer, x).clone()
    layer.bn.weight.data.mul_(2.0)
    assert torch.equal(_run(layer, x), before)  # not detected: stale, as documented
    layer.eval()
    _assert_fresh(layer, x)
    layer.weight.data.mul_(0.5)
    layer.refold()
    _assert_fresh(layer, x)
    model = torch.nn.Sequential(layer)
    layer.bn.running_var.data.mul_(4.0)
    model.eval()  # eval() on a parent reaches every FusedConv2d
    _assert_fresh(layer, x)


def test_training_keeps_batchnorm_semantics_and_the_next_eval_refolds():
    layer = _layer(bias=True)
    ref_conv = torch.nn.Conv2d(8, 8, 3, padding=1, bias=True)
    ref_bn = torch.nn.BatchNorm2d(8)
    ref_conv.load_state_dict({"weight": layer.weight, "bias": layer.bias})
    ref_bn.load_state_dict(layer.bn.state_dict())
    x, r = torch.randn(4, 8, 6, 6), torch.randn(4, 8, 6, 6)
    _run(layer, x)  # a plan exists
    layer.train()
    ref_bn.train()
    y = layer(x, r)
    ref = F.relu(ref_bn(ref_conv(x)) + r)
    assert torch.allclose(y, ref, rtol=1e-6, atol=1e-6)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(layer.bn, name), getattr(ref_bn, name)), name
    y.sum().backward()
    ref.sum().backward()
    assert torch.allclose(layer.weight.grad, ref_conv.weight.grad, rtol=1e-5, atol=1e-5)
    assert torch.allclose(layer.bn.weight.grad, ref_bn.weight.grad, rtol=1e-5, atol=1e-5)
    # the running statistics moved without a version bump; eval() refolds with them
    layer.eval()
    _assert_fresh(layer, x)


def test_eval_mode_with_gradients_folds_differentiably():
    layer = _layer()
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    y = layer(x)
    y.square().sum().backward()
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, bias=False)
    conv.weight.data.copy_(layer.weight.detach())
    x2 = x.detach().clone().requires_grad_()
    bn = copy.deepcopy(layer.bn).eval()
    F.relu(bn(conv(x2))).square().sum().backward()
    assert torch.allclose(x.grad, x2.grad, rtol=1e-4, atol=1e-5)
    assert torch.allclose(layer.weight.grad, conv.weight.grad, rtol=1e-4, atol=1e-4)
    assert torch.allclose(layer.bn.weight.grad, bn.weight.grad, rtol=1e-4, atol=1e-4)


def test_a_module_with_a_plan_copies_and_pickles():
    import io

    layer = _layer()
    x = torch.randn(1, 8, 6, 6)
    y = _run(layer, x)
    assert layer._plan is not None
    for clone in (copy.deepcopy(layer), torch.load(_saved(layer, io), weights_only=False)):
        assert clone._plan is None
        assert torch.equal(_run(clone, x), y)


def _saved(module, io):
    buf = io.BytesIO()
    torch.save(module, buf)
    buf.seek(0)
    return buf


# ---- whole modules ---------------------------------------------------------------------------


def _plain_and_fused(spec, dtype=torch.float32, **params):
    torch.manual_seed(0)
    plain = randomize_batchnorm(cnnc.compile(spec, **params))
    fused = cnnc.compile(spec, fused=True, **params)
    fused.load_state_dict(_fused_names(spec, plain.state_dict(), params))
    return plain.to(dtype).eval(), fused.to(dtype).eval()


def _fused_names(spec, state, params):
    """The plain module's state_dict under the fused module's names: a BatchNorm folded into a
    conv (the fused node's second member) lives at `<conv>.bn`. By name, not by order: a conv that
    takes a residual add is registered after the add's other operand (Xception's skip convs)."""
    plain_paths = cnnc.api.generate_source(spec, **params).module_paths
    fused_paths = cnnc.api.generate_source(spec, fused=True, **params).module_paths
    graph = cnnc.pipeline.fuse(cnnc.pipeline.front_end(spec, params).graph)
    moved = {plain_paths[n.attr("members")[1]]: fused_paths[n.path] + ".bn"
             for n in graph.nodes if n.op == "fused:conv" and n.attr("bn")}
    out = {}
    for key, t in state.items():
        prefix, _, leaf = key.rpartition(".")
        out[f"{moved.get(prefix, prefix)}.{leaf}"] = t
    return out


def _main(y):
    return y if isinstance(y, torch.Tensor) else y[0]


@pytest.mark.parametrize("name", _tiers(SPEC_NAMES, FAST))
def test_every_spec_builds_and_runs_fused(name):
    """Fused and plain agree in float64 to float64 accuracy (the fold is made in float64), and in
    float32 to float32 accuracy."""
    spec = SPECS / f"{name}.cnn"
    graph, overrides = small_graph(spec)
    (source,) = [n for n in graph.nodes if n.op == "input"]
    x = torch.randn(2, *source.shape, generator=torch.Generator().manual_seed(0))
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-4)):
        plain, fused = _plain_and_fused(spec, dtype, **overrides)
        with torch.inference_mode():
            a, b = _main(fused(x.to(dtype))), _main(plain(x.to(dtype)))
        assert torch.isfinite(b).all()
        err = ((a - b).norm() / b.norm()).item()
        assert err < tol, f"{name} {dtype}: fused vs plain relative error {err:.1e}"


def test_a_residual_computed_after_its_conv_builds_fused():
    """NASNet's cells add a value computed after the conv (a sibling's pool): the fused conv then
    sits after it, outside its block's other nodes, and the block is called where its last node is."""
    spec = ("block sep(x, c) {\n return x -> relu -> conv(c, 3, padding=1, groups=c, bias=false) as dw\n"
            "   -> conv(c, 1, bias=false) as pw -> bn as bn\n}\n"
            "network n() {\n x = input(4, 8, 8)\n a = sep(x, 4) as s1\n p = x -> maxpool(3, stride=1, padding=1)\n"
            " output y = concat(a + p, x)\n}\n")
    plain, fused = _plain_and_fused(spec, torch.float64)
    assert any(m.bn is not None and "residual" for m in fused.modules() if isinstance(m, runtime.FusedConv2d))
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    with torch.inference_mode():
        assert torch.allclose(fused(x), plain(x), rtol=1e-12, atol=1e-12)


def test_float64_fused_module_is_float64_accurate():
    plain, fused = _plain_and_fused(TEST_SPECS / "tiny_resnet.cnn", torch.float64)
    x = torch.randn(2, *[n.shape for n in small_graph(TEST_SPECS / "tiny_resnet.cnn")[0].nodes][0],
                    dtype=torch.float64)
    with torch.inference_mode():
        a, b = _main(fused(x)), _main(plain(x))
    assert ((a - b).norm() / b.norm()).item() < 1e-13  # folded in float32 this was 8.3e-7


class _OpCounter(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def _count_ops(model, x):
    with torch.inference_mode(), _OpCounter() as counter:
        model(x)
    return counter.ops


def test_fused_forward_runs_fewer_aten_ops_than_plain():
    spec = SPECS / "resnet_cifar.cnn"
    graph, overrides = small_graph(spec)
    plain, fused = _plain_and_fused(spec, **overrides)
    (source,) = [n for n in graph.nodes if n.op == "input"]
    x = torch.randn(1, *source.shape)
    with torch.inference_mode():
        fused(x)  # the first eval call makes the plans
    plain_ops, fused_ops = _count_ops(plain, x), _count_ops(fused, x)
    assert _count_ops(fused, x) == fused_ops  # nothing is refolded per call
    fused_graph = cnnc.pipeline.fuse(graph)
    members = [m for n in fused_graph.nodes if n.op == "fused:conv" for m in n.attr("members")[1:]]
    folded = len(members)  # BatchNorms, residual adds and activations now inside a conv call
    assert folded > 0
    assert len(fused_ops) <= len(plain_ops) - folded, (len(fused_ops), len(plain_ops), folded)
    assert "batch_norm" not in " ".join(fused_ops) and "relu" not in fused_ops


# ---- in-place activations ---------------------------------------------------------------------


@pytest.mark.parametrize("name", _tiers(SPEC_NAMES, {"lenet5", "resnet_cifar"}))
def test_in_place_activations_compute_what_out_of_place_ones_do(name, monkeypatch):
    """The plain module with in-place activations against the same module generated without any
    (the reference), same weights: equal outputs in eval mode, and equal gradients in training."""
    spec = SPECS / f"{name}.cnn"
    graph, overrides = small_graph(spec)
    torch.manual_seed(0)
    model = cnnc.compile(spec, **overrides)
    # lenet5: tanh and sigmoid, convnext: GELU, which have no in-place form here (EMIT_IN_PLACE)
    assert "inplace=True" in cnnc.api.generate_source(spec, **overrides).source or name in {
        "lenet5", "convnext", "convnext_tiny", "convnext_base"}
    monkeypatch.setattr(codegen, "in_place_activations", lambda g: set())
    reference = cnnc.compile(spec, **overrides)
    assert "inplace=True" not in cnnc.api.generate_source(spec, **overrides).source
    reference.load_state_dict(model.state_dict())
    (source,) = [n for n in graph.nodes if n.op == "input"]
    x = torch.randn(2, *source.shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(_main(model.eval()(x)), _main(reference.eval()(x)))
    torch.manual_seed(1)
    _main(model.train()(x)).square().sum().backward()
    torch.manual_seed(1)
    _main(reference.train()(x)).square().sum().backward()
    for (k, a), b in zip(model.named_parameters(), reference.parameters()):
        if a.grad is None:  # a training-only head the main output does not reach
            assert b.grad is None, k
            continue
        assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-6), k


def test_in_place_only_where_nothing_else_reads_the_value():
    from cnnc.pipeline import front_end

    g = front_end("network n() {\n x = input(3, 8, 8)\n c = x -> conv(4, 3, padding=1)\n a = c -> relu as shared\n"
                  " b = x -> conv(4, 3, padding=1) -> relu as alone\n d = x -> relu as on_input\n"
                  " e = x -> conv(4, 3, padding=1) -> sigmoid -> relu as after_sigmoid\n f = x -> conv(4, 3, padding=1)\n"
                  " h = x -> conv(4, 3, padding=1) -> relu as first -> relu as after_relu\n"
                  " output o = concat(a, c, b, d, e, h)\n output p = f\n output q = f -> relu as on_output\n}\n").graph
    # shared: c has two readers; on_input: the caller's tensor; after_sigmoid / after_relu: the
    # input is an activation's output, which its backward reads; on_output: f is an output
    assert {g.nodes[i].path for i in codegen.in_place_activations(g)} == {"alone", "first"}


# ---- torch.compile ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("freezing", [False, True])
def test_fused_module_compiles_fullgraph(freezing):
    """The fused module traces whole under torch.compile (fullgraph: a graph break is an error),
    with and without Inductor's freezing, and computes what the plain module computes."""
    import torch._inductor.config as inductor_config

    spec = TEST_SPECS / "tiny_resnet.cnn"
    graph, _ = small_graph(spec)
    plain, fused = _plain_and_fused(spec)
    x = torch.randn(2, *[n.shape for n in graph.nodes if n.op == "input"][0])
    torch._dynamo.reset()
    compiled = torch.compile(fused, fullgraph=True, dynamic=False)
    with torch.no_grad(), inductor_config.patch(freezing=freezing):
        got, want = _main(compiled(x)), _main(plain(x))
    assert ((got - want).norm() / want.norm()).item() < 1e-5
