"""Backward of kernels.conv2d: float64 gradcheck on tiny shapes (Triton kernels under the
interpreter on CPU), and float32 gradients against eager autograd on random shapes. The
depthwise input gradient (`depthwise_input_grad_kernel`, any stride/dilation/padding/
multiplier) has its own explicit and property cases, each checking that the kernel ran."""

import importlib

import pytest
import torch
import torch.nn.functional as F
import triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnc import kernels
from cnnc.kernels import Policy, _runtime
from cnnc.kernels.conv2d import MAX_INPUT_GRAD_PHASES, input_grad_kernel_for
from kernels_testlib import (DEVICE, GRAD_TOLERANCES, REFERENCE_ACTIVATIONS, policy, require_triton_path,
                             same_memory_format, tiered)

# the module, not the `kernels.conv2d` function that kernels/__init__.py exports under that name
conv2d_module = importlib.import_module("cnnc.kernels.conv2d")

# (C_in, mult or None for grouped, groups, (KH, KW), stride, padding, dilation, activation)
GRADCHECK_CASES = {
    "dw3_s1_gelu": (3, 1, 3, (3, 3), 1, 1, 1, "gelu"),
    "dw3_s2_mult2_relu": (2, 2, 2, (3, 3), 2, 1, 1, "relu"),
    "dw3_dil2_silu": (2, 1, 2, (3, 3), 1, 2, 2, "silu"),
    "dw_1x3_sigmoid": (2, 1, 2, (1, 3), 1, (0, 1), 1, "sigmoid"),
    "dw5_hardswish": (2, 1, 2, (5, 5), 1, 2, 1, "hardswish"),
    "dw3_relu6_mult2": (2, 2, 2, (3, 3), 1, 1, 1, "relu6"),
    "grouped_g2_none": (4, None, 2, (3, 3), 1, 1, 1, None),
    "grouped_g2_s2_silu": (4, None, 2, (3, 3), 2, 1, 1, "silu"),
}


@pytest.mark.parametrize("name", tiered(GRADCHECK_CASES, fast=("dw_1x3_sigmoid", "grouped_g2_none")))
def test_gradcheck_float64(name):
    C, mult, groups, (KH, KW), stride, padding, dilation, act = GRADCHECK_CASES[name]
    C_out = C * mult if mult else C
    g = torch.Generator().manual_seed(0)
    opts = dict(dtype=torch.float64)
    x = torch.randn(1, C, 5, 5, generator=g, **opts).to(DEVICE).requires_grad_()
    w = torch.randn(C_out, C // groups, KH, KW, generator=g, **opts).to(DEVICE).requires_grad_()
    scale = (torch.rand(C_out, generator=g, **opts) + 0.5).to(DEVICE).requires_grad_()
    shift = torch.randn(C_out, generator=g, **opts).to(DEVICE).requires_grad_()
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, activation=act)
    out_shape = kernels.conv2d(x.detach(), w.detach(), **args).shape
    residual = torch.randn(out_shape, generator=g, **opts).to(DEVICE).requires_grad_()
    require_triton_path(x, w, groups)

    def f(x, w, scale, shift, residual):
        return kernels.conv2d(x, w, scale=scale, shift=shift, residual=residual, **args)

    # fast_mode checks random projections of the Jacobian: a few forward calls instead of
    # one per input element, which keeps the interpreter run short.
    assert torch.autograd.gradcheck(f, (x, w, scale, shift, residual), fast_mode=True)


@pytest.mark.slow
def test_gradcheck_full_jacobian_depthwise():
    """One slow-mode gradcheck (every Jacobian column) on the smallest interesting case."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 4, 4, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    w = torch.randn(2, 1, 3, 3, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    shift = torch.randn(2, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    f = lambda x, w, shift: kernels.conv2d(x, w, padding=1, groups=2, shift=shift, activation="silu")  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, w, shift))


def _eager_block(x, w, scale, shift, residual, act, **conv_args):
    z = F.conv2d(x, w, None, **conv_args)
    if scale is not None:
        z = z * scale.view(1, -1, 1, 1)
    if shift is not None:
        z = z + shift.view(1, -1, 1, 1)
    if residual is not None:
        z = z + residual
    return REFERENCE_ACTIVATIONS[act](z)


@st.composite
def backward_cases(draw):
    depthwise = draw(st.booleans())
    groups = draw(st.integers(2, 6)) if depthwise else draw(st.integers(2, 3))
    C = groups if depthwise else groups * draw(st.sampled_from([1, 2, 4, 16]))
    C_out = C * draw(st.sampled_from([1, 2])) if depthwise else groups * draw(st.sampled_from([1, 3, 16]))
    K = draw(st.sampled_from([1, 3, 5])) if depthwise else draw(st.sampled_from([1, 3]))
    stride, dilation = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2]))
    padding = draw(st.integers(0, 2))
    min_hw = max(1, dilation * (K - 1) + 1 - 2 * padding)
    H = draw(st.integers(min_hw, min_hw + 5))
    return dict(N=draw(st.integers(1, 2)), C=C, C_out=C_out, groups=groups, K=K, H=H,
                stride=stride, padding=padding, dilation=dilation,
                act=draw(st.sampled_from(list(kernels.ACTIVATIONS))),
                channels_last=draw(st.booleans()),
                parts=draw(st.sets(st.sampled_from(["scale", "shift", "residual"]))),
                seed=draw(st.integers(0, 2**16)))


@pytest.mark.slow
@settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(backward_cases())
def test_gradients_match_eager_autograd(case):
    """float32 gradients of every input against eager autograd of the unfused block."""
    g = torch.Generator().manual_seed(case["seed"])
    C, C_out, K, groups = case["C"], case["C_out"], case["K"], case["groups"]
    x = torch.randn(case["N"], C, case["H"], case["H"], generator=g).to(DEVICE)
    if case["channels_last"]:
        x = x.to(memory_format=torch.channels_last)
    w = (torch.randn(C_out, C // groups, K, K, generator=g) / (C // groups * K * K) ** 0.5).to(DEVICE)
    conv_args = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=groups)
    out_shape = F.conv2d(x, w, None, **conv_args).shape
    scale = (torch.rand(C_out, generator=g) + 0.5).to(DEVICE) if "scale" in case["parts"] else None
    shift = torch.randn(C_out, generator=g).to(DEVICE) if "shift" in case["parts"] else None
    residual = torch.randn(out_shape, generator=g).to(DEVICE) if "residual" in case["parts"] else None
    inputs = [t for t in (x, w, scale, shift, residual) if t is not None]
    for t in inputs:
        t.requires_grad_()
    grad_out = torch.randn(out_shape, generator=g).to(DEVICE)

    with kernels.poisoned_outputs():
        out = kernels.conv2d(x, w, scale=scale, shift=shift, residual=residual, activation=case["act"],
                             **conv_args)
        grads = torch.autograd.grad(out, inputs, grad_out)
    ref = _eager_block(x, w, scale, shift, residual, case["act"], **conv_args)
    ref_grads = torch.autograd.grad(ref, inputs, grad_out)
    for name, got, want in zip(["x", "weight", "scale", "shift", "residual"], grads, ref_grads):
        assert bool(torch.isfinite(got).all()), f"grad {name} not finite"
        atol, rtol = GRAD_TOLERANCES[torch.float32]
        torch.testing.assert_close(got, want, atol=atol, rtol=rtol, msg=lambda m: f"grad {name}: {m}")
    assert same_memory_format(grads[0], x), "grad x does not follow x's memory format"


@pytest.mark.slow
def test_opcheck_registered_ops():
    """torch.library.opcheck: schema, fake (meta) impl, autograd registration agree."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 5, 5, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    w = torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    shift = torch.randn(4, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    key = kernels.default_policy().key  # the operators take the policy as its key string
    torch.library.opcheck(torch.ops.cnnc_kernels.conv2d.default,
                          (x, w, [1, 1], [1, 1], [1, 1], 4, None, shift, "relu", None, key),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    dc = torch.randn(1, 4, 5, 5, generator=g, dtype=torch.float64).to(DEVICE)
    torch.library.opcheck(torch.ops.cnnc_kernels.conv2d_input_grad.default,
                          (dc, w.detach(), [1, 4, 5, 5], [1, 1], [1, 1], [1, 1], 4, False, key),
                          test_utils=("test_schema", "test_faketensor"))
    # stride 2, multiplier 2: the Triton input-gradient kernel behind the same schema
    w2 = torch.randn(8, 1, 3, 3, generator=g, dtype=torch.float64).to(DEVICE)
    dc2 = torch.randn(1, 8, 3, 3, generator=g, dtype=torch.float64).to(DEVICE)
    assert input_grad_kernel_for(dc2, w2, [1, 4, 5, 5], [2, 2], 4) == "triton"
    torch.library.opcheck(torch.ops.cnnc_kernels.conv2d_input_grad.default,
                          (dc2, w2, [1, 4, 5, 5], [2, 2], [1, 1], [1, 1], 4, True, key),
                          test_utils=("test_schema", "test_faketensor"))
    torch.library.opcheck(torch.ops.cnnc_kernels.conv2d_weight_grad.default,
                          (x.detach(), dc, [4, 1, 3, 3], [1, 1], [1, 1], [1, 1], 4, key),
                          test_utils=("test_schema", "test_faketensor"))
    # the epilogue's backward: depthwise (Triton) and grouped (torch), every output wanted or not
    scale = torch.rand(4, generator=g, dtype=torch.float64).to(DEVICE) + 0.5
    wg = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64).to(DEVICE)
    for weight, groups in ((w.detach(), 4), (wg, 2)):
        for wanted in ((True, True, True), (False, False, False), (True, False, True)):
            torch.library.opcheck(torch.ops.cnnc_kernels.conv2d_epilogue_grad.default,
                                  (x.detach(), weight, [1, 1], [1, 1], [1, 1], groups, scale, shift.detach(), dc,
                                   dc, dc, "silu", *wanted, key),
                                  test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize("wanted", ["x", "scale", "residual", "shift+weight"])
def test_depthwise_epilogue_grad_one_pass_partial_needs(wanted, monkeypatch):
    """Depthwise backward runs `depthwise_epilogue_grad` once, whichever gradients are asked
    for, and the ones asked for equal eager autograd (float64, strict)."""
    calls = []
    launcher = conv2d_module.depthwise_epilogue_grad
    monkeypatch.setattr(conv2d_module, "depthwise_epilogue_grad",
                        lambda *a: calls.append(a[10:13]) or launcher(*a))  # the want_* flags
    g = torch.Generator().manual_seed(3)
    opts = dict(dtype=torch.float64)
    x = torch.randn(2, 4, 7, 6, generator=g, **opts).to(DEVICE).to(memory_format=torch.channels_last)
    w = torch.randn(8, 1, 3, 3, generator=g, **opts).to(DEVICE)
    scale = (torch.rand(8, generator=g, **opts) + 0.5).to(DEVICE)
    shift = torch.randn(8, generator=g, **opts).to(DEVICE)
    residual = torch.randn(2, 8, 4, 3, generator=g, **opts).to(DEVICE)
    leaves = {"x": x, "weight": w, "scale": scale, "shift": shift, "residual": residual}
    asked = wanted.split("+")
    for name in asked:
        leaves[name].requires_grad_()
    conv = dict(stride=2, padding=1, groups=4)
    with kernels.poisoned_outputs():
        out = kernels.conv2d(x, w, scale=scale, shift=shift, residual=residual, activation="gelu", **conv)
        got = torch.autograd.grad(out, [leaves[n] for n in asked], torch.ones_like(out))
    ref = _eager_block(x, w, scale, shift, residual, "gelu", **conv)
    want = torch.autograd.grad(ref, [leaves[n] for n in asked], torch.ones_like(ref))
    assert calls == [("residual" in asked, "shift" in asked, "scale" in asked)]
    for name, a, b in zip(asked, got, want):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10, msg=lambda m: f"grad {name}: {m}")


# ---------------------------------------------------------------------------
# Depthwise input gradient: `depthwise_input_grad_kernel` at any stride, dilation,
# padding and channel multiplier.
# ---------------------------------------------------------------------------
@pytest.fixture
def input_grad_launches(monkeypatch):
    """Records every launch of the depthwise input-gradient kernel, so a test can assert
    that its backward really ran Triton (and not torch.nn.grad.conv2d_input)."""
    calls = []
    launcher = conv2d_module.depthwise_conv2d_input_grad

    def counting(grad_conv, weight, input_shape, *args, **kw):
        calls.append(tuple(input_shape))
        return launcher(grad_conv, weight, input_shape, *args, **kw)

    monkeypatch.setattr(conv2d_module, "depthwise_conv2d_input_grad", counting)
    return calls


def _depthwise_input_grad(x, w, conv_args, input_grad_launches, dtype=torch.float32, seed=0):
    """dL/dx of kernels.conv2d (poisoned outputs) and of eager F.conv2d in float64, same inputs.
    Checks that the forward and the input gradient both took the Triton path."""
    C = x.shape[1]
    g = torch.Generator().manual_seed(seed)
    x = x.to(dtype).requires_grad_()
    w = w.to(dtype)
    require_triton_path(x, w, C)
    with kernels.poisoned_outputs():
        out = kernels.conv2d(x, w, groups=C, **conv_args)
        grad_out = torch.randn(out.shape, generator=g).to(device=out.device, dtype=dtype)
        assert input_grad_kernel_for(out, w, list(x.shape), _pair(conv_args.get("stride", 1)), C) == "triton"
        launches_before = len(input_grad_launches)
        (got,) = torch.autograd.grad(out, x, grad_out)
    assert len(input_grad_launches) == launches_before + 1, "the input gradient did not run the Triton kernel"
    x64 = x.detach().double().requires_grad_()
    ref = F.conv2d(x64, w.double(), None, groups=C, **conv_args)
    (want,) = torch.autograd.grad(ref, x64, grad_out.double())
    assert got.dtype == dtype and got.shape == x.shape
    assert bool(torch.isfinite(got).all()), f"{int((~torch.isfinite(got)).sum())} grad x elements not written"
    assert same_memory_format(got, x), f"grad x strides {got.stride()} do not follow x {x.stride()}"
    return got, want


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# name: (C, mult, (H, W), (KH, KW), stride, padding, dilation)
INPUT_GRAD_CASES = {
    # OH = 3 reads input rows/cols 0..6: the last row and column get exactly zero gradient
    "k3_s2_p0_last_row_unread": (3, 1, (8, 8), (3, 3), 2, 0, 1),
    "k3_s2_p1_mult2": (2, 2, (7, 9), (3, 3), 2, 1, 1),
    "k3_s3_p1": (3, 1, (10, 11), (3, 3), 3, 1, 1),
    "k3_s3_p0_mult2_unread_tail": (2, 2, (8, 7), (3, 3), 3, 0, 1),
    "k3_s2_dil2": (3, 1, (9, 8), (3, 3), 2, 2, 2),  # even rows/cols never read
    "k5_s2_p2_mult2": (2, 2, (9, 9), (5, 5), 2, 2, 1),
    "k1x7_s_1x2_p_0x3": (3, 1, (5, 13), (1, 7), (1, 2), (0, 3), 1),
    "k5x1_s_2x1_p_2x0_mult2": (2, 2, (11, 5), (5, 1), (2, 1), (2, 0), 1),
    "k3_s2_p3_larger_than_half_k": (2, 1, (5, 6), (3, 3), 2, 3, 1),
    "k3_s1_p2_mult2": (3, 2, (6, 6), (3, 3), 1, 2, 1),  # stride 1 with multiplier 2
    "k3_s_2x3_dil_1x2": (2, 1, (7, 10), (3, 3), (2, 3), (1, 0), (1, 2)),
}


@pytest.mark.parametrize("channels_last", [True, False], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("name", tiered(INPUT_GRAD_CASES, fast=("k3_s2_dil2", "k1x7_s_1x2_p_0x3")))
def test_depthwise_input_grad_cases(name, channels_last, input_grad_launches):
    C, mult, (H, W), (KH, KW), stride, padding, dilation = INPUT_GRAD_CASES[name]
    g = torch.Generator().manual_seed(len(name))
    x = torch.randn(2, C, H, W, generator=g).to(DEVICE)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    w = (torch.randn(C * mult, 1, KH, KW, generator=g) / (KH * KW) ** 0.5).to(DEVICE)
    conv_args = dict(stride=stride, padding=padding, dilation=dilation)
    got, want = _depthwise_input_grad(x, w, conv_args, input_grad_launches)
    atol, rtol = GRAD_TOLERANCES[torch.float32]
    torch.testing.assert_close(got.double(), want, atol=atol, rtol=rtol)
    # rows/cols no output reads must be exactly zero (written, not left as poison)
    unread = want == 0
    assert bool((got[unread] == 0).all())
    if name == "k3_s2_p0_last_row_unread":
        assert bool((got[:, :, -1, :] == 0).all()) and bool((got[:, :, :, -1] == 0).all())
        assert bool((got[:, :, :-1, :-1] != 0).any())


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64], ids=str)
def test_depthwise_input_grad_dtypes(dtype, input_grad_launches):
    """fp16 accumulates in fp32 and rounds once; fp64 accumulates in fp64."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 7, 7, generator=g).to(DEVICE).to(memory_format=torch.channels_last)
    w = (torch.randn(8, 1, 3, 3, generator=g) / 3).to(DEVICE)
    got, want = _depthwise_input_grad(x, w, dict(stride=2, padding=1), input_grad_launches, dtype=dtype)
    atol, rtol = (1e-12, 1e-12) if dtype == torch.float64 else GRAD_TOLERANCES[dtype]
    torch.testing.assert_close(got.double(), want, atol=atol, rtol=rtol)


@pytest.mark.slow
def test_gradcheck_float64_stride2_input_grad(input_grad_launches):
    """Full-Jacobian float64 gradcheck through kernels.conv2d, stride 2 with an input row and
    column that no output reads (H=6, W=5, k=3, p=0: OH=2, OW=2), multiplier 2."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 6, 5, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    w = torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    require_triton_path(x, w, 2)
    f = lambda x, w: kernels.conv2d(x, w, stride=2, groups=2)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, w))
    assert input_grad_launches, "gradcheck's backward did not run the Triton input-gradient kernel"


@st.composite
def input_grad_cases(draw):
    KH, KW = draw(st.sampled_from([(1, 1), (3, 3), (5, 5), (1, 7), (7, 1), (3, 1), (2, 2)]))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2])))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    min_h = max(1, dilation[0] * (KH - 1) + 1 - 2 * padding[0])
    min_w = max(1, dilation[1] * (KW - 1) + 1 - 2 * padding[1])
    # C >= 2: groups == C_in == 1 is a dense conv (torch path)
    return dict(N=draw(st.integers(1, 2)), C=draw(st.integers(2, 5)), mult=draw(st.sampled_from([1, 2])),
                K=(KH, KW), stride=stride, padding=padding, dilation=dilation,
                H=draw(st.integers(min_h, min_h + 6)), W=draw(st.integers(min_w, min_w + 6)),
                channels_last=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


# the fixture only counts launches, and each example compares the count before and after
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@pytest.mark.slow
@given(case=input_grad_cases())
def test_depthwise_input_grad_property(case, input_grad_launches):
    """Random depthwise geometry (strides 1-3 per axis, dilation, padding up to 3 > k//2,
    asymmetric filters, multiplier 1-2, both layouts): grad x matches eager autograd."""
    g = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(case["N"], case["C"], case["H"], case["W"], generator=g).to(DEVICE)
    if case["channels_last"]:
        x = x.to(memory_format=torch.channels_last)
    KH, KW = case["K"]
    w = (torch.randn(case["C"] * case["mult"], 1, KH, KW, generator=g) / (KH * KW) ** 0.5).to(DEVICE)
    conv_args = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    got, want = _depthwise_input_grad(x, w, conv_args, input_grad_launches, seed=case["seed"])
    atol, rtol = GRAD_TOLERANCES[torch.float32]
    torch.testing.assert_close(got.double(), want, atol=atol, rtol=rtol)
    assert bool((got[want == 0] == 0).all()), "unread input pixels must get exactly zero gradient"


def test_input_grad_torch_fallbacks(input_grad_launches):
    """What stays on torch.nn.grad.conv2d_input: grouped, dense, and strides whose phase
    count exceeds MAX_INPUT_GRAD_PHASES; the gradients are still right."""
    g = torch.Generator().manual_seed(4)
    dc = torch.randn(1, 4, 3, 3, generator=g).to(DEVICE)
    assert input_grad_kernel_for(dc, torch.randn(4, 2, 3, 3).to(DEVICE), [1, 4, 5, 5], [1, 1], 2) == "torch"
    assert input_grad_kernel_for(dc, torch.randn(4, 4, 3, 3).to(DEVICE), [1, 4, 5, 5], [1, 1], 1) == "torch"
    big = int(MAX_INPUT_GRAD_PHASES ** 0.5) + 1
    assert input_grad_kernel_for(dc, torch.randn(4, 1, 3, 3).to(DEVICE), [1, 4, 3 * big, 3 * big],
                                 [big, big], 4) == "torch"
    x = torch.randn(1, 2, big + 3, big + 3, generator=g).to(DEVICE).requires_grad_()
    w = torch.randn(2, 1, 3, 3, generator=g).to(DEVICE)
    out = kernels.conv2d(x, w, stride=big, groups=2)
    go = torch.randn(out.shape, generator=g).to(DEVICE)
    (got,) = torch.autograd.grad(out, x, go)
    x_ref = x.detach().requires_grad_()
    (want,) = torch.autograd.grad(F.conv2d(x_ref, w, None, stride=big, groups=2), x_ref, go)
    torch.testing.assert_close(got, want)
    assert not input_grad_launches, "a stride beyond MAX_INPUT_GRAD_PHASES ran the Triton kernel"


# ---------------------------------------------------------------------------
# Depthwise weight gradient: one tap per program, or blocks of taps (the kernel policy's
# dw_wgrad; on auto the autotuner picks, by filter size where nothing is timed).
# ---------------------------------------------------------------------------
depthwise_module = importlib.import_module("cnnc.kernels.depthwise")


WGRAD_CASES = {  # (C_in, mult, (KH, KW), stride, padding, dilation, H, W)
    "3x3": (3, 1, (3, 3), 1, 1, 1, 6, 5),
    "7x7": (2, 1, (7, 7), 1, 3, 1, 9, 8),
    "5x5_s2_mult2": (2, 2, (5, 5), 2, 2, 1, 9, 7),
    "3x3_dil2_s2": (3, 1, (3, 3), 2, 2, 2, 8, 9),
    "1x7": (2, 1, (1, 7), 1, (0, 3), 1, 4, 9),
    "11x11_pad_beyond": (2, 1, (11, 11), 1, 6, 1, 5, 6),  # padding wider than half the filter
    "1x1": (3, 1, (1, 1), 1, 0, 1, 4, 5),
}


def _weight_grad_tap_block(case, wgrad_policy, channels_last, monkeypatch, images=2):
    """Run one depthwise weight gradient (a WGRAD_CASES tuple, `images` images) under the kernel
    policy `wgrad_policy`; check it exactly against eager autograd in float64 and return the
    TAP_BLOCK of the config that ran."""
    C, mult, (KH, KW), stride, padding, dilation, H, W = case
    g = torch.Generator().manual_seed(5)
    x = torch.randn(images, C, H, W, generator=g, dtype=torch.float64).to(DEVICE)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    w = torch.randn(C * mult, 1, KH, KW, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    conv = dict(stride=stride, padding=padding, dilation=dilation, groups=C)
    out = kernels.conv2d(x, w, activation="silu", policy=wgrad_policy, **conv)
    grad_out = torch.randn(out.shape, generator=g, dtype=torch.float64).to(DEVICE)
    ran = []  # the configs the weight-gradient kernel's launches took
    real_launch = depthwise_module.launch

    def recording_launch(kernel, *args, **kwargs):
        config = real_launch(kernel, *args, **kwargs)
        if kernel is depthwise_module.depthwise_weight_grad_kernel:
            ran.append(config)
        return config

    monkeypatch.setattr(depthwise_module, "launch", recording_launch)
    (got,) = torch.autograd.grad(out, [w], grad_out)
    (want,) = torch.autograd.grad(F.silu(F.conv2d(x, w, None, **conv)), [w], grad_out)
    assert len(ran) == 1
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    return ran[0].kwargs["TAP_BLOCK"]


@pytest.mark.slow
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("mode", ["per-tap", "tap-blocks"])
@pytest.mark.parametrize("name", list(WGRAD_CASES))
def test_depthwise_weight_grad_both_tilings(name, mode, channels_last, monkeypatch):
    tap_block = _weight_grad_tap_block(WGRAD_CASES[name], policy(dw_wgrad=mode), channels_last, monkeypatch)
    assert (tap_block == 1) == (mode == "per-tap"), tap_block


@pytest.mark.parametrize("mode", ["per-tap", "tap-blocks"])
@pytest.mark.parametrize("split", [(2, 1, 7), (3, 1, 7), (1, 3, 3), (1, 1, 7)],
                         ids=["2-images", "all-3-images", "3-slices", "whole-images"])
@pytest.mark.slow
def test_depthwise_weight_grad_any_split_of_the_pixels(split, mode, monkeypatch):
    """However the launcher shares the pixels among programs (several whole images each, a
    last group with fewer images, or slices of rows of one image, the last one short), the
    partial sums add up to the exact weight gradient."""
    case = (3, 1, (5, 3), 1, (2, 1), 1, 7, 6)  # 5 images of 7 output rows
    assert _runtime.output_hw(7, 6, (5, 3), (1, 1), (2, 1), (1, 1))[0] == 7, "the splits above assume 7 output rows"
    monkeypatch.setattr(depthwise_module, "weight_grad_split", lambda N, OH, OW, C, taps: split)
    tap_block = _weight_grad_tap_block(case, policy(dw_wgrad=mode), True, monkeypatch, images=5)
    assert (tap_block == 1) == (mode == "per-tap"), tap_block


@pytest.mark.parametrize("name, tap_blocks", [("3x3", False), ("1x7", False), pytest.param("5x5_s2_mult2", True, marks=pytest.mark.slow),
                                             pytest.param("7x7", True, marks=pytest.mark.slow)])
def test_weight_grad_auto_takes_tap_blocks_for_large_filters_when_untimed(name, tap_blocks, monkeypatch):
    untimed = policy(dw_wgrad="auto", autotune=False)  # (under the interpreter nothing is timed anyway)
    assert (_weight_grad_tap_block(WGRAD_CASES[name], untimed, True, monkeypatch) > 1) == tap_blocks


def test_weight_grad_mode_is_checked():
    with pytest.raises(ValueError, match="dw_wgrad must be one of auto, per-tap, tap-blocks; got 'all-taps'"):
        Policy(dw_wgrad="all-taps")


def test_weight_grad_prune_keeps_each_modes_tiles():
    """On a GPU the autotuner times every tile the mode allows, except tap blocks wider than
    the filter needs (a 3x3 filter has 9 taps: blocks of 32 or 64 would be mostly padding).
    First comes what a launch takes where nothing is timed (policy autotune=false): tap blocks
    from WGRAD_TAP_BLOCKS_FROM taps up."""
    configs = [triton.Config({"TAP_BLOCK": t, "BLOCK_P": p, "BLOCK_C": c}, num_warps=w)
               for t, p, c, w in depthwise_module.WGRAD_TILES]
    prune = depthwise_module._weight_grad_prune

    def blocks(mode, k):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(depthwise_module, "INTERPRET", False)
            kept = [c.kwargs["TAP_BLOCK"] for c in prune(configs, {}, KH=k, KW=k, TAPS_MODE=mode)]
            return kept[0], sorted(set(kept))

    assert blocks("auto", 3) == (1, [1, 16])
    assert blocks("auto", 5) == (16, [1, 16, 32])
    assert blocks("auto", 7) == (16, [1, 16, 32, 64])
    assert blocks("per-tap", 7) == (1, [1])
    assert blocks("tap-blocks", 3) == (16, [16])


@pytest.mark.parametrize("layout", tiered(["as-is", "tap-major"], fast=()))
def test_depthwise_weight_layouts_agree(layout):
    """The depthwise kernels read the filter tap-major (a copy) or in torch's layout (the kernel
    policy's dw_weights): forward, epilogue backward and input gradient are exact either way."""
    g = torch.Generator().manual_seed(7)
    opts = dict(dtype=torch.float64)
    x = torch.randn(2, 3, 7, 8, generator=g, **opts).to(DEVICE).to(memory_format=torch.channels_last)
    w = torch.randn(6, 1, 5, 3, generator=g, **opts).to(DEVICE).requires_grad_()
    scale = (torch.rand(6, generator=g, **opts) + 0.5).to(DEVICE).requires_grad_()
    x.requires_grad_()
    conv = dict(stride=(2, 1), padding=(2, 1), groups=3)
    with kernels.poisoned_outputs():
        out = kernels.conv2d(x, w, scale=scale, activation="silu", policy=policy(dw_weights=layout), **conv)
        got = torch.autograd.grad(out, [x, w, scale], torch.ones_like(out))
    ref = _eager_block(x, w, scale, None, None, "silu", **conv)
    want = torch.autograd.grad(ref, [x, w, scale], torch.ones_like(ref))
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-12)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("k", [3, 7])  # the per-tap path and the row-reuse path
def test_epilogue_grad_partial_sums_do_not_depend_on_the_config(monkeypatch, k):
    """The epilogue backward's d scale / d shift partial sums are per cell of output pixels, not
    per program: the buffer and the rows written are the same whichever tile runs, so any
    config's run, and tuning that runs several into one buffer, sums right (Inductor, which
    launches the kernel from its own code, never says which config won). (Seen on an H100 when
    the rows were per program: summing every config's rows gave d scale and d shift 70% off.)
    Tuning is replaced by one run per config, small tile first, large tile declared fastest,
    into NaN-poisoned buffers; then each config alone."""
    import triton

    kernel = depthwise_module.depthwise_epilogue_grad_kernel
    small = triton.Config({"BLOCK_H": 4, "BLOCK_W": 8, "BLOCK_C": 8}, num_warps=4, num_stages=1)
    large = triton.Config({"BLOCK_H": 8, "BLOCK_W": 16, "BLOCK_C": 16}, num_warps=4, num_stages=1)

    def tune(*args, config, **meta):
        kernel.fn.run(*args, **dict(meta, **config.all_kwargs()))
        return [0.0 if config is large else 1.0] * 3

    monkeypatch.setattr(kernel, "_bench", tune)
    g = torch.Generator().manual_seed(11)
    opts = dict(dtype=torch.float64)
    x = torch.randn(2, 8, 10, 13, generator=g, **opts).to(DEVICE)  # 10 x 13: cells and tiles past the edge
    w = torch.randn(8, 1, k, k, generator=g, **opts).to(DEVICE)
    scale = (torch.rand(8, generator=g, **opts) + 0.5).to(DEVICE).requires_grad_()
    shift = torch.randn(8, generator=g, **opts).to(DEVICE).requires_grad_()
    conv = dict(stride=1, padding=k // 2, groups=8)
    ref = _eager_block(x, w, scale, shift, None, "relu", **conv)
    grad_out = torch.randn(ref.shape, generator=g, **opts).to(DEVICE)
    want = torch.autograd.grad(ref, [scale, shift], grad_out)
    for configs in ([small, large], [small], [large]):
        monkeypatch.setattr(kernel, "configs", configs)
        monkeypatch.setattr(kernel, "cache", {})
        monkeypatch.setitem(kernel.__dict__, "_cnnc_chosen", {})
        with kernels.poisoned_outputs():
            out = kernels.conv2d(x, w, scale=scale, shift=shift, activation="relu", policy=policy(autotune=True),
                                 **conv)
            got = torch.autograd.grad(out, [scale, shift], grad_out)
        assert kernel.best_config is configs[-1]
        for name, a, b in zip(("scale", "shift"), got, want):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10, msg=lambda m: f"grad {name}: {m}")
    assert depthwise_module.epilogue_sum_cells(2, 10, 13) == 2 * 3 * 2


# ---------------------------------------------------------------------------
# Large filters in the backward: the epilogue backward recomputes the conv with the forward's
# row-reuse loop (the policy's dw_forward), and at stride 1 with multiplier 1 the input gradient
# is the forward kernel on the flipped filter (dw_input_grad). Every tile height the
# autotune spaces have, both loops, against eager autograd in float64; which kernel ran is checked.
# ---------------------------------------------------------------------------
BACKWARD_PATH_CASES = {  # ((KH, KW), stride, padding, dilation, multiplier)
    "7x7": ((7, 7), 1, 3, 1, 1),
    "7x7_dil2": ((7, 7), 1, 6, 2, 1),
    "5x5_pad_beyond_reach": ((5, 5), 1, 5, 1, 1),  # flipped padding 4 - 5 = -1
    "5x5_pad0": ((5, 5), 1, 0, 1, 1),
    "1x11": ((1, 11), 1, (0, 5), 1, 1),
    "11x1_dil2": ((11, 1), 1, (7, 0), (2, 1), 1),
    "5x5_s2": ((5, 5), 2, 2, 1, 1),  # input gradient: gather at any setting
    "7x7_mult2": ((7, 7), 1, 3, 1, 2),  # likewise
}


@pytest.mark.slow
@pytest.mark.parametrize("path, block_h", [("rows", 2), ("rows", 4), ("rows", 8), ("taps", 4)])
@pytest.mark.parametrize("name", list(BACKWARD_PATH_CASES))
def test_depthwise_backward_large_filter_paths(name, block_h, path, monkeypatch):
    import triton

    (kh, kw), stride, padding, dilation, mult = BACKWARD_PATH_CASES[name]
    paths = policy(dw_forward=path, dw_input_grad="flipped" if path == "rows" else "gather")
    launched = []
    for name_ in ("depthwise_conv2d_kernel", "depthwise_epilogue_grad_kernel", "depthwise_input_grad_kernel"):
        kernel = getattr(depthwise_module, name_)
        # the epilogue backward's tiles are whole partial-sum cells (SUM_H rows): 2 rows is 4 there
        bh = max(block_h, depthwise_module.SUM_H) if name_ == "depthwise_epilogue_grad_kernel" else block_h
        tile = triton.Config({"BLOCK_H": bh, "BLOCK_W": 8, "BLOCK_C": 16}, num_warps=4, num_stages=1)
        monkeypatch.setattr(kernel, "configs", [tile])
        monkeypatch.setattr(kernel, "cache", {})
        monkeypatch.setattr(kernel, "_cnnc_chosen", {}, raising=False)
        real_run = kernel.fn.run
        monkeypatch.setattr(kernel.fn, "run", lambda *a, _n=name_, _r=real_run, **k: (launched.append(_n), _r(*a, **k))[1])
    g = torch.Generator().manual_seed(kh * 100 + kw + block_h)
    opts = dict(dtype=torch.float64)
    C = 6
    x = torch.randn(1, C, 13, 11, generator=g, **opts).to(DEVICE).to(memory_format=torch.channels_last)
    w = torch.randn(C * mult, 1, kh, kw, generator=g, **opts).to(DEVICE)
    scale = (torch.rand(C * mult, generator=g, **opts) + 0.5).to(DEVICE)
    shift = torch.randn(C * mult, generator=g, **opts).to(DEVICE)
    conv = dict(stride=stride, padding=padding, dilation=dilation, groups=C)
    residual = torch.randn(F.conv2d(x, w, None, **conv).shape, generator=g, **opts).to(DEVICE)
    leaves = [t.requires_grad_() for t in (x, w, scale, shift, residual)]
    with kernels.poisoned_outputs():
        out = kernels.conv2d(x, w, scale=scale, shift=shift, residual=residual, activation="silu", policy=paths,
                             **conv)
        grad_out = torch.randn(out.shape, generator=g, **opts).to(DEVICE)
        got = torch.autograd.grad(out, leaves, grad_out)
    ref = _eager_block(x, w, scale, shift, residual, "silu", **conv)
    want = torch.autograd.grad(ref, leaves, grad_out)
    for leaf, a, b in zip(("x", "weight", "scale", "shift", "residual"), got, want):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10, msg=lambda m: f"grad {leaf}: {m}")
    flipped = path == "rows" and stride == 1 and mult == 1
    want_input = ["depthwise_conv2d_kernel"] if flipped else ["depthwise_input_grad_kernel"]
    assert launched == ["depthwise_conv2d_kernel", "depthwise_epilogue_grad_kernel"] + want_input


def test_input_grad_path_choice():
    from cnnc.kernels.depthwise import input_grad_path_for

    auto = Policy()
    assert [input_grad_path_for(k, k, (1, 1), 1, auto) for k in (3, 5, 7)] == ["gather", "flipped", "flipped"]
    assert input_grad_path_for(7, 7, (2, 2), 1, auto) == "gather"
    assert input_grad_path_for(7, 7, (1, 1), 2, auto) == "gather"
    assert input_grad_path_for(7, 7, (1, 1), 1, Policy(dw_forward="taps")) == "gather"  # auto follows the forward
    flipped = Policy(dw_input_grad="flipped")
    assert input_grad_path_for(3, 3, (1, 1), 1, flipped) == "flipped"
    assert input_grad_path_for(3, 3, (1, 2), 1, flipped) == "gather"
    with pytest.raises(ValueError, match="dw_input_grad must be one of auto, gather, flipped; got 'fast'"):
        Policy(dw_input_grad="fast")
