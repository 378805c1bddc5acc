"""The fused convolution op that the fusion passes produce: one kernel launch computing

    act(conv(x) * scale + shift + residual)

where scale/shift come from a folded BatchNorm (or the conv bias), `residual` is an optional
second input, and `act` one of the activations the Triton kernels implement. The op name has a
colon, so no spec can call it: it exists only after the passes in cnnc/passes/.
"""
from __future__ import annotations

from .ops import OPS, Arg, _conv_macs, _conv_params, _conv_shape, get, op

FUSED_CONV = "fused:conv"
KERNEL_ACTIVATIONS = ("relu", "relu6", "silu", "gelu", "hardswish", "sigmoid")
CONV_ARGS = OPS["conv"].args


def _shape(a, ins):
    out = _conv_shape(a, ins[:1])
    if get(a, "residual") and tuple(ins[1]) != tuple(out):
        from .ops import OpError, fmt_shape

        raise OpError(f"residual {fmt_shape(ins[1])} does not match the conv output {fmt_shape(out)}")
    return out


def _params(a, ins, out):
    return _conv_params(a, ins[:1], out) + (2 * get(a, "out") if get(a, "bn") else 0)


if FUSED_CONV not in OPS:
    op(FUSED_CONV, "one", list(CONV_ARGS) + [
        Arg("bn", "bool", False),          # a BatchNorm folded into scale/shift
        Arg("eps", "float", 1e-5),         # that BatchNorm's epsilon
        Arg("residual", "bool", False),    # a second input added before the activation
        Arg("act", "str", None),           # activation applied last, or none
        Arg("members", "dims", ()),        # instance paths of the nodes this one replaces
    ], shape=_shape, params=_params, macs=lambda a, ins, out: _conv_macs(a, ins[:1], out),
       doc="conv + folded BatchNorm + residual add + activation, one kernel")
