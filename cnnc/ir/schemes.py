"""Initialisation schemes: how a generated module sets its weights, as a reference library does.

A network chooses one in its header, `network resnet(...) init resnet(zero_init_residual=true) {`;
without one, every layer keeps torch's default initialisation (its `reset_parameters`). A scheme
is the `_init_weights` code of one torchvision family. This table holds their names, options and
what each reproduces, so that the front end checks a spec without torch; the statements each
scheme runs on each op's modules are the table INIT in cnnc/backends/codegen.py.

`zero_init_residual` (torchvision's ResNet) starts the weight of the last BatchNorm of every
residual branch at zero, so each residual block starts as the identity. The IR has no notion of
a branch, so the rule is structural: at an `add`, the residual branch is the operand computed by
a batchnorm of the add's own instance (the block instance holding the add), and the shortcut is
the other operand, the block's input or the result of a child instance (torchvision's
`downsample`). An add whose two operands are both such batchnorms is an error; so is the option
on a network where no add has such an operand.

Some references single out layers: SqueezeNet draws its `final_conv` from normal(0, 0.01),
Inception v3 gives its auxiliary head's fc the truncated-normal std 0.001 (`m.stddev`). Their
schemes take options that name those layers by instance path, `init squeezenet(final_conv=
"classifier.1")`, `init inception_v3(stddev=[["AuxLogits.fc", 0.001]])` (`layer_options`:
which options name layers, and of which ops). The front end checks that each path names a layer
of such an op (`check_named_layers`); code generation binds the option's name to that module
before the init loop, whose statements test `m is final_conv` or read `stddev.get(m, 0.1)`.

`within="backbone"`, an option of every scheme, confines the scheme to one instance's modules.

`highway` (Srivastava et al. 2015, Sec. 2.2) starts each transform gate's bias at `gate_bias`,
negative so that a highway layer starts by carrying its input. The gates are found by the
structure, as zero_init_residual's batchnorms are: a conv with a bias whose only user is a
sigmoid (`transform_gates`); a network with none is an error at the clause.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cnnc.diagnostics import CnncError, suggest

from .graph import Node
from .ops import Arg, OpError, normalize
from .values import describe_value


@dataclass(frozen=True)
class Scheme:
    name: str
    reference: str  # the code it reproduces
    doc: str  # what it does, per layer type
    options: tuple = ()  # of Arg: keyword options of `init name(...)`
    # options that name layers by instance path -> the ops those layers may be; an option's Arg
    # kind is "layer" (one path, or none) or "layer_values" (a list of [path, number] pairs)
    layer_options: dict = field(default_factory=dict)


SCHEMES = {s.name: s for s in (
    Scheme("resnet", "torchvision.models.resnet.ResNet",
           "conv: kaiming_normal_(mode='fan_out', nonlinearity='relu'); batchnorm, groupnorm: weight 1, bias 0; "
           "linear: torch's default; zero_init_residual: the last batchnorm of each residual branch weight 0",
           (Arg("zero_init_residual", "bool", False),)),
    Scheme("vgg", "torchvision.models.vgg.VGG",
           "conv: kaiming_normal_(mode='fan_out', nonlinearity='relu'), bias 0; batchnorm: 1, 0; "
           "linear: normal_(0, 0.01), bias 0"),
    Scheme("densenet", "torchvision.models.densenet.DenseNet",
           "conv: kaiming_normal_() (fan_in); batchnorm: 1, 0; linear: bias 0, weight torch's default"),
    Scheme("mobilenet", "torchvision.models.mobilenetv2.MobileNetV2 (MobileNetV3 runs the same code)",
           "conv: kaiming_normal_(mode='fan_out'), bias 0; batchnorm, groupnorm: 1, 0; "
           "linear: normal_(0, 0.01), bias 0"),
    Scheme("efficientnet", "torchvision.models.efficientnet.EfficientNet",
           "conv: kaiming_normal_(mode='fan_out'), bias 0; batchnorm, groupnorm: 1, 0; "
           "linear: uniform_(-1/sqrt(out_features), 1/sqrt(out_features)), bias 0"),
    Scheme("convnext", "torchvision.models.convnext.ConvNeXt",
           "conv, linear: trunc_normal_(std=0.02), bias 0; layernorm, layerscale: torch's default"),
    Scheme("googlenet", "torchvision.models.googlenet.GoogLeNet",
           "conv, linear: trunc_normal_(std=0.01, a=-2, b=2) (linear bias: torch's default); batchnorm: 1, 0"),
    Scheme("squeezenet", "torchvision.models.squeezenet.SqueezeNet",
           "conv: kaiming_uniform_(), bias 0; the conv named by final_conv: normal_(0, 0.01), bias 0",
           (Arg("final_conv", "layer", None),), {"final_conv": ("conv",)}),
    Scheme("inception_v3", "torchvision.models.inception.Inception3",
           "conv, linear: trunc_normal_(std=0.1, a=-2, b=2), or the std that stddev gives the layer "
           "(torchvision's `m.stddev`); batchnorm: 1, 0",
           (Arg("stddev", "layer_values", ()),), {"stddev": ("conv", "linear")}),
    Scheme("mnasnet", "torchvision.models.mnasnet.MNASNet",
           "conv: kaiming_normal_(mode='fan_out', nonlinearity='relu'), bias 0; batchnorm: 1, 0; "
           "linear: kaiming_uniform_(mode='fan_out', nonlinearity='sigmoid'), bias 0"),
    Scheme("highway", "Srivastava et al. 2015",
           "transform gates (convs whose only user is a sigmoid): bias gate_bias, so that each layer starts "
           "by carrying its input; every layer otherwise torch's default",
           (Arg("gate_bias", "float", -2.0),)),
    Scheme("regnet", "torchvision.models.regnet.RegNet",
           "conv: normal_(0, sqrt(2 / fan_out)), fan_out = kh * kw * out_channels (bias: torch's default); "
           "batchnorm: 1, 0; linear: normal_(0, 0.01), bias 0"),
)}


def normalize_option(a: Arg, value, where: str):
    """Check an option's value: a layer option's shape here (its paths are checked against the
    network by check_named_layers), every other kind by the op table's rules."""
    if a.kind == "layer":
        if value is None or isinstance(value, str):
            return value
        raise OpError(f"'{a.name}' of {where} must be a layer's instance path (a string), "
                      f"got {describe_value(value)}")
    if a.kind == "layer_values":
        pairs = value if isinstance(value, tuple) else None
        if pairs is None or not all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
                                    and isinstance(p[1], (int, float)) and not isinstance(p[1], bool) for p in pairs):
            raise OpError(f"'{a.name}' of {where} must be a list of [path, number] pairs, e.g. "
                          f'[["AuxLogits.fc", 0.001]], got {describe_value(value)}')
        paths = [p for p, _ in pairs]
        twice = next((p for p in paths if paths.count(p) > 1), None)
        if twice is not None:
            raise OpError(f"'{a.name}' of {where} names the layer \"{twice}\" twice")
        return tuple((p, float(v)) for p, v in pairs)
    return normalize(a, value, where)


def named_layers(init) -> dict:
    """Option name -> the instance paths it names (in the order given)."""
    scheme = SCHEMES[init.scheme]
    out = {}
    for name in scheme.layer_options:
        value = init.option(name)
        out[name] = () if value is None else (value,) if isinstance(value, str) else tuple(p for p, _ in value)
    return out


def check_named_layers(init, nodes) -> None:
    """Each path a layer option names is a layer of the ops the scheme allows there (located at
    the init clause)."""
    scheme = SCHEMES[init.scheme]
    by_path = {n.path: n for n in nodes}
    for name, paths in named_layers(init).items():
        ops = scheme.layer_options[name]
        kinds = " or ".join(ops)
        for path in paths:
            n = by_path.get(path)
            if n is None:
                inside = [p for p, m in by_path.items() if p.startswith(path + ".") and m.op in ops]
                if inside:
                    raise CnncError(f"'{name}' of init {init.scheme} names a block or group instance, \"{path}\", "
                                    "not a layer", init.loc).note(f"name the {kinds} inside it: \"{inside[0]}\"")
                candidates = [p for p, m in by_path.items() if m.op in ops]
                raise CnncError(f"'{name}' of init {init.scheme} names no layer: \"{path}\"{suggest(path, candidates)}",
                                init.loc).note(f"it names a {kinds} by its instance path, e.g. \"{candidates[-1]}\""
                                               if candidates else f"this network has no {kinds}")
            if n.op not in ops:
                raise CnncError(f"'{name}' of init {init.scheme} must name a {kinds}; \"{path}\" is a {n.op}",
                                init.loc)



# Every scheme's option `within="backbone"`: the scheme initialises only the modules of that
# instance, and the rest keep torch's defaults (torchvision's segmentation models initialise
# their backbone as its classifier does, and leave their heads to torch).
WITHIN = Arg("within", "str", None)


def in_scope(path: str, within: str | None) -> bool:
    """Whether the node at `path` is inside the instance `within` (everything is when None)."""
    return within is None or path.startswith(within + ".")


def check_within(g, loc) -> None:
    """`within` must name an instance of `g` that holds parameters (a module to initialise)."""
    within = g.init.within
    if any(in_scope(n.path, within) and g.params_of(n) for n in g.nodes):
        return
    instances = {".".join(n.path.split(".")[:k]) for n in g.nodes for k in range(1, n.path.count(".") + 1)}
    top = sorted({p for p in instances if "." not in p})
    raise CnncError(f'init {g.init.scheme}: within="{within}" names no instance of this network that holds '
                    f"parameters{suggest(within, instances)}", loc).note(
        f"its top-level instances: {', '.join(top) if top else 'none'}")


def _instance(path: str) -> str:
    return path.rpartition(".")[0]


def residual_norms(nodes, loc) -> tuple:
    """Instance paths of the batchnorms that end a residual branch (the module docstring has
    the rule); `loc` is the init clause's, for the error when there are none."""
    found = []
    for n in nodes:
        if n.op != "add":
            continue
        branch = [nodes[i] for i in n.inputs if _ends_branch(nodes[i], n)]
        if len(branch) == 2:
            raise CnncError("zero_init_residual: both operands of this add are batchnorms of the same block, so "
                            "the residual branch cannot be told from the shortcut", n.loc).note(
                "put the shortcut in a group or block of its own, as torchvision's downsample: "
                "`(x -> conv(c, 1, stride=s, bias=false) as \"0\" -> bn as \"1\") as downsample`")
        if branch and branch[0].path not in found:
            found.append(branch[0].path)
    if not found:
        raise CnncError("zero_init_residual: no residual add here ends its branch with a batchnorm "
                        "(a batchnorm of the add's own block, added to the shortcut)", loc)
    return tuple(found)


def transform_gates(nodes, loc) -> tuple:
    """Instance paths of the highway scheme's transform gates: the convs with a bias whose every
    user is a sigmoid (T(x) = sigmoid(conv(x))); `loc` is the init clause's, for the error when
    there are none."""
    users: dict = {}
    for n in nodes:
        for i in n.inputs:
            users.setdefault(i, []).append(n.op)
    found = tuple(n.path for n in nodes
                  if n.op == "conv" and n.attr("bias") and users.get(n.id) and set(users[n.id]) == {"sigmoid"})
    if not found:
        raise CnncError("init highway: no transform gate here (a conv with a bias whose only user is a sigmoid)",
                        loc).note("a highway layer's gate: `t = x -> conv(c, 3, padding=1) as gate -> sigmoid`")
    return found


def _ends_branch(operand: Node, add: Node) -> bool:
    return operand.op == "batchnorm" and _instance(operand.path) == _instance(add.path)
