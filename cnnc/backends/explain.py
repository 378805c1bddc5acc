"""`cnnc build --explain`: for each convolution, where the generated module will run it and why.

The decision is `cnnc.kernels.dispatch.choose`, the one a layer makes at its first forward
(`kernels.choose_for`), taken here from the IR's shapes and the options that stand in for the
input tensor: the device's name (default none: then every conv takes the torch route, since no
measurement applies), dtype, memory layout and batch size. The kernel policy's `dispatch_timing`
"auto" is read as host time, what an eager forward pays.
"""
from __future__ import annotations

from cnnc.ir.graph import Graph
from cnnc.ir.ops import conv_padding
from cnnc.kernels import dispatch
from cnnc.kernels.policy import Policy

CONV_OPS = ("conv", "fused:conv")
COLUMNS = ("layer", "conv", "class", "runs", "why")


def explain(graph: Graph, device: str = dispatch.NO_DEVICE, dtype: str = "float16", layout: str = "channels_last",
            batch: int = 1, policy: Policy | None = None) -> list[dict]:
    """One row per 2-d convolution of `graph`, in node order (see the module docstring)."""
    policy = policy or Policy()
    timing = "host" if policy.dispatch_timing == "auto" else policy.dispatch_timing
    rows = []
    for node in graph.nodes:
        (in_shape, *_) = graph.in_shapes(node) if node.inputs else ((),)
        if node.op not in CONV_OPS or len(in_shape) != 3:
            continue
        groups, (kh, kw) = node.attr("groups"), node.attr("kernel")
        stride, dilation, padding = node.attr("stride"), node.attr("dilation"), conv_padding(node.attrs)
        x_shape = (batch,) + tuple(in_shape)
        weight_shape = (node.attr("out"), in_shape[0] // groups, kh, kw)
        choice = dispatch.choose(device, dtype, layout, x_shape, weight_shape, groups, stride, padding, dilation,
                                 policy, timing)
        runs = {"triton": f"Triton {choice.kernel}", "torch": "torch" if device == "cpu" else "cuDNN"}[choice.backend]
        rows.append({"layer": node.path, "conv": f"{in_shape[0]}->{weight_shape[0]} k{kh}x{kw} s{stride[0]} g{groups}",
                     "class": choice.shape_class or "-", "runs": runs,
                     "why": choice.reason.partition(": ")[2] or choice.reason})  # (the route it names is "runs")
    return rows


def render(rows: list[dict], device: str, dtype: str, layout: str, batch: int) -> str:
    """The rows as an aligned text table under a line naming what they assume, then counts."""
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in COLUMNS[:-1]}
    lines = [f"kernel dispatch for device {device!r}, {dtype}, {layout}, batch {batch}:",
             "  ".join(c.ljust(widths[c]) for c in COLUMNS[:-1]) + "  why"]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS[:-1]) + "  " + r["why"] for r in rows]
    triton = sum(r["runs"].startswith("Triton") for r in rows)
    lines.append(f"{len(rows)} convolutions: {triton} on Triton kernels, {len(rows) - triton} on "
                 f"{'torch' if device == 'cpu' else 'cuDNN'}")
    return "\n".join(lines) + "\n"
