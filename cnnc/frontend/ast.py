"""The abstract syntax tree of a .cnn spec: plain frozen dataclasses, no semantics.

Every node carries the `Loc` it was parsed from. `dump_ast` prints the tree in
a stable indented form used by `cnnc ... --emit ast` and the golden tests.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from typing import Union

from cnnc.diagnostics import UNKNOWN, Loc

# ---- expressions -----------------------------------------------------------


@dataclass(frozen=True)
class Num:
    value: Union[int, float]
    loc: Loc


@dataclass(frozen=True)
class Str:
    value: str
    loc: Loc


@dataclass(frozen=True)
class Const:
    """true, false or none."""

    value: Union[bool, None]
    loc: Loc


@dataclass(frozen=True)
class Name:
    id: str
    loc: Loc


@dataclass(frozen=True)
class Label:
    """`as name` or `as "block{i}"`: names the instance a call or group creates."""

    text: str
    template: bool  # a string whose {name} parts are filled from variables
    loc: Loc


@dataclass(frozen=True)
class Kwarg:
    name: str
    value: "Expr"
    loc: Loc


@dataclass(frozen=True)
class Call:
    """`f(a, k=b)`; in a pipeline step the piped value becomes the first argument."""

    func: str
    args: tuple
    kwargs: tuple  # of Kwarg
    label: Label | None
    loc: Loc


@dataclass(frozen=True)
class Pipe:
    """`head -> step1 -> step2`: each step is a Call fed the previous value."""

    head: "Expr"
    steps: tuple  # of Call
    loc: Loc


@dataclass(frozen=True)
class Group:
    """`(expr) as name`: every instance created inside is nested under `name`."""

    body: "Expr"
    label: Label
    loc: Loc


@dataclass(frozen=True)
class List:
    items: tuple
    loc: Loc


@dataclass(frozen=True)
class Attr:
    obj: "Expr"
    name: str
    loc: Loc


@dataclass(frozen=True)
class Index:
    obj: "Expr"
    index: "Expr"
    loc: Loc


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / // % == != < <= > >= and or
    left: "Expr"
    right: "Expr"
    loc: Loc


@dataclass(frozen=True)
class Unary:
    op: str  # - not
    operand: "Expr"
    loc: Loc


@dataclass(frozen=True)
class IfExpr:
    cond: "Expr"
    then: "Expr"
    orelse: "Expr"
    loc: Loc


Expr = Union[Num, Str, Const, Name, Call, Pipe, Group, List, Attr, Index, BinOp, Unary, IfExpr]

# ---- statements and definitions ---------------------------------------------


@dataclass(frozen=True)
class Assign:
    name: str
    value: Expr
    loc: Loc


@dataclass(frozen=True)
class Unpack:
    """`a, b = expr`: binds each name to one item of a list."""

    names: tuple
    value: Expr
    loc: Loc


@dataclass(frozen=True)
class Defaults:
    """`defaults bn(eps=1e-3)`: argument values for every later call of the op in this body."""

    op: str
    kwargs: tuple  # of Kwarg
    args: tuple  # positional arguments (an error, reported when run)
    loc: Loc


@dataclass(frozen=True)
class For:
    var: str
    iter: Expr
    body: tuple
    loc: Loc


@dataclass(frozen=True)
class If:
    branches: tuple  # of (cond, body) pairs: if, elif...
    orelse: tuple
    loc: Loc


@dataclass(frozen=True)
class Return:
    value: Expr
    loc: Loc


@dataclass(frozen=True)
class Output:
    name: str
    value: Expr
    train_only: bool
    loc: Loc


@dataclass(frozen=True)
class Param:
    name: str
    default: Expr | None
    loc: Loc


@dataclass(frozen=True)
class BlockDef:
    name: str
    params: tuple
    body: tuple
    loc: Loc


@dataclass(frozen=True)
class InitClause:
    """`init resnet(zero_init_residual=true)` after a network's parameters: the reference
    initialisation scheme its generated module runs (cnnc/ir/schemes.py)."""

    scheme: str
    kwargs: tuple  # of Kwarg
    args: tuple  # positional arguments (an error, reported when run)
    loc: Loc


@dataclass(frozen=True)
class NetworkDef:
    name: str
    params: tuple
    body: tuple
    loc: Loc
    init: InitClause | None = None  # torch's default initialisation when absent


@dataclass(frozen=True)
class Preset:
    """`preset resnet50(layers=[3, 4, 6, 3]) reference "torchvision:resnet50"`: a catalog entry,
    the spec's network with these parameter values (literals), reproducing `reference`."""

    name: str
    kwargs: tuple  # of Kwarg
    args: tuple  # positional arguments (an error, reported by the loader)
    reference: str
    loc: Loc


@dataclass(frozen=True)
class ConstDef:
    name: str
    value: Expr
    loc: Loc


@dataclass(frozen=True)
class Import:
    path: str
    loc: Loc


@dataclass(frozen=True)
class Module:
    file: str
    items: tuple


def loc_of(node) -> Loc:
    """A node's location (UNKNOWN for a value that is not a node)."""
    return getattr(node, "loc", UNKNOWN)


# ---- dump ---------------------------------------------------------------------


def dump_ast(node) -> str:
    """Indented, location-annotated text form of an AST (the `--emit ast` output)."""
    out: list[str] = []
    _dump(node, 0, out, "")
    return "\n".join(out) + "\n"


def _scalar(v) -> str:
    if isinstance(v, str):
        return repr(v)
    return "true" if v is True else "false" if v is False else "none" if v is None else repr(v)


def _dump(node, depth: int, out: list[str], prefix: str) -> None:
    pad = "  " * depth
    if isinstance(node, tuple):
        if not node:
            return
        if all(isinstance(x, tuple) and len(x) == 2 for x in node) and not is_dataclass(node[0]):
            for i, (cond, body) in enumerate(node):  # If.branches
                out.append(f"{pad}{prefix}branch {i}:")
                _dump(cond, depth + 1, out, "cond: ")
                for s in body:
                    _dump(s, depth + 1, out, "")
            return
        for x in node:
            _dump(x, depth, out, prefix)
        return
    if not is_dataclass(node):
        out.append(f"{pad}{prefix}{_scalar(node)}")
        return
    simple, nested = [], []
    for f in fields(node):
        if f.name == "loc":
            continue
        v = getattr(node, f.name)
        if v is None and f.default is None:  # an optional part left out (NetworkDef.init)
            continue
        if v is None or isinstance(v, (str, int, float, bool)):
            simple.append(f"{f.name}={_scalar(v)}")
        elif isinstance(v, tuple) and not v:
            continue
        else:
            nested.append((f.name, v))
    loc = getattr(node, "loc", None)
    at = f" @{loc.line}:{loc.col}" if loc else ""
    out.append(f"{pad}{prefix}{type(node).__name__}{at} {' '.join(simple)}".rstrip())
    for name, v in nested:
        if isinstance(v, tuple):
            out.append(f"{pad}  {name}:")
            _dump(v, depth + 2, out, "")
        else:
            _dump(v, depth + 1, out, f"{name}: ")
