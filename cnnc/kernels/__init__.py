"""Triton kernels for cnnc's generated code.

    kernels.conv2d(x, weight, *, stride, padding, dilation, groups, scale, shift,
                   activation, residual)

computes act(conv(x) * scale + shift + residual) with fused depthwise and grouped Triton
kernels and falls back to eager torch for everything else. `backend_for` / `kernel_for`
say which path a call takes. Generated modules call it only where `choose_for`
(`dispatch.choose`: a committed measurement per device, dtype, layout and shape class) says a
Triton kernel is faster than cuDNN, and `folded_conv2d` (cuDNN, the BatchNorm folded into weight
and bias) elsewhere. Every kernel choice still open is a `Policy` (`policy=` on those calls; `default_policy()` otherwise, from CNNC_KERNELS_POLICY; `using_policy` to
override it). See docs/kernels.md for the design.

Set TRITON_INTERPRET=1 before importing this package to run the Triton kernels on CPU
tensors under Triton's interpreter.
"""

from ._runtime import ACTIVATIONS, INTERPRET, poisoned_outputs
from .conv2d import backend_for, choose_for, conv2d, fold_batchnorm, folded_conv2d, kernel_for, torch_conv2d
from .dispatch import Choice
from .policy import Policy, default_policy, using_policy

__all__ = ["conv2d", "fold_batchnorm", "backend_for", "kernel_for", "torch_conv2d", "poisoned_outputs",
           "choose_for", "folded_conv2d", "Choice", "Policy", "default_policy", "using_policy", "ACTIVATIONS",
           "INTERPRET"]
