"""Backward of kernels.conv2d: float64 gradcheck on tiny shapes (Triton kernels under the
interpreter on CPU), and float32 gradients against eager autograd on random shapes."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernels
from kernels_testlib import DEVICE, GRAD_TOLERANCES, REFERENCE_ACTIVATIONS, require_triton_path, same_memory_format

# (C_in, mult or None for grouped, groups, (KH, KW), stride, padding, dilation, activation)
GRADCHECK_CASES = {
    "dw3_s1_gelu": (3, 1, 3, (3, 3), 1, 1, 1, "gelu"),      # Triton input grad (flipped filter)
    "dw3_s2_mult2_relu": (2, 2, 2, (3, 3), 2, 1, 1, "relu"),  # torch input grad, Triton weight grad
    "dw3_dil2_silu": (2, 1, 2, (3, 3), 1, 2, 2, "silu"),
    "dw_1x3_sigmoid": (2, 1, 2, (1, 3), 1, (0, 1), 1, "sigmoid"),
    "dw5_hardswish": (2, 1, 2, (5, 5), 1, 2, 1, "hardswish"),
    "dw3_relu6_mult2": (2, 2, 2, (3, 3), 1, 1, 1, "relu6"),
    "grouped_g2_none": (4, None, 2, (3, 3), 1, 1, 1, None),
    "grouped_g2_s2_silu": (4, None, 2, (3, 3), 2, 1, 1, "silu"),
}


@pytest.mark.parametrize("name", list(GRADCHECK_CASES))
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

    out = kernels.conv2d(x, w, scale=scale, shift=shift, residual=residual, activation=case["act"], **conv_args)
    grads = torch.autograd.grad(out, inputs, grad_out)
    ref = _eager_block(x, w, scale, shift, residual, case["act"], **conv_args)
    ref_grads = torch.autograd.grad(ref, inputs, grad_out)
    for name, got, want in zip(["x", "weight", "scale", "shift", "residual"], grads, ref_grads):
        assert bool(torch.isfinite(got).all()), f"grad {name} not finite"
        atol, rtol = GRAD_TOLERANCES[torch.float32]
        torch.testing.assert_close(got, want, atol=atol, rtol=rtol, msg=lambda m: f"grad {name}: {m}")
    assert same_memory_format(grads[0], x), "grad x does not follow x's memory format"


def test_opcheck_registered_ops():
    """torch.library.opcheck: schema, fake (meta) impl, autograd registration agree."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 5, 5, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    w = torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    shift = torch.randn(4, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    torch.library.opcheck(torch.ops.cnnc_kernels.conv2d.default,
                          (x, w, [1, 1], [1, 1], [1, 1], 4, None, shift, "relu", None),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    dc = torch.randn(1, 4, 5, 5, generator=g, dtype=torch.float64).to(DEVICE)
    torch.library.opcheck(torch.ops.cnnc_kernels.conv2d_input_grad.default,
                          (dc, w.detach(), [1, 4, 5, 5], [1, 1], [1, 1], [1, 1], 4, False),
                          test_utils=("test_schema", "test_faketensor"))
    torch.library.opcheck(torch.ops.cnnc_kernels.conv2d_weight_grad.default,
                          (x.detach(), dc, [4, 1, 3, 3], [1, 1], [1, 1], [1, 1], 4),
                          test_utils=("test_schema", "test_faketensor"))
