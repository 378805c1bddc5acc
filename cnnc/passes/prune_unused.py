"""prune_unused: drop nodes that no output depends on, with a warning for each.

A spec that computes a value and never uses it has almost always lost a wire
(a branch left out of a concat, a shortcut never added), so each dropped node
is reported at the line that made it. Inputs are never dropped. Parts of a `split` left unused
while another part of the same call is used (`split(x, 2)[0]`) are dropped without a warning:
taking some of the parts is what indexing a split is for.
Must not fire on nodes that feed a train-only output: those are outputs too.
"""
from __future__ import annotations

from dataclasses import replace

from cnnc.diagnostics import Diagnostic
from cnnc.ir.graph import Graph, live_scopes
from cnnc.ir.ops import LIST_OPS

PART_OPS = {d.part_op for d in LIST_OPS.values()}


def prune_unused(g: Graph) -> tuple[Graph, list[str]]:
    live = set()
    stack = [o.node for o in g.outputs] + [n.id for n in g.nodes if n.op == "input"]
    while stack:
        i = stack.pop()
        if i in live:
            continue
        live.add(i)
        stack.extend(g.nodes[i].inputs)
    if len(live) == len(g.nodes):
        return g, []
    warnings = []
    dead_users = set()
    # one call's parts: same op, inputs and source location (split makes one slice node per part)
    used_parts = {(n.op, n.inputs, n.loc) for n in g.nodes if n.id in live and n.op in PART_OPS}
    for n in g.nodes:
        if n.id not in live and not (set(n.inputs) & dead_users) and (n.op, n.inputs, n.loc) not in used_parts:
            warnings.append(Diagnostic("warning", f"result of {n.op} '{n.path}' is never used", n.loc))
        if n.id not in live:
            dead_users.add(n.id)
    remap = {}
    nodes = []
    for n in g.nodes:
        if n.id in live:
            remap[n.id] = len(nodes)
            nodes.append(replace(n, id=len(nodes), inputs=tuple(remap[i] for i in n.inputs)))
    outputs = tuple(replace(o, node=remap[o.node]) for o in g.outputs)
    scopes = tuple(live_scopes(g.scopes, nodes))
    return replace(g, nodes=tuple(nodes), outputs=outputs, scopes=scopes), warnings
