"""Shared plumbing of the fusion passes: rebuild a graph after replacing node groups."""
from __future__ import annotations

from dataclasses import replace

from cnnc.ir.graph import Graph, Node, live_scopes
from cnnc.ir.ops import FUSED_CONV, OPS


def single_user(g: Graph, users: dict, node_id: int) -> bool:
    """True when exactly one node reads node_id and no graph output names it."""
    return len(users[node_id]) == 1 and node_id not in g.output_nodes


def as_fused(n: Node) -> dict:
    """The attributes of a conv or fused conv, as a fused-conv attribute dict."""
    if n.op == FUSED_CONV:
        return dict(n.attrs)
    attrs = dict(n.attrs)
    attrs.update(bn=False, eps=1e-5, residual=False, act=None, members=(n.path,))
    return attrs


def fused_attrs(attrs: dict) -> tuple:
    return tuple((a.name, attrs[a.name]) for a in OPS[FUSED_CONV].args)


def rewrite(g: Graph, replacements: dict, removed: set) -> Graph:
    """Replace nodes by id (`replacements[id] = (op, inputs, attrs, path, loc)`) and drop `removed`.

    A replaced node keeps its position; uses of a removed node must have been rewritten
    to the node that absorbed it (`absorbed` in the replacement's inputs is by old id).
    """
    remap: dict[int, int] = {}
    nodes: list[Node] = []
    for n in g.nodes:
        if n.id in removed:
            continue
        if n.id in replacements:
            op, inputs, attrs, path, loc = replacements[n.id]
            n = Node(n.id, op, tuple(inputs), attrs, n.shape, path, loc)
        new_id = len(nodes)
        remap[n.id] = new_id
        nodes.append(replace(n, id=new_id, inputs=tuple(remap[i] for i in n.inputs)))
    outputs = tuple(replace(o, node=remap[o.node]) for o in g.outputs)
    return replace(g, nodes=tuple(nodes), outputs=outputs, scopes=tuple(live_scopes(g.scopes, nodes)))
