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


def _zeropad(n, ins) -> str:
    """`pad 1 1 1 1` (left right top bottom, then front back when channels are padded too);
    negative amounts crop: `crop 1 0 1 0`; cropping one side and padding the other as much shifts
    the map (NASNet's zeropad(-1, 1, -1, 1): `shift left 1, up 1`); other mixtures are spelled
    per side."""
    sides = ("left", "right", "top", "bottom", "front", "back")
    amounts = [n.attr(k) for k in sides]
    if amounts[4:] == [0, 0]:
        sides, amounts = sides[:4], amounts[:4]
    if min(amounts) >= 0:
        return "pad " + " ".join(map(str, amounts))
    if max(amounts) <= 0:
        return "crop " + " ".join(str(-a) for a in amounts)
    if len(amounts) == 4 and amounts[0] == -amounts[1] and amounts[2] == -amounts[3]:
        left, _, top, _ = amounts
        moves = [f"{'left' if left < 0 else 'right'} {abs(left)}"] * bool(left)
        moves += [f"{'up' if top < 0 else 'down'} {abs(top)}"] * bool(top)
        return "shift " + ", ".join(moves)
    crop = ", ".join(f"{k} {-a}" for k, a in zip(sides, amounts) if a < 0)
    pad = ", ".join(f"{k} {a}" for k, a in zip(sides, amounts) if a > 0)
    return f"crop {crop} · pad {pad}"


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
    "shift": OpStyle(lambda n, ins: f"shift {_num(n.attr('offset'))}", fill=MISC, merges=True),
    "softmax": OpStyle(_fixed("softmax"), fill=ACT, merges=True),
    "identity": OpStyle(_fixed("identity"), fill=MISC, merges=True),
    "zeropad": OpStyle(_zeropad, fill=MISC),
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



# How a real-valued attribute that varies along a run of repeats is named in its `xN` node
# (`cnblock x9, drop 0.04–0.08`); others read `op attribute`.
RANGE_NAMES = {("droppath", "p"): "drop", ("dropout", "p"): "dropout", ("layerscale", "init"): "layer scale",
               ("scale", "factor"): "scale"}


def range_label(op: str, attr: str, lo: float, hi: float) -> str:
    name = RANGE_NAMES.get((op, attr), f"{op} {attr}")
    a, b = f"{lo:.2f}", f"{hi:.2f}"
    if a == b:
        a, b = _num(lo), _num(hi)
    return f"{name} {a}–{b}"


def style_of(op: str) -> OpStyle:
    """The op's style; an op added to ops.py without one is drawn by name (tests flag the gap)."""
    return OP_STYLES.get(op) or OpStyle(lambda n, ins: n.op, fill=MISC)


# ---- graph-level look --------------------------------------------------------------

FONT = "Helvetica"
GRAPH_ATTRS = {
    "rankdir": "TB", "newrank": "true", "nodesep": "0.25", "ranksep": "0.3",
    "fontname": FONT, "fontsize": "16", "labelloc": "t",
}
# Left to right, a long picture's title starts where the graph does, not in the middle.
RANKDIR_ATTRS = {"TB": {}, "LR": {"labeljust": "l"}}
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
# (Its margin keeps three label lines clear of the 3-D top face.)
COLLAPSED = {"shape": "box3d", "style": "filled", "fillcolor": "#dbe6f5", "margin": "0.12,0.09"}
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

# The legend: what each fill colour and edge kind means, for the ones a picture uses.
FAMILIES = {CONV: "conv", FUSED: "fused conv", NORM: "norm", ACT: "activation", POOL: "pool", DENSE: "linear",
            JOIN: "join", MISC: "other", IO: "input"}
LEGEND_EDGES = {"skip": "skip: shortcut into add/mul", "join": "concat input"}
LEGEND_CLUSTER = {"style": "rounded", "color": "#bbbbbb", "fontsize": "10", "fontname": FONT, "labeljust": "l",
                  "fontcolor": "#555555", "penwidth": "0.6", "label": "legend"}
LEGEND_PER_ROW = {"TB": 4, "LR": 1}

# Layout metrics of the look above, in points, for estimating a picture's size without Graphviz
# (render.estimate_extent), calibrated against dot's layouts of the spec library.
LINE_PT = 13.2  # a label line at fontsize 11
NODE_MIN_PT = 21.6  # NODE_ATTRS height 0.3 in
NODE_MARGIN_PT = 2.2  # NODE_ATTRS margin 0.03 in, above and below
COLLAPSED_MARGIN_PT = 6.5  # COLLAPSED margin 0.09 in
PERIPHERY_PT = 8.0  # a repeat's second border
NODE_SIDE_MARGIN_PT = 5.8  # NODE_ATTRS margin 0.08 in, left and right
CHAR_PT = 6.2  # average character width at fontsize 11
EDGE_CHAR_PT = 5.0  # at the edge labels' fontsize 9
EDGE_LABEL_PT = 11.0  # an edge label's height
RANKSEP_PT = 21.6  # GRAPH_ATTRS ranksep 0.3 in
CLUSTER_TOP_PT = 22.0  # a cluster's label and top margin
CLUSTER_SIDE_PT = 8.0  # a cluster's margin (LR: its label sits across the rank axis)
CLUSTER_BOTTOM_PT = 8.0
TITLE_PT = 24.0  # the graph label at fontsize 16
PAD_PT = 4.0  # Graphviz's pad around the drawing
LEGEND_ROW_PT = 17.0  # a row of the legend's table
LEGEND_WIDTH_PT = 190.0  # the legend's width (LR: one column, along the rank axis)
ESTIMATE_MARGIN = {"TB": 1.05, "LR": 1.15}  # err on the large side (LR: parallel branches widen ranks more)
