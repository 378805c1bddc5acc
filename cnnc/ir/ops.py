"""The op table: one entry per op, holding its signature and its rules.

Each `OpDef` states the arguments an op takes and three rules keyed by the op:
`shape` (output shape from input shapes and attributes), `params` (learnable
parameter count) and `macs` (multiply-accumulates per sample). Shapes never
include the batch dimension: (C, H, W) for feature maps, (F,) for flat vectors.

Counting convention (documented in the README): parameters include weights,
biases and the affine weights of normalisation layers; BatchNorm's running
statistics are buffers, not parameters. MACs count the multiply-adds of conv
and linear layers only (the convention behind torchvision's published GFLOPS);
a transposed conv counts every input pixel times its out/groups kernels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from .values import describe_value, fmt_shape

Shape = tuple


class OpError(Exception):
    """A rule's complaint; the IR generator attaches the location."""

    def __init__(self, message: str, notes: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.notes = list(notes)


REQUIRED = object()


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str  # int, posint, nonneg, float, prob, bool, pair, pospair, padding, scale, parts, dims, str
    default: object = REQUIRED
    choices: tuple = ()  # for kind "str": the values accepted


@dataclass(frozen=True)
class OpDef:
    name: str
    arity: str  # "none" (a graph input), "one", "two", "many"
    args: tuple
    shape: Callable
    params: Callable = lambda a, ins, out: 0
    macs: Callable = lambda a, ins, out: 0
    doc: str = ""
    aliases: tuple = field(default_factory=tuple)


OPS: dict[str, OpDef] = {}
ALIASES: dict[str, str] = {}


def op(name, arity, args=(), *, shape, params=None, macs=None, doc="", aliases=()):
    d = OpDef(name, arity, tuple(args), shape, params or (lambda a, i, o: 0), macs or (lambda a, i, o: 0),
              doc, tuple(aliases))
    OPS[name] = d
    for al in aliases:
        ALIASES[al] = name
    return d


def lookup(name: str) -> OpDef | None:
    return OPS.get(ALIASES.get(name, name))


# ---- argument normalisation -----------------------------------------------------


def normalize(a: Arg, value, opname: str):
    """Check and normalise the value given for argument `a`: `none` is accepted where the
    default is none (an optional argument), a string must be one of `a.choices` when listed."""
    if value is None and a.default is None:
        return None
    value = normalize_arg(a.kind, value, opname, a.name)
    if a.choices and value not in a.choices:
        shown = ", ".join(f'"{c}"' for c in a.choices)
        raise OpError(f'\'{a.name}\' of {opname} must be one of {shown}, got "{value}"')
    return value


def normalize_arg(kind: str, value, opname: str, argname: str):
    """Check and normalise one argument value; raise OpError with a clear message."""
    where = f"'{argname}' of {opname}"

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if kind in ("int", "posint", "nonneg"):
        if not is_int(value):
            raise OpError(f"{where} must be an integer, got {describe(value)}")
        if kind == "posint" and value < 1:
            raise OpError(f"{where} must be at least 1, got {value}")
        if kind == "nonneg" and value < 0:
            raise OpError(f"{where} must not be negative, got {value}")
        return value
    if kind in ("float", "prob"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OpError(f"{where} must be a number, got {describe(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise OpError(f"{where} must be finite, got {value}")
        if kind == "prob" and not 0.0 <= value < 1.0:
            raise OpError(f"{where} must be a probability in [0, 1), got {value}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise OpError(f"{where} must be true or false, got {describe(value)}")
        return value
    if kind in ("pair", "pospair", "padding"):
        if kind == "padding" and value == "same":
            return "same"
        given = value
        if is_int(value):
            value = (value, value)
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(is_int(v) for v in value):
            lo = 1 if kind == "pospair" else 0
            if min(value) < lo:
                shown = given if is_int(given) else list(given)
                raise OpError(f"{where} must be {'positive' if lo else 'non-negative'}, got {shown}")
            return tuple(value)
        extra = ' or "same"' if kind == "padding" else ""
        raise OpError(f"{where} must be an integer or a pair [h, w]{extra}, got {describe(value)}")
    if kind == "scale":  # a positive factor, or a pair [h, w] of them
        pair = value if isinstance(value, (list, tuple)) else (value, value)
        if len(pair) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair):
            raise OpError(f"{where} must be a number or a pair [h, w] of numbers, got {describe(value)}")
        if not all(math.isfinite(v) and v > 0 for v in pair):
            shown = list(value) if isinstance(value, (list, tuple)) else value
            raise OpError(f"{where} must be positive, got {shown}")
        return (float(pair[0]), float(pair[1]))
    if kind == "parts":  # a number of equal parts, or a list of part sizes
        if is_int(value):
            if value < 1:
                raise OpError(f"{where} must be at least 1, got {value}")
            return value
        if isinstance(value, (list, tuple)) and value and all(is_int(v) for v in value):
            if min(value) < 1:
                raise OpError(f"{where}: every part needs at least one channel, got {list(value)}")
            return tuple(value)
        raise OpError(f"{where} must be a number of parts or a list of part sizes, got {describe(value)}")
    if kind == "dims":
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise OpError(f"{where} must be a string, got {describe(value)}")
        return value
    raise AssertionError(kind)


def describe(v) -> str:
    return describe_value(v)


def get(attrs, name):
    for k, v in attrs:
        if k == name:
            return v
    raise KeyError(name)


# ---- shape rules ----------------------------------------------------------------


def _need_map(opname, s):
    if len(s) != 3:
        raise OpError(f"{opname} expects a feature map CxHxW, got a tensor of shape {fmt_shape(s)}",
                      ("flatten turns a map into a vector; spatial ops must come before it" if len(s) == 1 else "",))
    return s


def _window(opname, size, k, stride, pad, dil, ceil_mode=False, axis="height"):
    span = dil * (k - 1) + 1
    if span > size + 2 * pad:
        raise OpError(f"{opname} kernel larger than its padded input: kernel {k} (dilation {dil}) spans {span}, "
                      f"but the padded {axis} is {size + 2 * pad}")
    num = size + 2 * pad - span
    if ceil_mode:
        out = -(-num // stride) + 1
        if (out - 1) * stride >= size + pad:  # torch: last window must start inside the input
            out -= 1
    else:
        out = num // stride + 1
    return out


def conv_padding(a, in_shape=None):
    pad = get(a, "padding")
    if pad != "same":
        return pad
    (kh, kw), (dh, dw) = get(a, "kernel"), get(a, "dilation")
    return (dh * (kh - 1) // 2, dw * (kw - 1) // 2)


def _check_groups(groups, in_shape, out):
    for what, c in (("input", in_shape[0]), ("output", out)):
        if c % groups:
            raise OpError(f"groups ({groups}) must divide the {what} channels ({c})",
                          (f"input shape {fmt_shape(in_shape)}",))


def _conv_shape(a, ins):
    (_, h, w) = _need_map("conv", ins[0])
    out, groups = get(a, "out"), get(a, "groups")
    (kh, kw), (sh, sw), (dh, dw) = get(a, "kernel"), get(a, "stride"), get(a, "dilation")
    if get(a, "padding") == "same" and ((dh * (kh - 1)) % 2 or (dw * (kw - 1)) % 2):
        raise OpError(f'padding "same" needs an odd kernel, got {kh}x{kw}')
    ph, pw = conv_padding(a)
    _check_groups(groups, ins[0], out)
    ho = _window("conv", h, kh, sh, ph, dh, axis="height")
    wo = _window("conv", w, kw, sw, pw, dw, axis="width")
    return (out, ho, wo)


def _conv_params(a, ins, out):
    kh, kw = get(a, "kernel")
    return get(a, "out") * (ins[0][0] // get(a, "groups")) * kh * kw + (get(a, "out") if get(a, "bias") else 0)


def _conv_macs(a, ins, out):
    kh, kw = get(a, "kernel")
    return out[0] * out[1] * out[2] * (ins[0][0] // get(a, "groups")) * kh * kw


op("conv", "one",
   [Arg("out", "posint"), Arg("kernel", "pospair"), Arg("stride", "pospair", 1), Arg("padding", "padding", 0),
    Arg("dilation", "pospair", 1), Arg("groups", "posint", 1), Arg("bias", "bool", True)],
   shape=_conv_shape, params=_conv_params, macs=_conv_macs,
   doc='2-D convolution; kernel/stride/padding/dilation take n or [h, w]; padding "same" pads (k-1)*d/2',
   aliases=("conv2d",))


def _pool_shape(name):
    def rule(a, ins):
        (c, h, w) = _need_map(name, ins[0])
        (kh, kw) = get(a, "kernel")
        stride = get(a, "stride")
        (sh, sw) = stride if stride is not None else (kh, kw)
        (ph, pw) = get(a, "padding")
        if ph * 2 > kh or pw * 2 > kw:
            raise OpError(f"{name} padding ({ph}x{pw}) must be at most half the kernel ({kh}x{kw})")
        ceil = get(a, "ceil_mode")
        (dh, dw) = get(a, "dilation") if name == "maxpool" else (1, 1)
        return (c, _window(name, h, kh, sh, ph, dh, ceil, "height"), _window(name, w, kw, sw, pw, dw, ceil, "width"))
    return rule


_pool_args = [Arg("kernel", "pospair"), Arg("stride", "pospair", None), Arg("padding", "pair", 0),
              Arg("ceil_mode", "bool", False)]
op("maxpool", "one", _pool_args + [Arg("dilation", "pospair", 1)], shape=_pool_shape("maxpool"),
   doc="max pooling; stride defaults to the kernel; dilation spaces the window's taps")
op("avgpool", "one", _pool_args + [Arg("count_include_pad", "bool", True)], shape=_pool_shape("avgpool"),
   doc="average pooling; stride defaults to the kernel")


def _global(name):
    def rule(a, ins):
        (c, _, _) = _need_map(name, ins[0])
        return (c, 1, 1)
    return rule


op("global_avgpool", "one", shape=_global("global_avgpool"), doc="mean over HxW, keeps a 1x1 map")
op("global_maxpool", "one", shape=_global("global_maxpool"), doc="max over HxW, keeps a 1x1 map")


def _adaptive(a, ins):
    (c, _, _) = _need_map("adaptive_avgpool", ins[0])
    (oh, ow) = get(a, "size")
    return (c, oh, ow)


op("adaptive_avgpool", "one", [Arg("size", "pospair")], shape=_adaptive, doc="average pool to a fixed output size")


def _same(a, ins):
    return ins[0]


def _channels(a, ins, out):
    return 2 * ins[0][0]


op("batchnorm", "one", [Arg("eps", "float", 1e-5), Arg("momentum", "float", 0.1)],
   shape=lambda a, ins: _need_map("batchnorm", ins[0]) if len(ins[0]) != 1 else ins[0], params=_channels,
   doc="batch normalisation over channels (affine)", aliases=("bn",))
op("layernorm", "one", [Arg("eps", "float", 1e-5)], shape=_same, params=_channels,
   doc="layer normalisation over the channel dimension (affine)")
op("lrn", "one", [Arg("size", "posint", 5), Arg("alpha", "float", 1e-4), Arg("beta", "float", 0.75),
                  Arg("k", "float", 1.0)],
   shape=lambda a, ins: _need_map("lrn", ins[0]), doc="local response normalisation across channels")

ACTIVATIONS = ("relu", "relu6", "silu", "gelu", "sigmoid", "tanh", "hardswish", "hardsigmoid")
for _act in ACTIVATIONS:
    op(_act, "one", shape=_same, doc=f"elementwise {_act}")

op("softmax", "one", shape=_same, doc="softmax over channels")
op("identity", "one", shape=_same, doc="passes its input through")
op("dropout", "one", [Arg("p", "prob", 0.5)], shape=_same, doc="dropout (training only)")
op("droppath", "one", [Arg("p", "prob", 0.0)], shape=_same,
   doc="stochastic depth: drops the whole sample's branch (training only)")
op("layerscale", "one", [Arg("init", "float", 1e-6)], shape=_same, params=lambda a, ins, o: ins[0][0],
   doc="learnable per-channel scale (ConvNeXt)")
op("scale", "one", [Arg("factor", "float")], shape=_same, doc="multiply by a constant")
op("shift", "one", [Arg("offset", "float")], shape=_same, doc="add a constant")


def _shuffle(a, ins):
    (c, h, w) = _need_map("channel_shuffle", ins[0])
    if c % get(a, "groups"):
        raise OpError(f"channel_shuffle groups ({get(a, 'groups')}) must divide the channels ({c})")
    return ins[0]


op("channel_shuffle", "one", [Arg("groups", "posint")], shape=_shuffle, doc="ShuffleNet channel shuffle")


def _flatten(a, ins):
    return (math.prod(ins[0]),)


op("flatten", "one", shape=_flatten, doc="flattens CxHxW to one vector")


def _linear_shape(a, ins):
    s = ins[0]
    if len(s) == 1:
        return (get(a, "out"),)
    return (get(a, "out"),) + tuple(s[1:])


op("linear", "one", [Arg("out", "posint"), Arg("bias", "bool", True)], shape=_linear_shape,
   params=lambda a, ins, o: ins[0][0] * get(a, "out") + (get(a, "out") if get(a, "bias") else 0),
   macs=lambda a, ins, o: ins[0][0] * math.prod(o),
   doc="fully connected; on a CxHxW map it acts on the channels at every position")


def _concat(a, ins):
    if len(ins) < 2:
        raise OpError(f"concat needs at least two inputs, got {len(ins)}")
    first = ins[0]
    for i, s in enumerate(ins[1:], 2):
        if len(s) != len(first) or s[1:] != first[1:]:
            what = "spatial" if len(s) == len(first) == 3 else "rank"
            raise OpError(f"{what} mismatch at concat: input 1 is {fmt_shape(first)}, input {i} is {fmt_shape(s)}",
                          ("concat joins along channels; every input needs the same height and width",))
    return (sum(s[0] for s in ins),) + tuple(first[1:])


op("concat", "many", shape=_concat, doc="concatenation along channels")


def _broadcast(name):
    def rule(a, ins):
        x, y = ins
        if len(x) != len(y):
            raise OpError(f"rank mismatch at {name}: {fmt_shape(x)} vs {fmt_shape(y)}")
        out = []
        for i, (p, q) in enumerate(zip(x, y)):
            if p != q and 1 not in (p, q):
                dim = ("channel" if i == 0 else "spatial") if len(x) == 3 else "size"
                raise OpError(f"{dim} mismatch at {name}: {fmt_shape(x)} vs {fmt_shape(y)}",
                              ("elementwise ops need equal sizes, or 1 to broadcast",))
            out.append(max(p, q))
        return tuple(out)
    return rule


for _ew in ("add", "sub", "mul"):
    op(_ew, "two", shape=_broadcast(_ew), doc=f"elementwise {_ew} with broadcasting")


def _input_shape(a, ins):
    return get(a, "dims")


op("input", "none", [Arg("dims", "dims")], shape=_input_shape, doc="a network input, e.g. input(3, size, size)")


# ---- the fusion passes' op ------------------------------------------------------------------------
# One kernel launch computing act(conv(x) * scale + shift + residual), where scale/shift come from a
# folded BatchNorm (or the conv bias), `residual` is an optional second input and `act` one of the
# activations the Triton kernels implement. Registered with the rest so every per-op table covers it;
# no spec can call it (its name has a colon): only the passes in cnnc/passes/ make it.

FUSED_CONV = "fused:conv"
KERNEL_ACTIVATIONS = ("relu", "relu6", "silu", "gelu", "hardswish", "sigmoid")


def _fused_shape(a, ins):
    out = _conv_shape(a, ins[:1])
    if get(a, "residual") and tuple(ins[1]) != tuple(out):
        raise OpError(f"residual {fmt_shape(ins[1])} does not match the conv output {fmt_shape(out)}")
    return out


def _fused_params(a, ins, out):
    return _conv_params(a, ins[:1], out) + (2 * get(a, "out") if get(a, "bn") else 0)


op(FUSED_CONV, "one", list(OPS["conv"].args) + [
    Arg("bn", "bool", False),          # a BatchNorm folded into scale/shift
    Arg("eps", "float", 1e-5),         # that BatchNorm's epsilon
    Arg("residual", "bool", False),    # a second input added before the activation
    Arg("act", "str", None),           # activation applied last, or none
    Arg("members", "dims", ()),        # instance paths of the nodes this one replaces
], shape=_fused_shape, params=_fused_params, macs=lambda a, ins, out: _conv_macs(a, ins[:1], out),
   doc="conv + folded BatchNorm + residual add + activation, one kernel")


# ---- ops added for the spec library ---------------------------------------------------------------


def _zeropad(a, ins):
    (c, h, w) = _need_map("zeropad", ins[0])
    l, r, t, b, f, k = (get(a, n) for n in ("left", "right", "top", "bottom", "front", "back"))
    co, ho, wo = c + f + k, h + t + b, w + l + r
    if co < 1 or ho < 1 or wo < 1:
        raise OpError(f"zeropad would leave a {co}x{ho}x{wo} map",
                      ("negative amounts crop; they must leave at least one channel, row and column",))
    return (co, ho, wo)


op("zeropad", "one", [Arg("left", "int"), Arg("right", "int"), Arg("top", "int"), Arg("bottom", "int"),
                      Arg("front", "int", 0), Arg("back", "int", 0)],
   shape=_zeropad,
   doc="pads the map with zeros in torch's F.pad order: left, right, top, bottom, then front and back "
       "(channels); negative amounts crop, so zeropad(-1, 1, -1, 1) shifts the map one pixel up and left "
       "(NASNet's factorized reduction)")


# ---- ops that enlarge a map, select channels, and more normalisations --------------------------------


def _conv_transpose_shape(a, ins):
    (_, h, w) = _need_map("conv_transpose", ins[0])
    out = get(a, "out")
    _check_groups(get(a, "groups"), ins[0], out)
    size = []
    for axis, i, k, s, p, op_, d in zip(("height", "width"), (h, w), get(a, "kernel"), get(a, "stride"),
                                        get(a, "padding"), get(a, "output_padding"), get(a, "dilation")):
        if op_ >= s and op_ >= d:  # torch's rule: the extra rows must fall inside one stride or dilation step
            raise OpError(f"output_padding ({op_}) must be smaller than the stride ({s}) or the dilation ({d})",
                          (f"along the {axis}",))
        o = (i - 1) * s - 2 * p + d * (k - 1) + op_ + 1
        if o < 1:
            raise OpError(f"conv_transpose would make a map of {axis} {o}: padding {p} on each side crops "
                          f"{2 * p} of the {o + 2 * p} rows it makes")
        size.append(o)
    return (out, size[0], size[1])


def _conv_transpose_params(a, ins, out):
    kh, kw = get(a, "kernel")
    return ins[0][0] * (get(a, "out") // get(a, "groups")) * kh * kw + (get(a, "out") if get(a, "bias") else 0)


def _conv_transpose_macs(a, ins, out):
    """Every input pixel of every input channel is multiplied by out/groups kernels of kh*kw weights
    (fvcore's count; products that land in the cropped `padding` border are counted too)."""
    (c, h, w), (kh, kw) = ins[0], get(a, "kernel")
    return h * w * c * (get(a, "out") // get(a, "groups")) * kh * kw


op("conv_transpose", "one",
   [Arg("out", "posint"), Arg("kernel", "pospair"), Arg("stride", "pospair", 1), Arg("padding", "pair", 0),
    Arg("output_padding", "pair", 0), Arg("groups", "posint", 1), Arg("dilation", "pospair", 1),
    Arg("bias", "bool", True)],
   shape=_conv_transpose_shape, params=_conv_transpose_params, macs=_conv_transpose_macs,
   doc="transposed 2-D convolution (torch's ConvTranspose2d): out = (in-1)*stride - 2*padding "
       "+ dilation*(kernel-1) + output_padding + 1")

UPSAMPLE_MODES = ("nearest", "bilinear", "bicubic")


def _upsample_shape(a, ins):
    (c, h, w) = _need_map("upsample", ins[0])
    scale, size, mode = get(a, "scale"), get(a, "size"), get(a, "mode")
    if (scale is None) == (size is None):
        raise OpError("upsample needs exactly one of 'scale' or 'size'" + (", got both" if scale else ""),
                      ("e.g. upsample(scale=2) or upsample(size=[28, 28])",))
    if get(a, "align_corners") and mode == "nearest":
        raise OpError('align_corners needs mode "bilinear" or "bicubic" (torch\'s rule)')
    if size is not None:
        return (c,) + tuple(size)
    ho, wo = math.floor(h * scale[0]), math.floor(w * scale[1])  # torch floors input * scale
    if ho < 1 or wo < 1:
        raise OpError(f"upsample by {_scale_text(scale)} would make a {ho}x{wo} map (torch floors input * scale)")
    return (c, ho, wo)


def _scale_text(scale) -> str:
    return f"{scale[0]:g}" if scale[0] == scale[1] else f"[{scale[0]:g}, {scale[1]:g}]"


op("upsample", "one",
   [Arg("scale", "scale", None), Arg("size", "pospair", None), Arg("mode", "str", "nearest", UPSAMPLE_MODES),
    Arg("align_corners", "bool", False)],
   shape=_upsample_shape,
   doc='resize by a factor (`scale`, floored as torch does) or to a `size`; mode "nearest", "bilinear" '
       'or "bicubic" (torch\'s F.interpolate)')


def _pixel_shuffle(a, ins):
    (c, h, w) = _need_map("pixel_shuffle", ins[0])
    r = get(a, "factor")
    if c % (r * r):
        raise OpError(f"pixel_shuffle by {r} needs channels divisible by {r * r}, got {c}")
    return (c // (r * r), h * r, w * r)


op("pixel_shuffle", "one", [Arg("factor", "posint")], shape=_pixel_shuffle,
   doc="rearranges C*r*r x H x W into C x H*r x W*r (sub-pixel convolution)")
op("leaky_relu", "one", [Arg("slope", "float", 0.01)], shape=_same, doc="elementwise leaky ReLU")


def _groupnorm(a, ins):
    c, groups = ins[0][0], get(a, "groups")
    if c % groups:
        raise OpError(f"groupnorm groups ({groups}) must divide the channels ({c})")
    return ins[0]


op("groupnorm", "one", [Arg("groups", "posint"), Arg("eps", "float", 1e-5)], shape=_groupnorm, params=_channels,
   doc="group normalisation (affine): channels in `groups` groups, each normalised over its channels and HxW")


def _slice(a, ins):
    c, start, stop = ins[0][0], get(a, "start"), get(a, "stop")
    if not start < stop <= c:
        raise OpError(f"slice [{start}:{stop}] must select channels {start} up to {stop} of the input's {c}",
                      ("0 <= start < stop <= channels",))
    return (stop - start,) + tuple(ins[0][1:])


op("slice", "one", [Arg("start", "nonneg"), Arg("stop", "posint")], shape=_slice,
   doc="channels start up to (not including) stop")


# ---- ops that make a list of nodes ------------------------------------------------------------------
# `split(x, 2)` is not one node: it makes one `slice` node per part and evaluates to the list of
# them, so the IR stays single-output. A ListOpDef has an op's signature (checked the same way) and
# a rule giving the attributes of each part.


@dataclass(frozen=True)
class ListOpDef:
    name: str
    arity: str
    args: tuple
    parts: Callable  # (attrs, in_shapes) -> [attrs of one `part_op` node, ...]; raises OpError
    part_op: str
    doc: str = ""


LIST_OPS: dict[str, ListOpDef] = {}


def _split_parts(a, ins):
    c, parts = ins[0][0], get(a, "parts")
    if isinstance(parts, int):
        if c % parts:
            raise OpError(f"split into {parts} equal parts needs channels divisible by {parts}, got {c}",
                          ("give the part sizes instead, e.g. split(x, [a, b]) with a + b = channels",))
        sizes = [c // parts] * parts
    else:
        if sum(parts) != c:
            raise OpError(f"split sizes {list(parts)} add up to {sum(parts)}, but the input has {c} channels")
        sizes = list(parts)
    bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    return [{"start": lo, "stop": hi} for lo, hi in zip(bounds, bounds[1:])]


LIST_OPS["split"] = ListOpDef("split", "one", (Arg("parts", "parts"),), _split_parts, "slice",
                              "split(x, n): n equal parts along channels; split(x, [c1, c2, ...]): parts of "
                              "those sizes; a list of tensors (each a `slice` node)")


def string_words() -> dict:
    """Words that are string values of some argument (`same`, `bilinear`) -> that argument's name:
    written without quotes they read as unknown names, and the error says to quote them."""
    words = {"same": "padding"}
    for d in OPS.values():
        for a in d.args:
            words.update((c, a.name) for c in a.choices)
    return words
