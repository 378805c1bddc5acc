"""The IR verifier: invariants every graph must satisfy after every pass.

Checked: node ids equal positions; inputs refer to earlier nodes (so the order is
topological); the op exists and has the arity its table entry says; the shape
equals what the op's shape rule gives for the input shapes; instance paths are
unique and non-empty; outputs name existing nodes with unique names; every scope
path is a prefix of some node path. Raises AssertionError: a failure here is a
compiler bug, not a spec mistake. Linear in the size of the graph (the scope check looks the
scopes up in the set of path prefixes, instead of comparing every scope with every node).
"""
from __future__ import annotations

from .graph import Graph, path_prefixes
from .ops import OPS


def verify(g: Graph) -> Graph:
    paths = set()
    for i, n in enumerate(g.nodes):
        where = f"node %{i} ({n.path})"
        assert n.id == i, f"{where}: id {n.id} != position {i}"
        assert n.op in OPS, f"{where}: unknown op {n.op!r}"
        d = OPS[n.op]
        assert all(0 <= j < i for j in n.inputs), f"{where}: inputs {n.inputs} not all earlier nodes"
        arity = {"none": (0, 0), "one": (1, 1), "two": (2, 2), "many": (2, 10**9)}[d.arity]
        if n.op == "fused:conv":
            arity = (2, 2) if n.attr("residual") else (1, 1)
        assert arity[0] <= len(n.inputs) <= arity[1], f"{where}: {len(n.inputs)} inputs for {n.op}"
        assert tuple(k for k, _ in n.attrs) == tuple(a.name for a in d.args), f"{where}: attrs {n.attrs}"
        expect = tuple(d.shape(n.attrs, g.in_shapes(n)))
        assert expect == n.shape, f"{where}: shape {n.shape} but rule gives {expect}"
        assert n.path and n.path not in paths, f"{where}: duplicate or empty path {n.path!r}"
        paths.add(n.path)
        assert n.loc is not None and n.loc.line >= 1, f"{where}: no source location"
    names = set()
    for o in g.outputs:
        assert 0 <= o.node < len(g.nodes), f"output {o.name}: bad node {o.node}"
        assert o.name not in names, f"output {o.name} twice"
        names.add(o.name)
    holders = path_prefixes(paths)
    for s in g.scopes:
        assert s.path in holders, f"scope {s.path} holds no node"
    return g
