"""Which nodes run when, and how long their results live.

`inference_nodes(g)`: the nodes the network's outputs need in evaluation, i.e. every node an
output that is not `train output` depends on, plus the graph inputs. The rest run only in
training (GoogLeNet's auxiliary classifiers), as the generated module's `if self.training:` does.

`peak_live(g, sizes, nodes)`: the largest total size of the tensors alive at once while the
nodes run in node order. A tensor lives from the node that produces it until its last consumer
among `nodes` has run; graph inputs count; the network's outputs live to the end.
"""
from __future__ import annotations


def needed_by(g, roots) -> set:
    """The nodes the given node ids depend on, themselves included."""
    need: set = set()
    todo = list(roots)
    while todo:
        i = todo.pop()
        if i not in need:
            need.add(i)
            todo.extend(g.nodes[i].inputs)
    return need


def inference_nodes(g) -> set:
    roots = [o.node for o in g.outputs if not o.train_only] + [n.id for n in g.nodes if n.op == "input"]
    return needed_by(g, roots)


def peak_live(g, sizes, nodes=None) -> tuple:
    """(peak total of `sizes`, id of the node running at the peak) over `nodes` (default: all)."""
    run = [n for n in g.nodes if nodes is None or n.id in nodes]
    last: dict = {}
    for n in run:
        for i in n.inputs:
            last[i] = n.id
    outputs = {o.node for o in g.outputs}
    live = peak = 0
    at = run[0].id if run else None
    frees: dict = {}
    for n in run:
        if n.id not in outputs:  # freed after its last consumer (or at once: a result nothing reads)
            frees.setdefault(last.get(n.id, n.id), []).append(n.id)
        live += sizes[n.id]
        if live > peak:
            peak, at = live, n.id
        live -= sum(sizes[i] for i in frees.pop(n.id, ()))
    return peak, at
