"""Shared pieces of the kernel tests: the tolerance table, the eager reference, helpers.

Named kernels_testlib (not helpers/utils) because pytest's default import mode puts each
test directory on sys.path, where short module names collide across directories.
"""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from cnnc import kernels

# One tolerance table, per dtype: (atol, rtol) for a kernel output against the float64
# reference computed from the *same* (already rounded) inputs. fp16/bf16 errors are
# dominated by the final rounding of the output (2^-11 and 2^-8 relative) plus the
# rounding of the fp16 conv result in the fallback path.
TOLERANCES = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (2e-5, 2e-5),
    torch.float16: (4e-3, 4e-3),
    torch.bfloat16: (3e-2, 2e-2),
}

# Gradients (float32 on CPU under the interpreter, fp32 on GPU) against eager autograd of
# the unfused block; gradients sum over many terms, hence looser than the forward.
GRAD_TOLERANCES = {
    torch.float32: (1e-4, 1e-4),
    torch.float16: (2e-2, 2e-2),
}

# Activations as torch.nn.functional computes them, the reference for the fused epilogue.
REFERENCE_ACTIVATIONS = {
    None: lambda z: z,
    "relu": F.relu,
    "relu6": F.relu6,
    "silu": F.silu,
    "gelu": F.gelu,
    "hardswish": F.hardswish,
    "sigmoid": torch.sigmoid,
}

ON_CUDA = torch.cuda.is_available()
DEVICE = "cuda" if ON_CUDA else "cpu"


def policy(**fields):
    """The default kernel policy with `fields` changed: a test that picks a path keeps the rest of
    the run's policy (`tools/gpu_session.sh check` runs with autotune=false)."""
    return dataclasses.replace(kernels.default_policy(), **fields)


def reference_conv2d(x, weight, stride, padding, dilation, groups, scale=None, shift=None,
                     activation=None, residual=None):
    """Eager float64 reference: F.conv2d with groups, * scale + shift, + residual, act."""
    z = F.conv2d(x.double(), weight.double(), None, stride, padding, dilation, groups)
    if scale is not None:
        z = z * scale.double().view(1, -1, 1, 1)
    if shift is not None:
        z = z + shift.double().view(1, -1, 1, 1)
    if residual is not None:
        z = z + residual.double()
    return REFERENCE_ACTIVATIONS[activation](z)


def assert_close_to_reference(out, ref, dtype):
    """NaN never passes: every element must be finite and within the dtype's tolerance."""
    assert out.dtype == dtype, (out.dtype, dtype)
    assert out.shape == ref.shape, (tuple(out.shape), tuple(ref.shape))
    finite = torch.isfinite(out)
    assert bool(finite.all()), f"{int((~finite).sum())} of {out.numel()} outputs are not finite (unwritten?)"
    atol, rtol = TOLERANCES[dtype]
    err = (out.double().cpu() - ref.cpu()).abs()
    bound = atol + rtol * ref.cpu().abs()
    worst = (err - bound).argmax()
    assert bool((err <= bound).all()), (
        f"{int((err > bound).sum())} of {out.numel()} outputs out of tolerance for {dtype}; "
        f"worst: got {out.flatten()[worst].item()}, expected {ref.flatten()[worst].item()}")


def same_memory_format(out, x):
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return out.is_contiguous(memory_format=torch.channels_last)
    return out.is_contiguous()


def require_triton_path(x, weight, groups):
    """Fail loudly if a configuration that should run a Triton kernel would fall back."""
    if not ON_CUDA and not kernels.INTERPRET:
        pytest.fail("kernels was imported before tests/kernels/conftest.py set TRITON_INTERPRET=1; "
                    "set it in the top-level tests/conftest.py (or run tests/kernels on its own)")
    backend = kernels.backend_for(x, weight, groups)
    assert backend == "triton", f"expected the Triton path, got {backend} ({kernels.kernel_for(x, weight, groups)})"


def make_inputs(*, N, C_in, C_out, H, W, KH, KW, groups, dtype, channels_last,
                stride, padding, dilation, with_scale, with_shift, with_residual,
                scale_fp32, seed=0, device=DEVICE):
    """Random inputs with weights scaled by 1/sqrt(fan_in) so outputs stay O(1)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, C_in, H, W, generator=g).to(device=device, dtype=dtype)
    fan_in = (C_in // groups) * KH * KW
    w = (torch.randn(C_out, C_in // groups, KH, KW, generator=g) / fan_in ** 0.5).to(device=device, dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    vec_dtype = torch.float32 if scale_fp32 else dtype
    scale = (torch.rand(C_out, generator=g) + 0.5).to(device=device, dtype=vec_dtype) if with_scale else None
    shift = torch.randn(C_out, generator=g).to(device=device, dtype=vec_dtype) if with_shift else None
    OH = (H + 2 * padding[0] - dilation[0] * (KH - 1) - 1) // stride[0] + 1
    OW = (W + 2 * padding[1] - dilation[1] * (KW - 1) - 1) // stride[1] + 1
    residual = None
    if with_residual:
        residual = torch.randn(N, C_out, OH, OW, generator=g).to(device=device, dtype=dtype)
        if channels_last:
            residual = residual.to(memory_format=torch.channels_last)
    return x, w, scale, shift, residual


def tiered(values, fast):
    """Parameters for pytest.mark.parametrize: those in `fast` run in the fast tier (the README's
    test command), every other one in the slow tier (`-m slow`), so CI runs them all."""
    return [v if v in fast else pytest.param(v, marks=pytest.mark.slow) for v in values]
