"""The fused epilogue `act(acc * scale + shift + residual)`: one Triton helper shared by
every conv kernel, its eager-torch twin (the fallback and the test reference), and the
activation derivatives used by the backward pass.
"""

import math

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from ._runtime import accumulator_dtype

# The kernels' ACT: an activation as a small int (ACT_CODES[name]), not its name. A string constexpr
# works in Triton, but torch.compile's analysis of a kernel launched through `wrap_triton` takes
# string arguments for specialization attributes, fails, and then assumes the kernel writes every
# tensor it is given (torch 2.14, `triton_kernel_wrap.generate_ttir`).
ACT_CODES = {None: 0, "none": 0, "relu": 1, "relu6": 2, "silu": 3, "gelu": 4, "hardswish": 5, "sigmoid": 6}
RELU, RELU6, SILU, GELU, HARDSWISH, SIGMOID = (tl.constexpr(ACT_CODES[a]) for a in
                                               ("relu", "relu6", "silu", "gelu", "hardswish", "sigmoid"))


@triton.jit
def apply_activation(x, ACT: tl.constexpr):
    """`x` is the fp32 (or fp64) accumulator; ACT is `ACT_CODES[activation]` (0: none). NaN and
    infinities come out as eager PyTorch gives them: relu and relu6 are selects that let NaN
    (and -0.0) through, as torch's threshold and hardtanh do (tl.maximum would turn NaN into 0);
    the formulas of the others propagate NaN and give torch's values at +-inf."""
    if ACT == RELU:
        x = tl.where(x < 0.0, 0.0, x)
    elif ACT == RELU6:
        x = tl.where(x < 0.0, 0.0, tl.where(x > 6.0, 6.0, x))
    elif ACT == SILU:
        x = x / (1.0 + tl.exp(-x))
    elif ACT == GELU:  # erf form, torch's default approximate="none"
        x = 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))
    elif ACT == HARDSWISH:
        x = x * tl.minimum(tl.maximum(x + 3.0, 0.0), 6.0) / 6.0
    elif ACT == SIGMOID:
        x = 1.0 / (1.0 + tl.exp(-x))
    return x


@triton.jit
def apply_activation_grad(g, z, ACT: tl.constexpr):
    """dL/dz = g * act'(z) on fp32 (or fp64) tiles, from the pre-activation z, with torch's
    conventions at the kinks (the same as `activation_grad` below): relu'(0) = 0,
    relu6' is 1 strictly inside (0, 6), hardswish' is 0 for z <= -3 and 1 for z >= 3."""
    if ACT == RELU:
        g = tl.where(z > 0.0, g, 0.0)
    elif ACT == RELU6:
        g = tl.where((z > 0.0) & (z < 6.0), g, 0.0)
    elif ACT == SILU:
        s = 1.0 / (1.0 + tl.exp(-z))
        g = g * s * (1.0 + z * (1.0 - s))
    elif ACT == GELU:  # erf form
        cdf = 0.5 * (1.0 + tl.math.erf(z * 0.7071067811865476))
        pdf = tl.exp(-0.5 * z * z) * 0.3989422804014327
        g = g * (cdf + z * pdf)
    elif ACT == HARDSWISH:
        g = tl.where(z <= -3.0, 0.0, tl.where(z < 3.0, g * (2.0 * z + 3.0) / 6.0, g))
    elif ACT == SIGMOID:
        s = 1.0 / (1.0 + tl.exp(-z))
        g = g * s * (1.0 - s)
    return g


# Eager twins, keyed by activation name (None means identity).
TORCH_ACTIVATIONS = {
    None: lambda z: z,
    "relu": F.relu,
    "relu6": F.relu6,
    "silu": F.silu,
    "gelu": F.gelu,
    "hardswish": F.hardswish,
    "sigmoid": torch.sigmoid,
}


def torch_epilogue(conv_out, scale, shift, residual, activation):
    """Eager epilogue in fp32 (fp64 for fp64), cast back to the conv's dtype, exactly the
    arithmetic order of the kernels: (((acc * scale) + shift) + residual) -> act."""
    acc_dtype = accumulator_dtype(conv_out.dtype)
    z = conv_out.to(acc_dtype)
    if scale is not None:
        z = z * scale.to(acc_dtype).view(1, -1, 1, 1)
    if shift is not None:
        z = z + shift.to(acc_dtype).view(1, -1, 1, 1)
    if residual is not None:
        z = z + residual.to(acc_dtype)
    return TORCH_ACTIVATIONS[activation](z).to(conv_out.dtype)


# ---------------------------------------------------------------------------
# Backward: d act(z) / dz. Activations whose derivative is a function of the
# output y are differentiated from y (no recompute needed); the others need
# the pre-activation z, which the backward recomputes.
# ---------------------------------------------------------------------------
NEEDS_PREACTIVATION = {"silu": True, "gelu": True, "hardswish": True}


def activation_grad(grad_y, y, z, activation):
    """Return dL/dz in fp32 (fp64 for fp64) given dL/dy; `z` may be None when the
    activation is differentiated from its output `y`. Matches torch's conventions at
    the kinks (relu'(0) = 0, relu6'(0) = relu6'(6) = 0, hardswish'(-3) = 0, hardswish'(3) = 1)."""
    acc_dtype = accumulator_dtype(grad_y.dtype)
    g = grad_y.to(acc_dtype)
    if activation is None:
        return g
    if activation == "relu":
        return torch.where(y > 0, g, torch.zeros_like(g))
    if activation == "relu6":
        return torch.where((y > 0) & (y < 6), g, torch.zeros_like(g))
    if activation == "sigmoid":
        s = y.to(acc_dtype)
        return g * s * (1.0 - s)
    z = z.to(acc_dtype)
    if activation == "silu":
        s = torch.sigmoid(z)
        return g * s * (1.0 + z * (1.0 - s))
    if activation == "gelu":
        cdf = 0.5 * (1.0 + torch.erf(z * (1.0 / math.sqrt(2.0))))
        pdf = torch.exp(-0.5 * z * z) * (1.0 / math.sqrt(2.0 * math.pi))
        return g * (cdf + z * pdf)
    if activation == "hardswish":
        # torch: 0 for z <= -3, 1 for z >= 3, (2z + 3) / 6 strictly in between
        mid = (2.0 * z + 3.0) / 6.0
        d = torch.where(z <= -3.0, torch.zeros_like(z), torch.where(z < 3.0, mid, torch.ones_like(z)))
        return g * d
    raise ValueError(f"activation: unknown activation {activation!r}")
