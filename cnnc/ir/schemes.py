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

`within="backbone"`, an option of every scheme, confines the scheme to one instance's modules.
"""
from __future__ import annotations

from dataclasses import dataclass

from cnnc.diagnostics import CnncError, suggest

from .graph import Node
from .ops import Arg


@dataclass(frozen=True)
class Scheme:
    name: str
    reference: str  # the code it reproduces
    doc: str  # what it does, per layer type
    options: tuple = ()  # of Arg: keyword options of `init name(...)`


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
    Scheme("mnasnet", "torchvision.models.mnasnet.MNASNet",
           "conv: kaiming_normal_(mode='fan_out', nonlinearity='relu'), bias 0; batchnorm: 1, 0; "
           "linear: kaiming_uniform_(mode='fan_out', nonlinearity='sigmoid'), bias 0"),
)}


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


def _ends_branch(operand: Node, add: Node) -> bool:
    return operand.op == "batchnorm" and _instance(operand.path) == _instance(add.path)
