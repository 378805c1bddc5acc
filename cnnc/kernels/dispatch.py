"""Which convolutions of a generated module run on cnnc's Triton kernels: one decision per layer,
from a committed measurement. Imports no torch (`cnnc build --explain` runs it without a GPU).

A depthwise or grouped conv goes to a Triton kernel only where a measurement committed in this
package (`dispatch_tables/<device>.json`, written by `tools/dispatch_table.py` from a
`tools/gpu_session.sh measure` run) shows the kernel faster than the torch route on that device
model, for that dtype, memory layout and shape class, by at least MARGIN. Everywhere else, and for
every device without a table, the layer takes the torch route: cuDNN on a GPU (with the BatchNorm
folded into the conv's weight and bias, `conv2d.folded_conv2d`), the CPU library on a CPU.

    choose(device, dtype, layout, x_shape, weight_shape, groups, stride, padding, dilation, policy, timing)
        -> Choice(backend="triton" | "torch", kernel, shape_class, reason)

`device` is the CUDA device's name (`torch.cuda.get_device_name`, e.g. "NVIDIA H200"), "cpu",
"cpu-interpreter" (CPU tensors under Triton's interpreter, for tests) or NO_DEVICE (none named:
`cnnc build --explain` without --device). `timing` is which measured time decides: "host" (a call
in an eager loop, host work included) or "device" (the GPU's time alone, what torch.compile and
CUDA graphs leave). The policy's `dispatch` field overrides the table ("triton": every conv the
kernels take; "torch": none) and its `cudnn_epilogue` names the torch route measured against.

Shape classes (`shape_class`), what a measurement is keyed by besides device, dtype and layout:
  depthwise  "dw k3 s1 c<=256 px<=2^18": filter, stride (and channel multiplier "m2" when not 1),
             output channels rounded up to a power of two, output pixels N*OH*OW (batch included:
             it sets the bytes a call moves, so the host-versus-device balance) rounded up to an
             even power of two
  grouped    "g4x4 k3 s1 c<=256 px<=2^18": channels per group in x out, then the same
Dense convs (groups == 1) have no class: cnnc has no dense kernel, cuDNN runs them.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import NamedTuple

TABLE_DIR = Path(__file__).with_name("dispatch_tables")
FORMAT = 1
# A Triton kernel must be at least this much faster than the torch route (ratio of the measured
# times) to be chosen: smaller differences are within run-to-run noise, and cuDNN is the safe side.
MARGIN = 1.05
NO_DEVICE = "none"
# What the Triton kernels take (see conv2d.kernel_for): filters up to this size, these dtypes.
MAX_KERNEL_SIZE = 11
TRITON_DTYPES = ("float16", "bfloat16", "float32", "float64")
# Offsets inside the kernels are int32 except the batch term.
MAX_TRITON_NUMEL = 2**31 - 1
TIMINGS = ("host", "device")


class Choice(NamedTuple):
    """One layer's decision: `backend` "triton" (a cnnc kernel) or "torch" (cuDNN on a GPU);
    `kernel` "depthwise", "grouped" or "dense"; the layer's shape class (None for dense convs and
    convs no kernel takes); `reason`, one line saying why."""

    backend: str
    kernel: str
    shape_class: str | None
    reason: str


def output_hw(h, w, kernel, stride, padding, dilation) -> tuple[int, int]:
    """Output height and width of a convolution; kernel, stride, padding, dilation are (h, w) pairs."""
    (KH, KW), (SH, SW), (PH, PW), (DH, DW) = kernel, stride, padding, dilation
    return ((h + 2 * PH - DH * (KH - 1) - 1) // SH + 1,
            (w + 2 * PW - DW * (KW - 1) - 1) // SW + 1)


def triton_kernel(x_shape, weight_shape, groups, dtype: str) -> tuple[str | None, str]:
    """("depthwise" | "grouped", "") when a Triton kernel takes this conv (device aside), else
    (None, why not). dtype by name ("float16")."""
    N, C_in, H, W = x_shape
    C_out, _, KH, KW = weight_shape
    numel = N * C_in * H * W
    if groups <= 1:
        return None, "dense conv: cnnc has no dense kernel"
    if max(KH, KW) > MAX_KERNEL_SIZE:
        return None, f"{KH}x{KW} filter: the kernels take up to {MAX_KERNEL_SIZE}x{MAX_KERNEL_SIZE}"
    if dtype not in TRITON_DTYPES:
        return None, f"{dtype}: the kernels take {', '.join(TRITON_DTYPES)}"
    if numel == 0:
        return None, "empty input"
    if numel >= MAX_TRITON_NUMEL or C_out * numel // max(C_in, 1) >= MAX_TRITON_NUMEL:
        return None, "2^31 elements or more: the kernels index with int32"
    return ("depthwise" if groups == C_in else "grouped"), ""


def _power_of_two_at_least(n: int, step: int = 1) -> int:
    """The smallest 2^k >= n with k a multiple of `step`."""
    k = max(0, int(n) - 1).bit_length()
    return k + (-k) % step


def shape_class(x_shape, weight_shape, groups, stride, padding, dilation) -> str | None:
    """The shape class of a depthwise or grouped conv (module docstring); None for a dense one."""
    N, C_in, H, W = x_shape
    C_out, cin_g, KH, KW = weight_shape
    if groups <= 1:
        return None
    OH, OW = output_hw(H, W, (KH, KW), stride, padding, dilation)
    k = f"k{KH}" if KH == KW else f"k{KH}x{KW}"
    s = f"s{stride[0]}" if stride[0] == stride[1] else f"s{stride[0]}x{stride[1]}"
    if groups == C_in:
        kind = "dw" + (f" m{C_out // C_in}" if C_out != C_in else "")
    else:
        kind = f"g{cin_g}x{C_out // groups}"
    channels = 1 << _power_of_two_at_least(C_out)
    pixels = _power_of_two_at_least(N * OH * OW, step=2)
    return f"{kind} {k} {s} c<={channels} px<=2^{pixels}"


@functools.lru_cache(maxsize=None)
def tables() -> dict:
    """Every committed dispatch table, by device name (read once)."""
    found = {}
    for path in sorted(TABLE_DIR.glob("*.json")):
        table = load_table(path)
        found[table["device"]] = table
    return found


def load_table(path) -> dict:
    """A dispatch table file, checked: its entries indexed by (dtype, layout, class) under "index"."""
    with open(path) as f:
        table = json.load(f)
    if table.get("format") != FORMAT:
        raise ValueError(f"{path}: dispatch table format {table.get('format')!r}, expected {FORMAT}")
    index = {}
    for entry in table["entries"]:
        key = (entry["dtype"], entry["layout"], entry["class"])
        if key in index:
            raise ValueError(f"{path}: two entries for {key}")
        index[key] = entry
    table["index"] = index
    return table


def _fmt_us(value) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


@functools.lru_cache(maxsize=4096)
def choose(device: str, dtype: str, layout: str, x_shape: tuple, weight_shape: tuple, groups: int,
           stride: tuple, padding: tuple, dilation: tuple, policy, timing: str = "host") -> Choice:
    """Where a conv with these arguments runs (module docstring). Pure and cached: the same
    arguments always give the same Choice. `policy` is a `Policy`; `timing` "host" or "device"
    (`Policy.dispatch_timing` resolved by the caller)."""
    if timing not in TIMINGS:
        raise ValueError(f"timing: expected one of {', '.join(TIMINGS)}, got {timing!r}")
    kernel, why_not = triton_kernel(x_shape, weight_shape, groups, dtype)
    cls = shape_class(x_shape, weight_shape, groups, stride, padding, dilation)
    torch_route = {"cpu": "torch (CPU)", NO_DEVICE: "torch (cuDNN on a GPU)"}.get(device, "cuDNN")
    if kernel is None:
        return Choice("torch", "dense" if groups <= 1 else "other", cls, f"{torch_route}: {why_not}")
    if device == "cpu":
        return Choice("torch", kernel, cls, "torch (CPU): the Triton kernels run on a GPU")
    if device == "cpu-interpreter":
        if policy.dispatch == "torch":
            return Choice("torch", kernel, cls, "torch: the policy says dispatch=torch")
        return Choice("triton", kernel, cls, "Triton's interpreter on a CPU tensor (tests)")
    if policy.dispatch != "measured":
        backend = "triton" if policy.dispatch == "triton" else "torch"
        return Choice(backend, kernel, cls, f"{torch_route if backend == 'torch' else 'Triton'}: "
                                            f"the policy says dispatch={policy.dispatch}")
    if device == NO_DEVICE:
        return Choice("torch", kernel, cls, f"{torch_route}: no device named, so no measurement applies")
    table = tables().get(device)
    if table is None:
        return Choice("torch", kernel, cls, f"cuDNN: no dispatch table for {device}")
    entry = table["index"].get((dtype, layout, cls))
    if entry is None:
        return Choice("torch", kernel, cls, f"cuDNN: {device} has no measurement of {cls} ({dtype}, {layout})")
    times = entry["us"]
    triton_us = (times.get("triton") or {}).get(timing)
    torch_us = (times.get(policy.cudnn_epilogue) or {}).get(timing)
    when = table["measured"].get("date", "?")[:10]
    if triton_us is None or torch_us is None:
        return Choice("torch", kernel, cls, f"cuDNN: the {device} measurement of {cls} ({when}) lacks a {timing} "
                                            f"time for {'Triton' if triton_us is None else policy.cudnn_epilogue}")
    measured = (f"measured on {device} ({when}): Triton {_fmt_us(triton_us)} us, cuDNN "
                f"({policy.cudnn_epilogue}) {_fmt_us(torch_us)} us per call, {timing} time")
    if triton_us * MARGIN < torch_us:
        return Choice("triton", kernel, cls, f"Triton: {measured}, {torch_us / triton_us:.2f}x")
    return Choice("torch", kernel, cls, f"cuDNN: {measured}")
