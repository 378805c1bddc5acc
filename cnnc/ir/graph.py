"""The IR: a typed dataflow graph of frozen nodes.

A `Graph` is a topologically ordered tuple of `Node`s (a node's id is its index).
Every node records the op, its input node ids, normalised attributes, the output
shape (without batch), the dotted instance path it was created under
(`layer3.bottleneck2.conv1`) and the source location of the call that made it.
`Scope`s record the block instances and groups, so that later stages (summary
roll-up, render clusters) know what each path prefix is.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from cnnc.diagnostics import Loc
from .ops import OPS
from .values import fmt_shape


@dataclass(frozen=True)
class Node:
    id: int
    op: str
    inputs: tuple  # node ids
    attrs: tuple  # ((name, value), ...) in the op's argument order
    shape: tuple
    path: str
    loc: Loc

    def attr(self, name, default=None):
        for k, v in self.attrs:
            if k == name:
                return v
        return default


@dataclass(frozen=True)
class Scope:
    """A block instance (`kind == 'block'`, `name` = the block) or a labelled group."""

    path: str
    kind: str
    name: str
    loc: Loc


@dataclass(frozen=True)
class Output:
    name: str
    node: int
    train_only: bool
    loc: Loc


@dataclass(frozen=True)
class Init:
    """The network's initialisation scheme (`init resnet(...)` in its header; schemes.py)."""

    scheme: str
    options: tuple  # ((name, value), ...) in the scheme's option order
    loc: Loc
    zero_norms: tuple = ()  # instance paths of the batchnorms whose weight starts at 0
    gates: tuple = ()  # instance paths of the convs whose bias starts at `gate_bias` (highway's transform gates)
    within: str | None = None  # the instance path the scheme is confined to (`within="backbone"`); None: all

    def option(self, name):
        return dict(self.options)[name]


@dataclass(frozen=True)
class Graph:
    name: str
    file: str
    params: tuple  # network parameters as used: ((name, value), ...)
    nodes: tuple
    outputs: tuple
    scopes: tuple
    init: Init | None = None  # None: torch's default initialisation

    def in_shapes(self, node: Node) -> list:
        return [self.nodes[i].shape for i in node.inputs]

    def params_of(self, node: Node) -> int:
        return OPS[node.op].params(node.attrs, self.in_shapes(node), node.shape)

    def macs_of(self, node: Node) -> int:
        return OPS[node.op].macs(node.attrs, self.in_shapes(node), node.shape)

    def users(self) -> dict:
        out: dict[int, list[int]] = {n.id: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                out[i].append(n.id)
        return out

    def scope_map(self) -> dict:
        return {s.path: s for s in self.scopes}

    @cached_property
    def output_nodes(self) -> frozenset:
        """The ids of the nodes that are graph outputs (computed once per graph)."""
        return frozenset(o.node for o in self.outputs)


def path_prefixes(paths) -> set:
    """Every proper dotted prefix of the paths (`a.b.c` gives `a` and `a.b`): the instances that
    hold them. Linear in the total length of the paths."""
    prefixes = set()
    for path in paths:
        i = path.find(".")
        while i != -1:
            prefixes.add(path[:i])
            i = path.find(".", i + 1)
    return prefixes


def live_scopes(scopes, nodes):
    """The scopes that hold at least one node (a block that returns its input holds none)."""
    prefixes = path_prefixes(n.path for n in nodes)
    return [s for s in scopes if s.path in prefixes]


def fmt_value(v) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "none"
    if isinstance(v, tuple):
        return "[" + ",".join(fmt_value(x) for x in v) + "]"
    if isinstance(v, str):
        return f'"{v}"'
    return repr(v)


def init_options(init: Init) -> str:
    """The options of an init clause as written: `zero_init_residual=true`, `within="backbone"`."""
    within = (("within", init.within),) if init.within is not None else ()
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in init.options + within)


def dump_ir(g: Graph, locations: bool = True) -> str:
    """Compact text form of the IR (the `--emit ir` output and golden format)."""
    ps = ", ".join(f"{k}={fmt_value(v)}" for k, v in g.params)
    lines = [f"network {g.name}({ps})"]
    if g.init is not None:
        lines.append(f"  init {g.init.scheme}({init_options(g.init)})")
    for n in g.nodes:
        args = ", ".join(f"%{i}" for i in n.inputs)
        attrs = ", ".join(f"{k}={fmt_value(v)}" for k, v in n.attrs)
        attrs = f" {{{attrs}}}" if attrs else ""
        f = "" if n.loc.file == g.file else n.loc.file.rsplit("/", 1)[-1] + ":"
        where = f"  @{f}{n.loc.line}:{n.loc.col}" if locations else ""
        lines.append(f"  %{n.id} = {n.op}({args}){attrs} : {fmt_shape(n.shape)}  # {n.path}{where}")
    for o in g.outputs:
        lines.append(f"  {'train output' if o.train_only else 'output'} {o.name} = %{o.node}")
    return "\n".join(lines) + "\n"
