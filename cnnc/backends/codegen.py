"""Stage 5: IR -> the Python source of a torch.nn.Module that reads like torchvision's resnet.py.

`generate(graph)` lists the steps in order:

  1. tree     split the node list into instances by dotted path: the network, and inside it the
              block and group instances (`layer1`, `layer1.block0`, `...downsample`). Each instance
              is a list of statements: a leaf node, or a call of a child instance. An instance
              with no layer (a block that only picks an activation) is no submodule: its
              statements go inline into its parent's forward.
  2. classes  instances of the same block (or group label) with the same structure share one class.
  3. params   constructor arguments that differ between a class's instances (channels, stride,
              drop rates, ...) become parameters of its `__init__`; the rest are literals.
  4. render   `__init__` registers submodules in node order, so `state_dict()` lists tensors in
              IR order; `forward` names values like a person would (`x` flows through a chain,
              `out = self.conv1(x)` when `x` is needed again, `branch1 = self.branch1(x)`).

Per-op behaviour lives in the table `EMIT`, keyed by op: a rule returns either a `Layer` (a
submodule: the torch class and its constructor arguments) or an `Inline` expression for the
forward (functional ops: activations, add, concat, flatten, ...). An op without a rule is an
error that names it. See docs/codegen.md for the design of the generated classes.
"""
from __future__ import annotations

import heapq
import keyword
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cnnc.diagnostics import CnncError
from cnnc.ir.graph import Graph, Node, Scope, fmt_value, init_options
from cnnc.ir.schemes import in_scope
from cnnc.ir.ops import conv_padding
from cnnc.version import __version__

from . import names as naming

# ---- emission rules --------------------------------------------------------------------------

ALWAYS = object()  # a Slot default meaning "always write this argument"
CHANNELS = "channels"  # Slot.kind of channel counts (merged and named by the tensor they describe)


@dataclass(frozen=True)
class Slot:
    """One constructor argument of a layer."""

    name: str
    value: object
    default: object = ALWAYS  # omitted from the source when the value equals this
    kind: str = ""  # CHANNELS, or "" (= the argument's own name)
    ref: str | None = None  # for channel counts: the tensor described, "in" (first input) or "out"
    positional: bool = False


@dataclass(frozen=True)
class Layer:
    """A submodule: `self.<name> = <cls>(<slots>)`, called as `self.<name>(x)`; or, with `use`, a
    parameter that <cls>(<slots>) makes, read by the forward expression `use` ({0}: the input,
    {self}: the attribute), e.g. `x * self.layer_scale`."""

    cls: str
    slots: tuple
    use: str | None = None


@dataclass(frozen=True)
class Inline:
    """A forward expression; {0}, {1} are the inputs and {all} all of them, comma separated."""

    template: str


def _pair(v):
    """(3, 3) -> 3: square kernels, strides and paddings read as one number, as in torchvision."""
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1]:
        return v[0]
    return v


def _attr(n: Node, name):
    return _pair(n.attr(name))


def _conv(n: Node, ins) -> Layer:
    groups = n.attr("groups")
    return Layer("nn.Conv2d" if groups == 1 else "runtime.Conv2d", (
        Slot("in_channels", ins[0][0], kind=CHANNELS, ref="in", positional=True),
        Slot("out_channels", n.attr("out"), kind=CHANNELS, ref="out", positional=True),
        Slot("kernel_size", _attr(n, "kernel")),
        Slot("stride", _attr(n, "stride"), 1),
        Slot("padding", _pair(conv_padding(n.attrs)), 0),
        Slot("dilation", _attr(n, "dilation"), 1),
        Slot("groups", groups, 1, kind=CHANNELS),
        Slot("bias", n.attr("bias"), True),
    ))


def _conv_transpose(n: Node, ins) -> Layer:
    return Layer("nn.ConvTranspose2d", (
        Slot("in_channels", ins[0][0], kind=CHANNELS, ref="in", positional=True),
        Slot("out_channels", n.attr("out"), kind=CHANNELS, ref="out", positional=True),
        Slot("kernel_size", _attr(n, "kernel")),
        Slot("stride", _attr(n, "stride"), 1),
        Slot("padding", _attr(n, "padding"), 0),
        Slot("output_padding", _attr(n, "output_padding"), 0),
        Slot("groups", n.attr("groups"), 1, kind=CHANNELS),
        Slot("bias", n.attr("bias"), True),
        Slot("dilation", _attr(n, "dilation"), 1),
    ))


def _upsample(n: Node, ins) -> Inline:
    """F.interpolate with the spec's own scale (not the size it gives): torch maps coordinates by
    the scale factor, so only the same call computes the same values."""
    size, scale, mode = n.attr("size"), n.attr("scale"), n.attr("mode")
    how = f"size={_value(_pair(size))}" if size is not None else f"scale_factor={_value(_pair(scale))}"
    corners = ", align_corners=True" if n.attr("align_corners") else ""
    return Inline(f"F.interpolate({{0}}, {how}, mode={_value(mode)}{corners})")


def _groupnorm(n: Node, ins) -> Layer:
    return Layer("nn.GroupNorm", (
        Slot("num_groups", n.attr("groups"), positional=True),
        Slot("num_channels", ins[0][0], kind=CHANNELS, ref="in", positional=True),
        Slot("eps", n.attr("eps"), 1e-5),
    ))


def _zeropad(n: Node, ins) -> Inline:
    amounts = tuple(n.attr(k) for k in ("left", "right", "top", "bottom", "front", "back"))
    return Inline(f"F.pad({{0}}, {_value(amounts[:4] if amounts[4:] == (0, 0) else amounts)})")


def _fused_conv(n: Node, ins) -> Layer:
    conv = _conv(n, ins)
    return Layer("runtime.FusedConv2d", conv.slots + (
        Slot("bn", n.attr("bn"), False),
        Slot("eps", n.attr("eps"), 1e-5),
        Slot("activation", n.attr("act"), None),
    ))


def _batchnorm(n: Node, ins) -> Layer:
    return Layer("nn.BatchNorm2d" if len(ins[0]) == 3 else "nn.BatchNorm1d", (
        Slot("num_features", ins[0][0], kind=CHANNELS, ref="in", positional=True),
        Slot("eps", n.attr("eps"), 1e-5),
        Slot("momentum", n.attr("momentum"), 0.1),
    ))


def _layernorm(n: Node, ins) -> Layer:
    # over the channels (dim 1) of any input: a map CxHxW, a sequence CxL; a vector F is its channels
    return Layer("runtime.LayerNorm2d" if len(ins[0]) >= 2 else "nn.LayerNorm", (
        Slot("normalized_shape", ins[0][0], kind=CHANNELS, ref="in", positional=True),
        Slot("eps", n.attr("eps"), 1e-5),
    ))


def _lrn(n: Node, ins) -> Layer:
    return Layer("nn.LocalResponseNorm", (
        Slot("size", n.attr("size"), positional=True),
        Slot("alpha", n.attr("alpha"), 1e-4),
        Slot("beta", n.attr("beta"), 0.75),
        Slot("k", n.attr("k"), 1.0),
    ))


def _pool(cls, extra=()):
    def rule(n: Node, ins) -> Layer:
        slots = [Slot("kernel_size", _attr(n, "kernel")), Slot("stride", _attr(n, "stride"), None),
                 Slot("padding", _attr(n, "padding"), 0), Slot("ceil_mode", n.attr("ceil_mode"), False)]
        slots += [Slot(name, _attr(n, attr), default) for name, attr, default in extra]
        return Layer(cls, tuple(slots))
    return rule


def _fixed(cls, *args):
    """A layer whose constructor arguments are constants, e.g. nn.AdaptiveAvgPool2d(1)."""
    return lambda n, ins: Layer(cls, tuple(Slot(f"_{i}", a, positional=True) for i, a in enumerate(args)))


def _adaptive_avgpool(n: Node, ins) -> Layer:
    return Layer("nn.AdaptiveAvgPool2d", (Slot("output_size", _attr(n, "size"), positional=True),))


def _linear(n: Node, ins) -> Layer:
    return Layer("nn.Linear" if len(ins[0]) == 1 else "runtime.ChannelLinear", (
        Slot("in_features", ins[0][0], kind=CHANNELS, ref="in", positional=True),
        Slot("out_features", n.attr("out"), kind=CHANNELS, ref="out", positional=True),
        Slot("bias", n.attr("bias"), True),
    ))


def _dropout(cls):
    return lambda n, ins: Layer(cls, (Slot("p", n.attr("p")),))


def _layerscale(n: Node, ins) -> Layer:
    """A parameter of the enclosing module, as torchvision's CNBlock holds `layer_scale`."""
    slots = (Slot("channels", ins[0][0], kind=CHANNELS, ref="in", positional=True), Slot("init", n.attr("init")),
             Slot("rank", len(ins[0]), 3))
    return Layer("runtime.layer_scale", slots, use="{0} * {self}")


def _inline(template):
    return lambda n, ins: Inline(template)


def _value(v) -> str:
    """An attribute value inside an Inline template: a Python literal, braces doubled for format."""
    return naming.literal(v).replace("{", "{{").replace("}", "}}")


EMIT: dict = {
    "input": None,  # a graph input is an argument of forward, not a statement
    "conv": _conv,
    "fused:conv": _fused_conv,  # conv + BatchNorm + residual + activation (the fusion passes' op)
    "batchnorm": _batchnorm,
    "layernorm": _layernorm,
    "lrn": _lrn,
    "relu": _inline("F.relu({0})"),
    "relu6": _inline("F.relu6({0})"),
    "silu": _inline("F.silu({0})"),
    "gelu": _inline("F.gelu({0})"),
    "sigmoid": _inline("torch.sigmoid({0})"),
    "tanh": _inline("torch.tanh({0})"),
    "hardswish": _inline("F.hardswish({0})"),
    "hardsigmoid": _inline("F.hardsigmoid({0})"),
    "softmax": _inline("F.softmax({0}, dim=1)"),
    "identity": _inline("{0}"),
    "maxpool": _pool("nn.MaxPool2d", [("dilation", "dilation", 1)]),
    "avgpool": _pool("nn.AvgPool2d", [("count_include_pad", "count_include_pad", True)]),
    "global_avgpool": _fixed("nn.AdaptiveAvgPool2d", 1),
    "global_maxpool": _fixed("nn.AdaptiveMaxPool2d", 1),
    "adaptive_avgpool": _adaptive_avgpool,
    "flatten": _inline("torch.flatten({0}, 1)"),
    "linear": _linear,
    "dropout": _dropout("nn.Dropout"),
    "droppath": _dropout("runtime.DropPath"),
    "layerscale": _layerscale,
    "scale": lambda n, ins: Inline(f"{{0}} * {_value(n.attr('factor'))}"),
    "shift": lambda n, ins: Inline(f"{{0}} + {_value(n.attr('offset'))}"),
    "channel_shuffle": lambda n, ins: Inline(f"runtime.channel_shuffle({{0}}, {_value(n.attr('groups'))})"),
    "zeropad": _zeropad,
    "conv_transpose": _conv_transpose,
    "upsample": _upsample,
    "pixel_shuffle": lambda n, ins: Inline(f"F.pixel_shuffle({{0}}, {_value(n.attr('factor'))})"),
    "leaky_relu": lambda n, ins: Inline(f"F.leaky_relu({{0}}, {_value(n.attr('slope'))})"),
    "groupnorm": _groupnorm,
    "slice": lambda n, ins: Inline(f"{{0}}[:, {_value(n.attr('start'))}:{_value(n.attr('stop'))}]"),
    "concat": _inline("torch.cat([{all}], 1)"),
    "add": _inline("{0} + {1}"),
    "sub": _inline("{0} - {1}"),
    "mul": _inline("{0} * {1}"),
}

# In-place forms of activations, used where the IR shows the value has no other reader
# (`in_place_activations`): the plain module then allocates no tensor for them, as torchvision's
# `nn.ReLU(inplace=True)` does.
EMIT_IN_PLACE: dict = {
    "relu": "F.relu({0}, inplace=True)",
    "relu6": "F.relu6({0}, inplace=True)",
    "silu": "F.silu({0}, inplace=True)",
    "hardswish": "F.hardswish({0}, inplace=True)",
    "hardsigmoid": "F.hardsigmoid({0}, inplace=True)",
}
# Ops whose result is a tensor of its own (never a view or the input itself) that autograd does not
# save for their backward: an activation may overwrite it when nothing else reads it. (Not here:
# views and pass-throughs such as slice, flatten, identity, dropout; activations, whose outputs
# relu, sigmoid and tanh save; fused convs with an activation, likewise.)
_FRESH_UNSAVED = {"conv", "conv_transpose", "batchnorm", "groupnorm", "layernorm", "linear", "add", "sub", "mul",
                  "concat", "maxpool", "avgpool", "global_avgpool", "global_maxpool", "adaptive_avgpool", "upsample",
                  "scale", "layerscale", "zeropad"}


def in_place_activations(g: Graph) -> set:
    """Ids of the activation nodes that may overwrite their input: the input is made by an op in
    _FRESH_UNSAVED (or a fused conv without activation), this activation is its only reader, and it
    is no graph output or input (the caller's tensor is never changed)."""
    users = g.users()
    outputs = {o.node for o in g.outputs}
    ok = set()
    for n in g.nodes:
        if n.op not in EMIT_IN_PLACE:
            continue
        src = g.nodes[n.inputs[0]]
        fresh = src.op in _FRESH_UNSAVED or (src.op == "fused:conv" and src.attr("act") is None)
        if fresh and list(users[src.id]) == [n.id] and src.id not in outputs:
            ok.add(n.id)
    return ok


# ---- initialisation rules -------------------------------------------------------------------
# What the generated `_init_weights` does to each op's modules under each scheme of
# cnnc/ir/schemes.py: torchvision's own statements for that family, on `m`. A scheme missing
# from an op's row leaves those modules as torch makes them (their reset_parameters), as the
# reference does. Ops without parameters have no row, nor has layerscale (a parameter, not a
# module: it keeps its `init` value, as torchvision's ConvNeXt keeps its layer_scale).


@dataclass(frozen=True)
class InitRule:
    cls: str  # the torch class `isinstance` tests for this op's modules (runtime layers subclass it)
    schemes: dict  # scheme -> statements on `m`


_ZERO_BIAS = ("if m.bias is not None:", "    nn.init.zeros_(m.bias)")
_NORM_1_0 = ("nn.init.ones_(m.weight)", "nn.init.zeros_(m.bias)")
_KAIMING_FAN_OUT_RELU = 'nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")'
_KAIMING_FAN_OUT = 'nn.init.kaiming_normal_(m.weight, mode="fan_out")'
_TRUNC_002 = "nn.init.trunc_normal_(m.weight, std=0.02)"
_TRUNC_001 = "nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)"
# torchvision's Inception3: `stddev = float(m.stddev) if hasattr(m, "stddev") else 0.1`; here the
# scheme option `stddev` (bound before the loop, `_named_layers_source`) maps modules to their std
_TRUNC_STDDEV = "nn.init.trunc_normal_(m.weight, mean=0.0, std=stddev.get(m, 0.1), a=-2, b=2)"
_CONV_INIT = {
    "resnet": (_KAIMING_FAN_OUT_RELU,),
    "vgg": (_KAIMING_FAN_OUT_RELU,) + _ZERO_BIAS,
    "densenet": ("nn.init.kaiming_normal_(m.weight)",),
    "mobilenet": (_KAIMING_FAN_OUT,) + _ZERO_BIAS,
    "efficientnet": (_KAIMING_FAN_OUT,) + _ZERO_BIAS,
    "convnext": (_TRUNC_002,) + _ZERO_BIAS,
    "googlenet": (_TRUNC_001,),
    # torchvision's SqueezeNet: `final_conv` is bound before the loop (`_named_layers_source`)
    "squeezenet": ("if m is final_conv:", "    nn.init.normal_(m.weight, mean=0.0, std=0.01)", "else:",
                   "    nn.init.kaiming_uniform_(m.weight)") + _ZERO_BIAS,
    "inception_v3": (_TRUNC_STDDEV,),
    "mnasnet": (_KAIMING_FAN_OUT_RELU,) + _ZERO_BIAS,
    # torchvision's RegNet: "ResNet-style" normal with fan_out over the whole kernel (groups ignored)
    "regnet": ("fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels",
               "nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))"),
}

INIT: dict = {
    "conv": InitRule("nn.Conv2d", _CONV_INIT),
    "fused:conv": InitRule("nn.Conv2d", _CONV_INIT),  # its BatchNorm, `.bn`, follows the batchnorm row
    "conv_transpose": InitRule("nn.ConvTranspose2d", {}),  # no torchvision scheme touches it
    "batchnorm": InitRule("nn.BatchNorm2d", {s: _NORM_1_0 for s in ("resnet", "vgg", "densenet", "mobilenet",
                                                                    "efficientnet", "googlenet",
                                                                    "inception_v3", "mnasnet", "regnet")}),
    "groupnorm": InitRule("nn.GroupNorm", {s: _NORM_1_0 for s in ("resnet", "mobilenet", "efficientnet")}),
    "layernorm": InitRule("nn.LayerNorm", {}),
    "linear": InitRule("nn.Linear", {
        "vgg": ("nn.init.normal_(m.weight, 0, 0.01)",) + _ZERO_BIAS,
        "densenet": _ZERO_BIAS,
        "mobilenet": ("nn.init.normal_(m.weight, 0, 0.01)",) + _ZERO_BIAS,
        "efficientnet": ("init_range = 1.0 / math.sqrt(m.out_features)",
                         "nn.init.uniform_(m.weight, -init_range, init_range)") + _ZERO_BIAS,
        "convnext": (_TRUNC_002,) + _ZERO_BIAS,
        "googlenet": (_TRUNC_001,),
        "inception_v3": (_TRUNC_STDDEV,),
        "mnasnet": ('nn.init.kaiming_uniform_(m.weight, mode="fan_out", nonlinearity="sigmoid")',) + _ZERO_BIAS,
        "regnet": ("nn.init.normal_(m.weight, mean=0.0, std=0.01)", "nn.init.zeros_(m.bias)"),
    }),
}

# The torch class a runtime layer extends, for `isinstance` in `_init_weights`
_RUNTIME_BASES = {"runtime.Conv2d": "nn.Conv2d", "runtime.FusedConv2d": "nn.Conv2d",
                  "runtime.ChannelLinear": "nn.Linear", "runtime.LayerNorm2d": "nn.LayerNorm"}

# Ops whose result continues the chain of their first input computed inside the block
# (`out = x + out` continues `out`); concat continues no chain.
_SYMMETRIC = {"add", "sub", "mul"}


def emission_rule(n: Node):
    rule = EMIT.get(n.op, EMIT)
    if rule is EMIT:
        raise CnncError(f"cannot generate PyTorch code for op '{n.op}': it has no emission rule "
                        f"(add one to EMIT in cnnc/backends/codegen.py)", n.loc)
    return rule


# ---- 1. tree: instances and statements --------------------------------------------------------


@dataclass(eq=False)
class Stmt:
    name: str  # attribute name: the leaf's or child instance's last path component
    inputs: tuple  # values read (node ids), in argument order (leaf) or first-use order (child)
    outputs: tuple  # values written that are read later (leaf: its own node)
    node: Node | None = None  # a leaf
    emit: Layer | Inline | None = None
    child: "Instance | None" = None


@dataclass(eq=False)
class Instance:
    path: str
    scope: Scope | None  # None for the network
    stmts: list
    inputs: tuple  # values from outside, in first-use order
    outputs: tuple  # values used outside (or network outputs), in definition order
    attrs: dict = field(default_factory=dict)  # statement name -> submodule attribute (names.py)
    cls: "ClassInfo | None" = None
    args: tuple = ()  # values of cls.params for this instance


def _build_tree(g: Graph) -> Instance:
    users = g.users()
    net_outputs = {o.node for o in g.outputs}
    scopes = g.scope_map()
    in_place = in_place_activations(g)
    inputs = []
    for n in g.nodes:
        if n.op == "input":
            if "." in n.path:
                raise CnncError("cannot generate code for an input() inside a group", n.loc)
            inputs.append(n.id)

    def instance(path, ids) -> Instance:
        inside = set(ids)
        prefix = path + "." if path else ""
        # a child instance's nodes, by its name; the child is called where its last node is, so a
        # value of the parent that a fusion placed among them (a residual computed after the
        # conv it is added to, as in NASNet's cells) is computed before the call
        members: dict = {}
        for i in ids:
            head, dot, _ = g.nodes[i].path[len(prefix):].partition(".")
            if dot:
                members.setdefault(head, []).append(i)
        stmts = []
        for i in ids:
            n = g.nodes[i]
            head, dot, _ = n.path[len(prefix):].partition(".")
            if not dot:
                rule = emission_rule(n)
                emit = rule(n, g.in_shapes(n))
                if n.id in in_place:
                    emit = Inline(EMIT_IN_PLACE[n.op])
                stmts.append(Stmt(head, n.inputs, (n.id,), node=n, emit=emit))
                continue
            if members[head][-1] != i:
                continue
            child = instance(prefix + head, members[head])
            if all(st.child is None and isinstance(st.emit, Inline) for st in child.stmts):
                stmts.extend(child.stmts)  # nothing to hold: its calls go in the parent's forward
            else:
                stmts.append(Stmt(head, child.inputs, child.outputs, child=child))
        made = set()
        for st in stmts:  # every value is made before it is read (a true cycle between instances is not)
            if any(v in inside and v not in made for v in st.inputs):
                raise AssertionError(f"instance {prefix + st.name} reads a value its parent computes after it")
            made.update(st.outputs)
        ins = {}  # in first-use order
        for j in ids:
            for v in g.nodes[j].inputs:
                if v not in inside:
                    ins.setdefault(v)
        outs = tuple(j for j in ids if j in net_outputs or any(u not in inside for u in users[j]))
        attrs = naming.attribute_names(st.name for st in stmts)
        return Instance(path, scopes.get(path), stmts, tuple(ins), outs, attrs)

    body = [n.id for n in g.nodes if n.op != "input"]
    root = instance("", body)
    root.inputs = tuple(inputs)
    root.outputs = tuple(dict.fromkeys(o.node for o in g.outputs))
    return root


def _walk(inst: Instance):
    """Instances bottom-up (children before parents), in node order."""
    for st in inst.stmts:
        if st.child is not None:
            yield from _walk(st.child)
    yield inst


# ---- 2. classes: one per block structure -------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    ref: tuple | None  # ("in", k) / ("out", k): the channel count of the k-th input / output


@dataclass(eq=False)
class ClassInfo:
    name: str
    instances: list
    params: list = field(default_factory=list)
    param_of: dict = field(default_factory=dict)  # slot key (stmt index, arg name) -> Param


def _signature(inst: Instance) -> tuple:
    """What the code of an instance's class depends on: everything but constructor values."""
    ref = {v: ("in", k) for k, v in enumerate(inst.inputs)}
    sig = [inst.scope.kind, inst.scope.name, len(inst.inputs)]
    for i, st in enumerate(inst.stmts):
        ins = tuple(ref[v] for v in st.inputs)
        if st.child is not None:
            sig.append(("child", st.name, id(st.child.cls), ins, len(st.outputs)))
        elif isinstance(st.emit, Layer):
            sig.append(("layer", st.name, st.emit.cls, tuple(s.name for s in st.emit.slots), ins))
        else:
            sig.append(("inline", st.name, st.node.op, st.emit.template, ins))
        for k, v in enumerate(st.outputs):
            ref[v] = ("v", i, k)
    sig.append(tuple(ref[v] for v in inst.outputs))
    return tuple(sig)


def _assign_classes(root: Instance, net_class: str) -> list[ClassInfo]:
    by_sig: dict = {}
    classes: list[ClassInfo] = []
    taken = {net_class, net_class + "Outputs"}
    for inst in _walk(root):
        if inst is root:
            info = ClassInfo(net_class, [root])
        else:
            sig = _signature(inst)
            info = by_sig.get(sig)
            if info is None:
                name = naming.class_name(inst.scope.name, taken)
                taken.add(name)
                info = by_sig[sig] = ClassInfo(name, [])
            info.instances.append(inst)
        inst.cls = info
        if info.instances[0] is inst:
            classes.append(info)
    return classes


# ---- 3. params: constructor values that differ between instances ------------------------------


def _key(v):
    """Values compare by type too (True is not 1)."""
    return (type(v).__name__, v)


def _slots(inst: Instance):
    """(key, kind, described tensor or None, value, suggested name, stmt name) per constructor value."""
    out = []
    for i, st in enumerate(inst.stmts):
        if st.child is not None:
            c = st.child
            for p, a in zip(c.cls.params, c.args):
                tensor = None
                if p.ref is not None:
                    tensor = (c.inputs if p.ref[0] == "in" else c.outputs)[p.ref[1]]
                out.append(((i, p.name), p.kind, tensor, a, p.name, st.name))
        elif isinstance(st.emit, Layer):
            for s in st.emit.slots:
                tensor = {"in": st.inputs[0] if st.inputs else None, "out": st.node.id}.get(s.ref)
                out.append(((i, s.name), s.kind or s.name, tensor, s.value, s.name, st.name))
    return out


def _assign_params(info: ClassInfo, g: Graph) -> None:
    per_inst = [_slots(inst) for inst in info.instances]
    first = per_inst[0]
    groups: dict = {}  # (kind, values across instances) -> slot indices
    for j, (key, kind, *_rest) in enumerate(first):
        values = tuple(_key(slots[j][3]) for slots in per_inst)
        if len(set(values)) > 1:
            groups.setdefault((kind, values), []).append(j)
    rep = info.instances[0]

    def channels_of(side, k):  # the channel count of the k-th input/output, per instance
        return tuple(_key(g.nodes[getattr(inst, side)[k]].shape[0]) for inst in info.instances)

    ins = [channels_of("inputs", k) for k in range(len(rep.inputs))]
    outs = [channels_of("outputs", k) for k in range(len(rep.outputs))]
    made = {v: st for st in rep.stmts for v in st.outputs}
    named = []  # (members, kind, ref, preferred name, name if the preferred one is ambiguous)
    for (kind, values), members in groups.items():
        slot_name, stmt = first[members[0]][4], first[members[0]][5]
        name, fallback, ref = slot_name, f"{stmt}_{slot_name}", None
        if kind == CHANNELS:
            # a channel count is named after the tensor it equals in every instance
            is_in = next((k for k, v in enumerate(ins) if v == values), None)
            is_out = next((k for k, v in enumerate(outs) if v == values), None)
            tensors = [first[j][2] for j in members if first[j][2] is not None]
            if is_in is not None:
                name, ref = ("channels" if is_out is not None else "in_channels"), ("in", is_in)
            elif is_out is not None:
                name, ref = "out_channels", ("out", is_out)
            elif tensors:
                producer = made[tensors[0]]
                if producer.child is not None and not producer.name.isdigit():
                    name = fallback = f"{producer.name}_channels"
                else:
                    name, fallback = "mid_channels", f"{producer.name}_channels"
        named.append((members, kind, ref, name, fallback))
    counts = Counter(n[3] for n in named)
    used: set = set()
    for members, kind, ref, name, fallback in named:
        name = naming.identifier(name if counts[name] == 1 else fallback)
        base, k = name, 2
        while name in used:
            name, k = f"{base}{k}", k + 1
        used.add(name)
        p = Param(name, kind, ref)
        info.params.append(p)
        for j in members:
            info.param_of[first[j][0]] = p
    position = {s[0]: j for j, s in enumerate(first)}
    first_slot = {}
    for key, p in info.param_of.items():
        first_slot[p] = min(first_slot.get(p, len(first)), position[key])
    info.params.sort(key=first_slot.get)
    for inst, slots in zip(info.instances, per_inst):
        inst.args = tuple(slots[first_slot[p]][3] for p in info.params)


# ---- 4. render -------------------------------------------------------------------------------

def _get(attr: str) -> str:
    """Reading a submodule: `self.conv1`, or `getattr(self, "0")` for names Python cannot spell."""
    if attr.isidentifier() and not keyword.iskeyword(attr):
        return f"self.{attr}"
    return f"getattr(self, {attr!r})"


def _set(attr: str, value: str) -> str:
    if attr.isidentifier() and not keyword.iskeyword(attr):
        return f"self.{attr} = {value}"
    return f"setattr(self, {attr!r}, {value})"


def _is_sequential(inst: Instance) -> bool:
    """Submodules named 0, 1, 2, ... each feeding the next: emitted as an nn.Sequential (the
    layout torchvision uses, so the state_dict keys `branch2.0.conv.weight` stay as they are)."""
    prev = inst.inputs
    for k, st in enumerate(inst.stmts):
        if st.name != str(k) or (st.child is None and (not isinstance(st.emit, Layer) or st.emit.use)):
            return False
        if tuple(st.inputs) != tuple(prev) or len(st.inputs) != 1 or len(st.outputs) != 1:
            return False
        prev = st.outputs
    return len(inst.inputs) == 1 and tuple(inst.outputs) == tuple(prev)


def _layer_source(info: ClassInfo, i: int, st: Stmt) -> str:
    parts = []
    for s in st.emit.slots:
        p = info.param_of.get((i, s.name))
        if p is not None:
            text = p.name
        elif s.default is not ALWAYS and _key(s.value) == _key(s.default):
            continue
        else:
            text = naming.literal(s.value)
        parts.append(text if s.positional else f"{s.name}={text}")
    return f"{st.emit.cls}({', '.join(parts)})"


def _child_source(info: ClassInfo, i: int, st: Stmt) -> str:
    c = st.child
    texts = []
    for p, a in zip(c.cls.params, c.args):
        q = info.param_of.get((i, p.name))
        texts.append(q.name if q is not None else naming.literal(a))
    if len(texts) > 2:
        texts = [f"{p.name}={t}" for p, t in zip(c.cls.params, texts)]
    return f"{c.cls.name}({', '.join(texts)})"


def _spine(inst: Instance, main) -> set:
    """Statements on the path from the main result back through primary inputs: the chain
    that keeps one variable (`x = self.layer1(x)`, or `out` when `x` is still needed)."""
    made = {v: i for i, st in enumerate(inst.stmts) for v in st.outputs}
    spine, i = set(), made.get(main)
    while i is not None and i not in spine:
        spine.add(i)
        p = _primary(inst, inst.stmts[i])
        i = made.get(p) if p is not None else None
    return spine


def _primary(inst: Instance, st: Stmt):
    """The input whose variable a statement's result may take over."""
    if not st.inputs:
        return None
    if st.node is not None and st.node.op == "concat":
        return None
    if st.node is not None and st.node.op in _SYMMETRIC:
        inner = [v for v in st.inputs if v not in inst.inputs]
        return inner[0] if inner else st.inputs[0]
    return st.inputs[0]


def _input_names(n: int) -> list[str]:
    if n <= 3:
        return ["x", "y", "z"][:n]
    return [f"x{k}" for k in range(1, n + 1)]


class _OutNames:
    """The first free name of `out`, `out2`, `out3`, ... in amortised constant time (probing from
    `out` each time is quadratic where thousands of values are alive at once, as before a wide
    concat). Every free index below the high-water mark is in the heap: each was either handed
    out and then released, or found taken (by another kind of name) and released later."""

    def __init__(self, free):
        self.free, self.heap, self.next = free, [], 1

    @staticmethod
    def name(k: int) -> str:
        return "out" if k == 1 else f"out{k}"

    def released(self, name: str) -> None:
        digits = name[3:]
        if name == "out":
            heapq.heappush(self.heap, 1)
        elif name.startswith("out") and digits.isascii() and digits.isdigit() and self.name(int(digits)) == name:
            heapq.heappush(self.heap, int(digits))

    def first_free(self) -> str:
        while self.heap:
            k = heapq.heappop(self.heap)
            if k < self.next and self.free(self.name(k)):
                return self.name(k)
        while not self.free(self.name(self.next)):
            self.next += 1
        self.next += 1
        return self.name(self.next - 1)


def _forward_body(inst: Instance, main, train_only: set) -> tuple[list[str], dict]:
    """Lines of forward and the variable holding each value. `main`: the value the spine ends
    at; `train_only`: statement indices that only feed training outputs (under `if self.training:`).

    Naming, in order of preference: a value the spine continues from but that is also read
    later is kept under a descriptive name (`inception4a = self.inception4a(x)`); a result
    takes over the variable of its primary input when that input is read for the last time
    (`x = self.layer1(x)`), unless that variable is a descriptive one; the spine keeps its variable; a child instance's result is named
    after it (`branch1 = self.branch1(x)`), and so is a layer's result off the spine that is read
    twice or joined with others (`maxpool1 = self.maxpool1(x)`); anything else is `out`, `out2`, ...
    """
    stmts = inst.stmts
    last, uses = {}, Counter()
    for i, st in enumerate(stmts):
        for v in set(st.inputs):
            last[v] = i
            uses[v] += 1
    for v in inst.outputs:
        last[v] = len(stmts)
    spine = _spine(inst, main)
    successor = {}
    for i in sorted(spine):
        successor.setdefault(_primary(inst, stmts[i]), i)
    kept = {v for v, j in successor.items() if last.get(v, -1) > j}
    # values read more than once or by a statement that joins several: worth a name of their own
    joined = {v for st in stmts if len(st.inputs) > 1 for v in st.inputs}
    joins = {v: uses[v] > 1 or v in joined for v in last}
    var = dict(zip(inst.inputs, _input_names(len(inst.inputs))))
    live = {name: v for v, name in var.items()}
    spine_var = None
    descriptive = set()  # variables named after what computed them: never taken over by a chain
    lines: list[str] = []
    guarded = False

    def free(name):
        return name not in live and name not in naming.RESERVED

    outs = _OutNames(free)

    def release(name):
        del live[name]
        outs.released(name)

    for i, st in enumerate(stmts):
        for v in set(st.inputs):
            if last[v] == i and live.get(var[v]) == v:
                release(var[v])
        p = _primary(inst, st)
        names = []
        for k, v in enumerate(st.outputs):
            name = None
            if k == 0 and v in kept:
                name = naming.identifier(st.name)
                descriptive.add(name)
            elif (k == 0 and p is not None and last[p] == i and (uses[p] == 1 or i in spine) and free(var[p])
                  and var[p] not in descriptive):
                name = var[p]
            elif k == 0 and i in spine and spine_var is not None:
                name = spine_var
            elif (st.child is not None and (i not in spine or (p in inst.inputs and joins.get(v)))) or (
                    st.child is None and isinstance(st.emit, Layer) and i not in spine and joins.get(v)):
                name = naming.identifier(st.name if k == 0 else f"{st.name}_{k}")
                descriptive.add(name)
            if name is None or not free(name):
                name = outs.first_free()
            if k == 0 and i in spine and name not in descriptive:
                spine_var = name
            var[v] = name
            live[name] = v
            names.append(name)
        for v in st.outputs:  # a result nobody reads frees its variable at once
            if v not in last:
                release(var[v])
        args = [var[v] for v in st.inputs]
        if isinstance(st.emit, Layer) and st.emit.use:
            expr = st.emit.use.format(*args, self=_get(inst.attrs[st.name]))
        elif st.child is not None or isinstance(st.emit, Layer):
            expr = f"{_get(inst.attrs[st.name])}({', '.join(args)})"
        else:
            expr = st.emit.template.format(*args, all=", ".join(args))
        if expr == names[0] and len(names) == 1:
            continue  # identity onto the same variable
        indent = "        "
        if i in train_only:
            if not guarded:
                lines.append("        if self.training:")
                guarded = True
            indent += "    "
        else:
            guarded = False
        lines.append(f"{indent}{', '.join(names)} = {expr}")
    return lines, var


def _docstring(info: ClassInfo) -> str:
    s = info.instances[0].scope
    paths = [inst.path for inst in info.instances]
    shown = ", ".join(paths[:4]) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
    what = f"Block `{s.name}`" if s.kind == "block" else f"Group `{s.name}`"
    return f"{what} at {shown}."


def _class_source(info: ClassInfo, g: Graph | None = None, outputs_class: str | None = None) -> str:
    inst = info.instances[0]
    is_net = g is not None
    init_args = "".join(f", {p.name}" for p in info.params)
    doc = _net_docstring(g) if is_net else _docstring(info)
    if not is_net and _is_sequential(inst):
        out = [f"class {info.name}(nn.Sequential):", f"    {naming.doc(doc)}", "",
               f"    def __init__(self{init_args}):", "        super().__init__("]
        for i, st in enumerate(inst.stmts):
            made = _child_source(info, i, st) if st.child is not None else _layer_source(info, i, st)
            out.append(f"            {made},")
        return "\n".join(out + ["        )"]) + "\n"
    out = [f"class {info.name}(nn.Module):", f"    {naming.doc(doc)}", "",
           f"    def __init__(self{init_args}):", "        super().__init__()"]
    for i, st in enumerate(inst.stmts):
        if st.child is not None:
            out.append(f"        {_set(inst.attrs[st.name], _child_source(info, i, st))}")
        elif isinstance(st.emit, Layer):
            out.append(f"        {_set(inst.attrs[st.name], _layer_source(info, i, st))}")
    init_lines = _init_source(g, inst) if is_net and g.init is not None else []
    if init_lines:
        out.append("        self._init_weights()")
    train_only = _train_only_stmts(g, inst) if is_net else set()
    if is_net:
        main = next(o.node for o in g.outputs if not o.train_only)
    else:
        main = inst.outputs[0]
    body, var = _forward_body(inst, main, train_only)
    names = _input_names(len(inst.inputs))
    sig = ", ".join(f"{n}: Tensor" for n in names)
    if is_net:
        ret = _net_return(g, var, outputs_class)
        annotation = " -> Tensor" if outputs_class is None else ""
    else:
        results = [var[v] for v in inst.outputs]
        ret = [f"        return {', '.join(results)}"]
        annotation = " -> Tensor" if len(results) == 1 else f" -> tuple[{', '.join(['Tensor'] * len(results))}]"
    out += init_lines
    out += ["", f"    def forward(self, {sig}){annotation}:"] + body + ret
    return "\n".join(out) + "\n"


def _init_source(g: Graph, root: Instance) -> list[str]:
    """The network's `_init_weights` method: one loop over `self.modules()` (or the modules of
    the instance `within` names) whose branches are the INIT rules of the ops present (ops with
    the same statements share one `isinstance`), then the batchnorms that start at zero
    (`zero_init_residual`)."""
    from cnnc.ir.schemes import SCHEMES

    init = g.init
    classes: dict = {}  # op -> the classes of its modules, in node order
    for n in g.nodes:
        rule = INIT.get(n.op)
        if rule is None or not in_scope(n.path, init.within):
            continue
        layer = EMIT[n.op](n, g.in_shapes(n))
        base = _RUNTIME_BASES.get(layer.cls, layer.cls)
        if n.op == "batchnorm" and base == "nn.BatchNorm1d":
            base = "nn.BatchNorm1d"
        classes.setdefault(n.op, {})[base] = None
        if n.op == "fused:conv" and n.attr("bn"):
            classes.setdefault("batchnorm", {})["nn.BatchNorm2d"] = None
    branches: dict = {}  # statements -> classes
    for op, rule in INIT.items():
        lines = rule.schemes.get(init.scheme)
        if op in classes and lines:
            branches.setdefault(lines, {}).update(classes[op])
    doc = f"{SCHEMES[init.scheme].reference}'s initialisation (`init {init.scheme}({init_options(init)})`)."
    out = ["", "    def _init_weights(self) -> None:", f'        """{doc}"""']
    out += _named_layers_source(g, root)
    if branches:
        where = _chain("self", init.within.split("."), root) if init.within is not None else "self"
        out.append(f"        for m in {where}.modules():")
    for k, (lines, cls) in enumerate(branches.items()):
        names = list(cls)
        test = names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"
        out.append(f"            {'if' if k == 0 else 'elif'} isinstance(m, {test}):")
        out += [f"                {line}" for line in lines]
    out += _zero_norms_source(g, root)
    out += _gate_bias_source(g, root)
    return out


def _gate_bias_source(g: Graph, root: Instance) -> list[str]:
    """The highway scheme: each transform gate (paths found by the IR, cnnc/ir/schemes.py; a conv
    fused with its sigmoid keeps the conv's path) starts with bias `gate_bias`. A gate pruned
    with an unused block, or outside `within`, is left out."""
    present = {n.path for n in g.nodes if n.op in ("conv", "fused:conv")}
    gates = [p for p in g.init.gates if p in present and in_scope(p, g.init.within)]
    if not gates:
        return []
    lines, line = [], "        gates = ("
    for module in (_chain("self", p.split("."), root) for p in gates):  # a tuple, a few modules a line
        if len(line) + len(module) > 110:
            lines.append(line.rstrip())
            line = "                 "
        line += module + ", "
    lines.append(line.rstrip(", ") + ("," if len(gates) == 1 else "") + ")")
    return (["        # the transform gates start negative: each highway layer starts by carrying its input"] + lines
            + ["        for m in gates:", f"            nn.init.constant_(m.bias, {naming.literal(g.init.option('gate_bias'))})"])


def _named_layers_source(g: Graph, root: Instance) -> list[str]:
    """The layers a scheme option names (cnnc/ir/schemes.py), bound to the option's name before
    the init loop: `final_conv = getattr(self.classifier, "1")`, or for [path, value] pairs
    `stddev = {self.AuxLogits.fc: 0.001}`. A layer pruned with an unused block is left out."""
    from cnnc.ir.schemes import SCHEMES

    scheme = SCHEMES[g.init.scheme]
    present = {n.path for n in g.nodes}
    out = []
    for a in scheme.options:
        if a.name not in scheme.layer_options:
            continue
        value = g.init.option(a.name)
        if a.kind == "layer":
            module = _chain("self", value.split("."), root) if value in present else None
            out.append(f"        {a.name} = {module}")
        else:
            items = ", ".join(f"{_chain('self', p.split('.'), root)}: {naming.literal(v)}" for p, v in value
                              if p in present)
            out.append(f"        {a.name} = {{{items}}}")
    return out


def _zero_norms_source(g: Graph, root: Instance) -> list[str]:
    """`zero_init_residual`: each residual branch's last batchnorm (paths found by the IR,
    cnnc/ir/schemes.py) starts with weight 0, by class as torchvision writes it
    (`if isinstance(m, Bottleneck): nn.init.zeros_(m.bn3.weight)`)."""
    if not g.init.zero_norms:
        return []
    by_path = {inst.path: inst for inst in _walk(root)}
    where = {}  # batchnorm path -> (path of the instance holding its module, attribute chain)
    for n in g.nodes:
        if n.op == "batchnorm":
            where[n.path] = (n.path.rpartition(".")[0], [n.path.rpartition(".")[2]])
        elif n.op == "fused:conv" and n.attr("bn"):  # the batchnorm was folded into this conv's `.bn`
            for member in n.attr("members"):
                where[member] = (n.path.rpartition(".")[0], [n.path.rpartition(".")[2], "bn"])
    own, per_class = [], {}  # statements on the network's own modules; class name -> chains
    example = {}  # class name -> one of its instances (all are wired alike)
    for path in g.init.zero_norms:
        if path not in where:  # pruned with an unused block
            continue
        holder, chain = where[path]
        inst = by_path[holder]
        if inst is root:
            own.append(f"        nn.init.zeros_({_chain('self', chain, root)}.weight)")
        else:
            chains = per_class.setdefault(inst.cls.name, {})
            chains.setdefault(inst.path, []).append(tuple(chain))
            example.setdefault(inst.cls.name, inst)
    groups: dict = {}  # chains -> class names
    for name, per_instance in per_class.items():
        (chains, *others) = list(per_instance.values())
        if any(c != chains for c in others):  # the class signature fixes the wiring, so never
            raise AssertionError(f"zero_init_residual: instances of class {name} differ")
        groups.setdefault(tuple(chains), []).append(name)
    out = ["        # zero_init_residual: the last BatchNorm of each residual branch starts at 0"]
    if groups:
        out.append("        for m in self.modules():")
    for k, (chains, names) in enumerate(groups.items()):
        test = names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"
        out.append(f"            {'if' if k == 0 else 'elif'} isinstance(m, {test}):")
        out += [f"                nn.init.zeros_({_chain('m', c, example[names[0]])}.weight)" for c in chains]
    return out + own


def _chain(base: str, names, inst: Instance | None) -> str:
    """`m.bn3`, `m.downsample.bn`, or getattr for names Python cannot spell (`getattr(m, "1")`):
    `names` are instance names below `inst`, the instance whose module `base` is; each becomes
    its submodule's attribute there (`Instance.attrs`, cnnc/backends/names.py)."""
    for name in names:
        attr = name
        if inst is not None:
            attr = inst.attrs.get(name, name)
            st = next((st for st in inst.stmts if st.name == name), None)
            inst = st.child if st is not None else None
        base = f"{base}.{attr}" if attr.isidentifier() and not keyword.iskeyword(attr) else \
            f"getattr({base}, {naming.literal(attr)})"
    return base


def _train_only_stmts(g: Graph, inst: Instance) -> set:
    need = set()
    todo = [o.node for o in g.outputs if not o.train_only]
    while todo:
        i = todo.pop()
        if i not in need:
            need.add(i)
            todo.extend(g.nodes[i].inputs)
    return {i for i, st in enumerate(inst.stmts) if not any(v in need for v in st.outputs)}


def _net_return(g: Graph, var: dict, outputs_class: str | None) -> list[str]:
    main = [o for o in g.outputs if not o.train_only]
    if outputs_class is None:
        return [f"        return {var[main[0].node]}"]
    field = naming.field_names(o.name for o in g.outputs)
    every = ", ".join(f"{field[o.name]}={var[o.node]}" for o in g.outputs)
    if len(main) == 1:
        return ["        if self.training:", f"            return {outputs_class}({every})",
                f"        return {var[main[0].node]}"]
    if len(main) == len(g.outputs):
        return [f"        return {outputs_class}({every})"]
    evaluation = ", ".join(f"{field[o.name]}={var[o.node] if not o.train_only else None}" for o in g.outputs)
    return ["        if self.training:", f"            return {outputs_class}({every})",
            f"        return {outputs_class}({evaluation})"]


def _net_docstring(g: Graph) -> str:
    ps = ", ".join(f"{k}={fmt_value(v)}" for k, v in g.params)
    return f"Network `{g.name}` ({ps})." if ps else f"Network `{g.name}`."


# ---- entry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generated:
    source: str
    name: str  # the network's name in the spec
    class_name: str  # the network's nn.Module class
    outputs_class: str | None  # the NamedTuple of outputs, when forward may return several
    # instance path (the summary's, the IR's) -> submodule path in the module (the state_dict's
    # prefix); they differ where names.py renamed an attribute (`train` -> `train_`)
    module_paths: dict = field(default_factory=dict, compare=False)
    output_fields: dict = field(default_factory=dict, compare=False)  # output name -> NamedTuple field


def _module_paths(root: Instance) -> dict:
    out = {}
    stack = [(root, "")]
    while stack:
        inst, prefix = stack.pop()
        for st in inst.stmts:
            path = prefix + inst.attrs[st.name]
            out[(inst.path + "." if inst.path else "") + st.name] = path
            if st.child is not None:
                stack.append((st.child, path + "."))
    return out


def generate(g: Graph) -> Generated:
    """The Python source of an nn.Module for the graph."""
    if not any(not o.train_only for o in g.outputs):
        raise CnncError(f"network '{g.name}' has no output outside training; nothing for forward to return")
    net_class = naming.class_name(g.name, ())
    root = _build_tree(g)  # 1. tree
    classes = _assign_classes(root, net_class)  # 2. classes
    for info in classes:  # 3. params (children first)
        if info.instances[0] is not root:
            _assign_params(info, g)
    main = [o for o in g.outputs if not o.train_only]
    outputs_class = None if len(g.outputs) == 1 else net_class + "Outputs"
    parts = [_class_source(info) for info in classes if info.instances[0] is not root]  # 4. render
    fields = naming.field_names(o.name for o in g.outputs)
    if outputs_class is not None:
        lines = "".join(f"    {fields[o.name]}: Tensor{' | None' if o.train_only else ''}\n" for o in g.outputs)
        if len(main) == len(g.outputs):
            doc = "Outputs of forward"
        elif len(main) == 1:
            doc = "Outputs of forward in training mode (in eval mode it returns the main output alone)"
        else:
            doc = "Outputs of forward (training-only ones are None in eval mode)"
        parts.append(f'class {outputs_class}(NamedTuple):\n    """{doc}."""\n\n{lines}')
    parts.append(_class_source(root.cls, g, outputs_class))
    body = "\n\n".join(parts)
    return Generated(_header(g, body) + body, g.name, net_class, outputs_class, _module_paths(root), fields)


def _header(g: Graph, body: str) -> str:
    spec = Path(g.file).name
    lines = [naming.doc(f"{g.name}: generated by cnnc {__version__} from {spec}; rebuild it with `cnnc build` "
                       "rather than editing it.")]
    if "NamedTuple" in body:
        lines += ["from typing import NamedTuple", ""]
    lines.append("import math" if re.search(r"\bmath\.", body) else None)
    lines.append("import torch" if re.search(r"\btorch\.", body) else None)
    torch_names = ", ".join(n for n in ("Tensor", "nn") if re.search(rf"\b{n}\b", body))
    lines.append(f"from torch import {torch_names}")
    if re.search(r"\bF\.", body):
        lines.append("from torch.nn import functional as F")
    if re.search(r"\bruntime\.", body):
        lines += ["", "from cnnc.backends import runtime"]
    return "\n".join(line for line in lines if line is not None) + "\n\n\n"
