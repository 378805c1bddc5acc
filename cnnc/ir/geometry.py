"""Spatial geometry per op: the window each op slides over its input, and the receptive field it yields.

`GEOMETRY[op]` is the op's rule, `(attrs, in_shapes, out_shape) -> Window | JOIN | SOURCE`:

  Window   a one-input op reading a kernel of input positions per output position, per axis
           (kernel, stride, dilation, padding before the first window). Pointwise ops
           (bn, activations, 1x1 linear on a map, ...) are the 1x1 window; a global pool or a
           flatten is one window over the whole map; a zeropad shifts (negative amounts crop).
  JOIN     several inputs meet position by position (add, mul, concat): the union of their fields.
  SOURCE   a graph input: every position sees itself.

`receptive_fields(graph)` propagates a `Field` per axis through the graph in node order, by the
standard recurrence (Araujo et al., "Computing Receptive Fields of Convolutional Neural
Networks", Distill 2019): with input field size r, jump j and start s,

    r' = r + (d (k - 1)) j        j' = j * stride        s' = s - padding * j

`size` is the theoretical receptive field: the span of input pixels that can reach one output
position, padding included, so it can exceed the image. `jump` is the distance in input pixels
between adjacent output positions. A join takes the union of its same-size inputs' intervals
(so a shifted branch widens it) and at least the size of any broadcast input (an SE gate sees
the whole map). An op without a rule has an unknown field (None), as has everything after it;
tests/test_summary.py fails until every op in ops.py has a row.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from .ops import conv_padding, get


@dataclass(frozen=True)
class Window:
    kernel: tuple  # (kh, kw)
    stride: tuple  # (sh, sw): ints, or Fractions for an adaptive pool whose size does not divide
    dilation: tuple = (1, 1)
    pad: tuple = (0, 0)  # (top, left) padding before the first window; negative crops


JOIN = "join"
SOURCE = "source"
POINTWISE = Window((1, 1), (1, 1))


@dataclass(frozen=True)
class Field:
    """Per axis (h, w): receptive field size, jump and start (input coordinate of position 0's field)."""

    size: tuple
    jump: tuple
    start: tuple


def _pointwise(a, ins, out):
    return POINTWISE


def _conv(a, ins, out):
    return Window(get(a, "kernel"), get(a, "stride"), get(a, "dilation"), conv_padding(a))


def _pool(a, ins, out):
    kernel = get(a, "kernel")
    return Window(kernel, get(a, "stride") or kernel, dict(a).get("dilation", (1, 1)), get(a, "padding"))


def _transposed_axis(k: int, s: int, d: int, p: int):
    """(kernel, dilation, pad) in input units of one axis of a transposed conv. Output o takes
    input i through tap t when o = i*s - p + t*d: the taps reaching one output are those with
    t*d = o + p (mod s), every s/g-th tap (g = gcd(d, s)), so at most ceil(k g / s) of them, reading
    inputs d/g apart. `pad`: how many input positions before 0 output 0 reads from."""
    g = math.gcd(d, s)
    reach = [t for t in range(k) if (t * d - p) % s == 0]
    before = max(((t * d - p) // s for t in reach), default=0)
    return -(-k * g // s), Fraction(d, g), before


def _conv_transpose(a, ins, out):
    """A transposed conv in input units: stride 1/s (each input position spreads over s outputs),
    and per output only the filter taps whose phase matches it (`_transposed_axis`)."""
    axes = [_transposed_axis(k, s, d, p) for k, s, d, p in
            zip(get(a, "kernel"), get(a, "stride"), get(a, "dilation"), get(a, "padding"))]
    return Window(tuple(x[0] for x in axes), tuple(Fraction(1, s) for s in get(a, "stride")),
                  tuple(x[1] for x in axes), tuple(x[2] for x in axes))


# Input positions an interpolated output reads per axis, and how far before position 0 the
# first one lies (torch's interpolate, align_corners=false: nearest reads floor(o / scale), bilinear
# the two and bicubic the four neighbours of (o + 0.5) / scale - 0.5, clamped at the border).
_INTERPOLATION_TAPS = {"nearest": (1, 0), "bilinear": (2, 1), "bicubic": (4, 2)}


def _upsample(a, ins, out):
    taps, before = _INTERPOLATION_TAPS[get(a, "mode")]
    stride = tuple(Fraction(n, o) for n, o in zip(ins[0][1:], out[1:]))
    return Window((taps, taps), stride, (1, 1), (before, before))


def _pixel_shuffle(a, ins, out):
    """Output (oh, ow) comes from input (oh // r, ow // r): one position, jump 1/r."""
    r = get(a, "factor")
    return Window((1, 1), (Fraction(1, r), Fraction(1, r)))


def _whole_map(a, ins, out):
    """One window over the input's whole height and width (global pools; flatten)."""
    s = ins[0]
    if len(s) != 3:  # flattening a vector changes nothing
        return POINTWISE
    return Window((s[1], s[2]), (s[1], s[2]))


def _adaptive_axis(n: int, o: int):
    """(largest window, stride) of torch's adaptive pooling from n to o positions: window i spans
    [floor(i n / o), ceil((i + 1) n / o))."""
    if n % o == 0:
        return n // o, n // o
    widest = max(-(-(i + 1) * n // o) - (i * n // o) for i in range(o))
    return widest, Fraction(n, o)


def _adaptive(a, ins, out):
    (kh, sh), (kw, sw) = (_adaptive_axis(n, o) for n, o in zip(ins[0][1:], out[1:]))
    return Window((kh, kw), (sh, sw))


def _zeropad(a, ins, out):
    return Window((1, 1), (1, 1), (1, 1), (get(a, "top"), get(a, "left")))


def _linear(a, ins, out):
    return POINTWISE  # on a vector it keeps the field; on a map it acts per position


def _join(a, ins, out):
    return JOIN


def _source(a, ins, out):
    return SOURCE


GEOMETRY: dict = {
    "input": _source,
    "conv": _conv,
    "fused:conv": _conv,  # the residual (input 2) is the conv's output shape: joined by `receptive_fields`
    "conv_transpose": _conv_transpose,
    "upsample": _upsample,
    "pixel_shuffle": _pixel_shuffle,
    "maxpool": _pool,
    "avgpool": _pool,
    "global_avgpool": _whole_map,
    "global_maxpool": _whole_map,
    "adaptive_avgpool": _adaptive,
    "flatten": _whole_map,
    "linear": _linear,
    "zeropad": _zeropad,
    "concat": _join,
    "add": _join,
    "sub": _join,
    "mul": _join,
    # pointwise in space: normalisations over channels, activations, channel ops, scaling
    **{op: _pointwise for op in (
        "batchnorm", "layernorm", "lrn", "relu", "relu6", "silu", "gelu", "sigmoid", "tanh", "hardswish",
        "hardsigmoid", "softmax", "identity", "dropout", "droppath", "layerscale", "scale", "shift",
        "channel_shuffle", "leaky_relu", "groupnorm", "slice")},
}

# The ops whose window is their defining attribute: the summary shows kernel, stride and dilation.
WINDOW_OPS = ("conv", "fused:conv", "conv_transpose", "maxpool", "avgpool", "global_avgpool", "global_maxpool",
              "adaptive_avgpool")


def window_of(node, in_shapes):
    """The node's window when it is a conv or pool, else None. A transposed conv shows its own
    kernel, stride, dilation and padding (its geometry rule works in input units)."""
    if node.op not in WINDOW_OPS:
        return None
    if node.op == "conv_transpose":
        a = node.attrs
        return Window(get(a, "kernel"), get(a, "stride"), get(a, "dilation"), get(a, "padding"))
    return GEOMETRY[node.op](node.attrs, in_shapes, node.shape)


def _spatial(shape) -> tuple:
    return tuple(shape[1:]) if len(shape) == 3 else ()


def _through(f: Field, w: Window) -> Field:
    size, jump, start = [], [], []
    for ax in range(2):
        k, s, d, p = w.kernel[ax], w.stride[ax], w.dilation[ax], w.pad[ax]
        size.append(f.size[ax] + d * (k - 1) * f.jump[ax])
        jump.append(f.jump[ax] * s)
        start.append(f.start[ax] - p * f.jump[ax])
    return Field(tuple(size), tuple(jump), tuple(start))


def _join_fields(fields: list, shapes: list, out_shape) -> Field:
    """Union of the intervals of the inputs as large as the output; broadcast inputs (a 1x1 gate)
    see what they see wherever they are added, so they bound the size from below."""
    full = [f for f, s in zip(fields, shapes) if _spatial(s) == _spatial(out_shape)] or fields
    size, jump, start = [], [], []
    for ax in range(2):
        lo = min(f.start[ax] for f in full)
        hi = max(f.start[ax] + f.size[ax] for f in full)
        size.append(max([hi - lo] + [f.size[ax] for f in fields]))
        jump.append(max(f.jump[ax] for f in full))
        start.append(lo)
    return Field(tuple(size), tuple(jump), tuple(start))


def receptive_fields(g) -> list:
    """A Field (or None: an op without a geometry rule, or after one) per node, in node order."""
    out: list = []
    for n in g.nodes:
        rule = GEOMETRY.get(n.op)
        ins = [out[i] for i in n.inputs]
        if rule is None or any(f is None for f in ins):
            out.append(None)
            continue
        shapes = g.in_shapes(n)
        kind = rule(n.attrs, shapes, n.shape)
        if kind == SOURCE:
            out.append(Field((1, 1), (1, 1), (0, 0)))
        elif kind == JOIN:
            out.append(_join_fields(ins, shapes, n.shape))
        else:
            f = _through(ins[0], kind)
            if len(ins) > 1:  # a fused conv's residual joins its output
                f = _join_fields([f] + ins[1:], [n.shape] + shapes[1:], n.shape)
            out.append(f)
    return out


def number(v):
    """An int, or a float for a fractional jump (an adaptive pool whose sizes do not divide)."""
    if isinstance(v, Fraction):
        return v.numerator if v.denominator == 1 else float(v)
    return v


__all__ = ["GEOMETRY", "WINDOW_OPS", "Window", "Field", "JOIN", "SOURCE", "window_of", "receptive_fields",
           "number"]
