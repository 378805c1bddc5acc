"""The DOT style table: how each op looks in `cnnc render`, one entry per op.

`OP_STYLES[op]` gives the node label (from the node's attributes), the node's
shape and fill colour, and two rules for its incoming edges: `skip_input`
picks the input drawn as a skip edge (an add's shorter input, a fused conv's
residual) and `join` draws every input of a concat in the join colour. `merges` marks
the shape-preserving one-input ops that may be folded into the node before
them (`conv 3x3, 64` + `bn · relu`); see render.py for when that is allowed.
Everything else about the picture (graph, cluster and edge attributes) is in
the constants at the bottom, so a change of look is a change of data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from cnnc.ir.ops import ACTIVATIONS


@dataclass(frozen=True)
class OpStyle:
    label: Callable  # (node, in_shapes) -> str
    shape: str = "box"
    fill: str = "#f2f2f2"
    merges: bool = False  # shape-preserving, one input: may join the node before it
    skip_input: Callable | None = None  # (node, levels) -> the input that bypasses the main path, or None
    join: bool = False  # concat: colour every incoming edge


def _pair(p) -> str:
    """(3, 3) -> '3', (1, 7) -> '1x7'."""
    return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"


def _kernel(p) -> str:
    return f"{p[0]}x{p[1]}"


def _stride(p) -> str:
    return "" if tuple(p) == (1, 1) else f"/{_pair(p)}"


def _conv(n, ins) -> str:
    groups, out = n.attr("groups"), n.attr("out")
    text = f"conv {_kernel(n.attr('kernel'))}{_stride(n.attr('stride'))}, {out}"
    if groups > 1:
        text += " dw" if groups == ins[0][0] == out else f" g{groups}"
    if tuple(n.attr("dilation")) != (1, 1):
        text += f" d{_pair(n.attr('dilation'))}"
    return text


def _pool(name):
    def label(n, ins) -> str:
        kernel = n.attr("kernel")
        stride, dilation = n.attr("stride") or kernel, n.attr("dilation", (1, 1))
        return f"{name} {_kernel(kernel)}{_stride(stride)}" + ("" if tuple(dilation) == (1, 1) else f" d{_pair(dilation)}")
    return label


def _conv_transpose(n, ins) -> str:
    groups, out = n.attr("groups"), n.attr("out")
    stride = n.attr("stride")  # enlarges the map: written s2, not conv's /2
    text = f"convT {_kernel(n.attr('kernel'))}{'' if tuple(stride) == (1, 1) else ' s' + _pair(stride)}, {out}"
    return text + (f" g{groups}" if groups > 1 else "")


def _upsample(n, ins) -> str:
    size, scale = n.attr("size"), n.attr("scale")
    how = f"to {_kernel(size)}" if size is not None else f"x{_num(scale[0])}" + (
        "" if scale[0] == scale[1] else f"x{_num(scale[1])}")
    return f"upsample {how} {n.attr('mode')}"


def _zeropad(n, ins) -> str:
    amounts = [n.attr(k) for k in ("left", "right", "top", "bottom", "front", "back")]
    return "pad " + " ".join(str(v) for v in (amounts if amounts[4:] != [0, 0] else amounts[:4]))


def _fused_conv(n, ins) -> str:
    folded = ["bn"] * bool(n.attr("bn")) + ["add"] * bool(n.attr("residual")) + [n.attr("act")] * bool(n.attr("act"))
    return "fused " + _conv(n, ins) + ("\n+ " + " · ".join(folded) if folded else "")


def _shorter_input(n, levels):
    """Of two inputs, the one fewer ops from the graph input: a shortcut around the other's path."""
    a, b = n.inputs
    if a == b or levels[a] == levels[b]:
        return None
    return a if levels[a] < levels[b] else b


def _residual_input(n, levels):
    # A fused conv adds its residual (input 2) in the epilogue. Which input is the shortcut depends on
    # which conv absorbed the add: the main path's (the residual skips) or the projection's (its own
    # input skips), so the shorter of the two is drawn as the skip, as for add.
    return _shorter_input(n, levels) if n.attr("residual") else None


def _fixed(text):
    return lambda n, ins: text


def _num(v) -> str:
    return f"{v:.3g}"  # droppath rates such as 0.00588235 read as 0.00588


# Fill colours by family, so a glance tells convolution from pooling from joins.
CONV, FUSED, NORM, ACT, POOL, DENSE, JOIN, MISC, IO = (
    "#cfe2f3", "#a4c2f4", "#fff2cc", "#f4f4f4", "#d9ead3", "#d9d2e9", "#fce5cd", "#eeeeee", "#b6d7a8")

OP_STYLES: dict[str, OpStyle] = {
    "input": OpStyle(lambda n, ins: "input", shape="invhouse", fill=IO),
    "conv": OpStyle(_conv, fill=CONV),
    "fused:conv": OpStyle(_fused_conv, fill=FUSED, skip_input=_residual_input),
    "batchnorm": OpStyle(_fixed("bn"), fill=NORM, merges=True),
    "layernorm": OpStyle(_fixed("ln"), fill=NORM, merges=True),
    "lrn": OpStyle(lambda n, ins: f"lrn {n.attr('size')}", fill=NORM, merges=True),
    "maxpool": OpStyle(_pool("maxpool"), fill=POOL),
    "avgpool": OpStyle(_pool("avgpool"), fill=POOL),
    "global_avgpool": OpStyle(_fixed("global avgpool"), fill=POOL),
    "global_maxpool": OpStyle(_fixed("global maxpool"), fill=POOL),
    "adaptive_avgpool": OpStyle(lambda n, ins: f"adaptive avgpool {_kernel(n.attr('size'))}", fill=POOL),
    "flatten": OpStyle(_fixed("flatten"), fill=MISC),
    "linear": OpStyle(lambda n, ins: f"linear {n.attr('out')}", fill=DENSE),
    "dropout": OpStyle(lambda n, ins: f"dropout {_num(n.attr('p'))}", fill=MISC, merges=True),
    "droppath": OpStyle(lambda n, ins: f"droppath {_num(n.attr('p'))}", fill=MISC, merges=True),
    "layerscale": OpStyle(_fixed("layerscale"), fill=MISC, merges=True),
    "scale": OpStyle(lambda n, ins: f"scale {_num(n.attr('factor'))}", fill=MISC, merges=True),
    "softmax": OpStyle(_fixed("softmax"), fill=ACT, merges=True),
    "identity": OpStyle(_fixed("identity"), fill=MISC, merges=True),
    "zeropad": OpStyle(_zeropad, fill=MISC, merges=False),
    "conv_transpose": OpStyle(_conv_transpose, fill=CONV),
    "upsample": OpStyle(_upsample, fill=POOL),
    "pixel_shuffle": OpStyle(lambda n, ins: f"pixel shuffle x{n.attr('factor')}", fill=MISC),
    "leaky_relu": OpStyle(lambda n, ins: f"leaky_relu {_num(n.attr('slope'))}", fill=ACT, merges=True),
    "groupnorm": OpStyle(lambda n, ins: f"gn {n.attr('groups')}", fill=NORM, merges=True),
    "slice": OpStyle(lambda n, ins: f"slice {n.attr('start')}:{n.attr('stop')}", fill=MISC),
    "channel_shuffle": OpStyle(lambda n, ins: f"shuffle g{n.attr('groups')}", fill=MISC, merges=True),
    "concat": OpStyle(_fixed("concat"), shape="box", fill=JOIN, join=True),
    "add": OpStyle(_fixed("add"), shape="ellipse", fill=JOIN, skip_input=_shorter_input),
    "sub": OpStyle(_fixed("sub"), shape="ellipse", fill=JOIN, skip_input=_shorter_input),
    "mul": OpStyle(_fixed("mul"), shape="ellipse", fill=JOIN, skip_input=_shorter_input),
}
for _act in ACTIVATIONS:
    OP_STYLES[_act] = OpStyle(_fixed(_act), fill=ACT, merges=True)



def style_of(op: str) -> OpStyle:
    """The op's style; an op added to ops.py without one is drawn by name (tests flag the gap)."""
    return OP_STYLES.get(op) or OpStyle(lambda n, ins: n.op, fill=MISC)


# ---- graph-level look --------------------------------------------------------------

FONT = "Helvetica"
GRAPH_ATTRS = {
    "rankdir": "TB", "newrank": "true", "nodesep": "0.25", "ranksep": "0.3",
    "fontname": FONT, "fontsize": "16", "labelloc": "t",
}
NODE_ATTRS = {"shape": "box", "style": "rounded,filled", "fontname": FONT, "fontsize": "11",
              "height": "0.3", "margin": "0.08,0.03", "penwidth": "0.8"}
EDGE_ATTRS = {"fontname": FONT, "fontsize": "9", "fontcolor": "#555555", "color": "#444444",
              "arrowsize": "0.6", "penwidth": "0.9"}

# Block-instance clusters get a fill that darkens slightly with nesting; labelled
# groups (branch1..4, downsample) are outlined only, so branches read as lanes.
BLOCK_FILLS = ("#eef3fb", "#e2eaf6", "#d6e1f1", "#cad8ec")
BLOCK_CLUSTER = {"style": "rounded,filled", "color": "#8ea9cf", "fontsize": "11", "fontname": FONT,
                 "labeljust": "l", "penwidth": "0.8"}
GROUP_CLUSTER = {"style": "rounded,dashed", "color": "#999999", "fontsize": "10", "fontname": FONT,
                 "labeljust": "l", "fontcolor": "#555555", "penwidth": "0.8"}

# A block instance drawn as one node (below --depth); a run of repeats gets a double border.
COLLAPSED = {"shape": "box3d", "style": "filled", "fillcolor": "#dbe6f5"}
REPEATED = {"peripheries": "2"}
OUTPUT = {"shape": "house", "style": "filled,bold", "fillcolor": "#f9cb9c"}
TRAIN_OUTPUT = {"shape": "house", "style": "filled,dashed", "fillcolor": "#fde9d9"}
INPUT = {"style": "filled,bold"}

# Edge kinds: a skip edge bypasses the main path into an add/mul; a join edge feeds a concat.
EDGE_KINDS = {
    "data": {},
    "skip": {"style": "dashed", "color": "#cc4125", "fontcolor": "#cc4125"},
    "join": {"color": "#e69138"},
}
