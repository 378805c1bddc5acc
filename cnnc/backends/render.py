"""`cnnc render`: the graph as a Graphviz picture (DOT text, or SVG/PNG/PDF via `dot`).

The picture is planned in three steps, then written as DOT:

  1. units     each IR node is drawn by one unit: itself, the node before it
               (a shape-preserving elementwise op such as bn or relu joins the
               op it follows when that op has no other user: `conv 3x3, 64`
               over `bn · relu`), or the block instance it lies in when its
               path is deeper than `depth` (one node per instance, with its
               block name and parameter count).
  2. repeats   a run of collapsed instances of the same block, identical in
               structure and shapes and wired one into the next, becomes one
               node marked `xN` (on by default whenever a depth is in effect).
  3. edges     one edge per pair of units that exchange a tensor, labelled
               with its shape; an add/mul input that bypasses the main path
               (fewer ops since the graph input than the other input) or a
               fused conv's residual is a dashed skip edge; concat inputs are
               drawn in the join colour.

Units are nested in clusters, one per block instance or labelled group, named
`instance (block)`. Without --depth, a spec too big to read at full detail is
drawn at the deepest depth that keeps it under `--max-nodes` nodes, with a
note on stderr. No torch is imported here.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from cnnc.diagnostics import CnncError
from cnnc.ir.graph import Graph
from cnnc.ir.values import fmt_shape
from cnnc.outfile import atomic_output, prepare_output, write_atomically

from . import dot_style as S

FORMATS = ("svg", "png", "pdf", "dot")
DEFAULT_MAX_NODES = 150
INSTALL_HINT = ("install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz), "
                "or print the DOT text with --dot")


# ---- planning --------------------------------------------------------------------


@dataclass
class Unit:
    """One drawn node: an op (possibly with merged followers), a block instance, or a run of repeats."""

    key: str  # DOT node id
    kind: str  # "op", "scope" or "repeat"
    nodes: list  # ids of the IR nodes it stands for, in order
    parent: str  # path of the enclosing cluster ('' = the top level)
    scope: str = ""  # for "scope" and "repeat": the (first) instance's path
    members: list = field(default_factory=list)  # for "repeat": the instance paths


@dataclass
class Plan:
    graph: Graph
    depth: int | None
    units: dict  # key -> Unit, in drawing order
    unit_of: list  # node id -> unit key
    edges: dict  # (src key, dst key) -> {"shapes": [...], "kinds": [...]}


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def max_depth(g: Graph) -> int:
    return max(n.path.count(".") + 1 for n in g.nodes)


def _levels(g: Graph) -> list:
    """Longest number of ops from a graph input to each node."""
    lvl = [0] * len(g.nodes)
    for n in g.nodes:
        lvl[n.id] = 1 + max((lvl[i] for i in n.inputs), default=-1)
    return lvl


def plan(g: Graph, depth: int | None = None, collapse_repeats: bool | None = None,
         merge: bool = True) -> Plan:
    if depth is not None and depth >= max_depth(g):
        depth = None  # nothing lies deeper: full detail
    if collapse_repeats is None:
        collapse_repeats = depth is not None
    users = g.users()
    outputs = {o.node for o in g.outputs}
    units: dict[str, Unit] = {}
    unit_of: list[str] = [""] * len(g.nodes)
    scope_keys: dict[str, str] = {}  # collapsed instance path -> its unit key

    # 1. units
    for n in g.nodes:
        parts = n.path.split(".")
        if depth is not None and len(parts) > depth:
            scope = ".".join(parts[:depth])
            key = scope_keys.setdefault(scope, f"b{n.id}")
            u = units.get(key)
            if u is None:
                u = units[key] = Unit(key, "scope", [], _parent(scope), scope=scope)
            u.nodes.append(n.id)
            unit_of[n.id] = key
            continue
        if merge and S.style_of(n.op).merges and len(n.inputs) == 1:
            m = g.nodes[n.inputs[0]]
            mu = units.get(unit_of[m.id])
            if (mu is not None and mu.kind == "op" and m.op != "input" and users[m.id] == [n.id]
                    and m.id not in outputs and _parent(m.path) == _parent(n.path)):
                mu.nodes.append(n.id)
                unit_of[n.id] = mu.key
                continue
        key = f"n{n.id}"
        units[key] = Unit(key, "op", [n.id], _parent(n.path))
        unit_of[n.id] = key

    edges = _edges(g, units, unit_of)

    # 2. repeats
    if collapse_repeats and depth is not None:
        units, unit_of = _collapse_repeats(g, units, unit_of, edges, outputs)
        edges = _edges(g, units, unit_of)
    return Plan(g, depth, units, unit_of, edges)


def _edges(g: Graph, units, unit_of) -> dict:
    lvl = _levels(g)
    edges: dict = {}
    for v in g.nodes:
        dst = unit_of[v.id]
        style = S.style_of(v.op)
        dst_is_op = units[dst].kind == "op"
        bypass = style.skip_input(v, lvl) if style.skip_input and dst_is_op else None
        for u in v.inputs:
            src = unit_of[u]
            if src == dst:
                continue
            kind = "join" if style.join and dst_is_op else "skip" if u == bypass else "data"
            e = edges.setdefault((src, dst), {"shapes": [], "kinds": []})
            shape = fmt_shape(g.nodes[u].shape)
            if shape not in e["shapes"]:
                e["shapes"].append(shape)
            e["kinds"].append(kind)
    return edges


def _signature(g: Graph, u: Unit) -> tuple:
    """Structure and shapes of a collapsed instance, with paths relative to it."""
    index = {nid: k for k, nid in enumerate(u.nodes)}
    cut = len(u.scope) + 1
    return tuple((g.nodes[i].path[cut:], g.nodes[i].op, g.nodes[i].attrs, g.nodes[i].shape,
                  tuple(index.get(j, -1) for j in g.nodes[i].inputs)) for i in u.nodes)


def _collapse_repeats(g: Graph, units, unit_of, edges, outputs):
    scopes = g.scope_map()
    ins: dict = {}
    outs: dict = {}
    for (s, d) in edges:
        outs.setdefault(s, set()).add(d)
        ins.setdefault(d, set()).add(s)

    def block_name(u):
        sc = scopes.get(u.scope)
        return sc.name if u.kind == "scope" and sc is not None and sc.kind == "block" else None

    order = list(units.values())
    runs: list[list[Unit]] = []
    for u in order:
        prev = runs[-1][-1] if runs else None
        if (prev is not None and block_name(u) is not None and block_name(u) == block_name(prev)
                and prev.parent == u.parent and outs.get(prev.key) == {u.key} and ins.get(u.key) == {prev.key}
                and not outputs.intersection(prev.nodes) and _signature(g, u) == _signature(g, prev)):
            runs[-1].append(u)
        else:
            runs.append([u])
    new_units: dict = {}
    for run in runs:
        head = run[0]
        if len(run) > 1:
            head = Unit(head.key, "repeat", [i for u in run for i in u.nodes], head.parent, scope=head.scope,
                        members=[u.scope for u in run])
            for i in head.nodes:
                unit_of[i] = head.key
        new_units[head.key] = head
    return new_units, unit_of


def node_count(p: Plan) -> int:
    """Nodes in the picture: units plus one per network output."""
    return len(p.units) + len(p.graph.outputs)


def choose_depth(g: Graph, max_nodes: int = DEFAULT_MAX_NODES, merge: bool = True):
    """(depth, nodes): None for full detail when it fits, else the deepest depth that fits (at least 1)."""
    full = node_count(plan(g, None, merge=merge))
    if full <= max_nodes:
        return None, full
    count = full
    for d in range(max_depth(g) - 1, 0, -1):
        count = node_count(plan(g, d, merge=merge))
        if count <= max_nodes:
            return d, count
    return 1, count


# ---- DOT text --------------------------------------------------------------------


def _q(text) -> str:
    s = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{s}"'


def _attrs(d: dict) -> str:
    return ", ".join(f"{k}={_q(v)}" for k, v in d.items())


def _count(n: int) -> str:
    for div, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "K")):
        if n >= div:
            return f"{n / div:.3g}{suffix}"
    return str(n)


def _params(g: Graph, ids) -> int:
    return sum(g.params_of(g.nodes[i]) for i in ids)


def _unit_attrs(p: Plan, u: Unit, scopes: dict) -> dict:
    g = p.graph
    if u.kind == "op":
        head = g.nodes[u.nodes[0]]
        st = S.style_of(head.op)
        ins = g.in_shapes(head)
        label = st.label(head, ins)
        if head.op == "input":
            label += f" {fmt_shape(head.shape)}"
        tails = [g.nodes[i] for i in u.nodes[1:]]
        if tails:
            # followers go on a second line under an op with attributes (`conv 3x3, 64` / `bn · relu`),
            # on the same line after another elementwise op (`bn · relu`)
            sep = " · " if st.merges else "\n"
            label += sep + " · ".join(S.style_of(t.op).label(t, g.in_shapes(t)) for t in tails)
        tip = head.path + "".join(f", {t.path.rpartition('.')[2]}" for t in tails)
        params = _params(g, u.nodes)
        if params:
            tip += f" ({params:,} params)"
        a = {"label": label, "shape": st.shape, "fillcolor": st.fill, "tooltip": tip}
        if head.op == "input":
            a.update(S.INPUT)
        return a
    sc = scopes.get(u.scope)
    name = u.scope.rpartition(".")[2]
    what = sc.name if sc is not None and sc.kind == "block" else "group"
    params = _params(g, u.nodes)
    if u.kind == "repeat":
        first, last = u.members[0].rpartition(".")[2], u.members[-1].rpartition(".")[2]
        label = f"{first} .. {last}\n{what} x{len(u.members)}\n{_count(params)} params"
        tip = f"{u.members[0]} .. {u.members[-1]}: {len(u.members)} x {what} ({params:,} params)"
        return {"label": label, **S.COLLAPSED, **S.REPEATED, "tooltip": tip}
    if what == "group":
        what = _group_summary(g, u.nodes)
    elif len(_main_ops(g, u.nodes)) == 1:  # a wrapper such as conv_bn: say which conv
        what += "\n" + _group_summary(g, u.nodes)
    label = f"{name}\n{what}\n{_count(params)} params"
    return {"label": label, **S.COLLAPSED, "tooltip": f"{u.scope} ({params:,} params)"}


def _main_ops(g: Graph, ids) -> list:
    return [g.nodes[i] for i in ids if not S.style_of(g.nodes[i].op).merges]


def _group_summary(g: Graph, ids) -> str:
    """What a collapsed group does: its main ops when there are few, else how many."""
    main = _main_ops(g, ids) or [g.nodes[i] for i in ids]
    if len(main) > 3:
        return f"{len(main)} ops"
    return "\n".join(S.style_of(n.op).label(n, g.in_shapes(n)) for n in main)


def _cluster_label(scopes, path: str) -> str:
    name = path.rpartition(".")[2]
    sc = scopes.get(path)
    if sc is not None and sc.kind == "block":
        return f"{name} ({sc.name})"
    return name


def _entry(children, path: str) -> str:
    """The first unit drawn inside a cluster."""
    what, item = children[path][0]
    return item.key if what == "unit" else _entry(children, item)


def _parallel_entries(children, path: str, sources) -> list:
    """Entry units of sibling clusters that all start from the same inputs (inception branches)."""
    entries = [_entry(children, item) for what, item in children[path] if what == "cluster"]
    if len(entries) < 2:
        return []
    first = sources.get(entries[0])
    if not first or any(sources.get(e) != first for e in entries[1:]):
        return []
    return entries


def to_dot(g: Graph, depth: int | None = None, collapse_repeats: bool | None = None, merge: bool = True,
           rankdir: str = "TB", p: Plan | None = None) -> str:
    p = p or plan(g, depth, collapse_repeats, merge)
    scopes = g.scope_map()
    units = list(p.units.values())

    # The cluster tree: each scope path lists its child clusters and units in order of appearance.
    children: dict[str, list] = {"": []}
    for u in units:
        path, child = u.parent, ("unit", u)
        while True:
            known = path in children
            lst = children.setdefault(path, [])
            lst.append(child)
            if known or path == "":
                break
            path, child = _parent(path), ("cluster", path)

    total = sum(g.params_of(n) for n in g.nodes)
    title = f"{g.name}: {total:,} parameters"
    if any(n.op.startswith("fused:") for n in g.nodes):
        title += ", after fusion"
    if p.depth is not None:
        title += f" (drawn to depth {p.depth})"
    out = [f"digraph {_q(g.name)} {{",
           f"  graph [{_attrs({**S.GRAPH_ATTRS, 'rankdir': rankdir, 'label': title})}];",
           f"  node [{_attrs(S.NODE_ATTRS)}];",
           f"  edge [{_attrs(S.EDGE_ATTRS)}];"]
    counter = [0]

    def emit(path: str, indent: str, level: int) -> None:
        for what, item in children[path]:
            if what == "unit":
                out.append(f"{indent}{item.key} [{_attrs(_unit_attrs(p, item, scopes))}];")
                continue
            counter[0] += 1
            sc = scopes.get(item)
            if sc is not None and sc.kind == "block":
                style = {**S.BLOCK_CLUSTER, "fillcolor": S.BLOCK_FILLS[min(level, len(S.BLOCK_FILLS) - 1)]}
            else:
                style = S.GROUP_CLUSTER
            out.append(f"{indent}subgraph cluster_{counter[0]} {{")
            out.append(f"{indent}  graph [{_attrs({**style, 'label': _cluster_label(scopes, item)})}];")
            emit(item, indent + "  ", level + 1 if sc is not None and sc.kind == "block" else level)
            out.append(f"{indent}}}")
        lane = _parallel_entries(children, path, sources)
        if lane:
            # parallel branches fed by the same tensor: heads on one rank, in spec order
            out.append(f"{indent}{{ rank=same; {'; '.join(lane)}; }}")
            out.append(f"{indent}{' -> '.join(lane)} [style=\"invis\"];")

    sources: dict = {}
    for (src, dst) in p.edges:
        sources.setdefault(dst, set()).add(src)
    emit("", "  ", 0)
    for k, o in enumerate(g.outputs):
        style = S.TRAIN_OUTPUT if o.train_only else S.OUTPUT
        label = f"{'train output' if o.train_only else 'output'} {o.name}"
        out.append(f"  out{k} [{_attrs({'label': label, **style})}];")
    for (src, dst), e in p.edges.items():
        kinds = set(e["kinds"])
        kind = kinds.pop() if len(kinds) == 1 else "data"
        out.append(f"  {src} -> {dst} [{_attrs({'label': ', '.join(e['shapes']), **S.EDGE_KINDS[kind]})}];")
    for k, o in enumerate(g.outputs):
        out.append(f"  {p.unit_of[o.node]} -> out{k} [{_attrs({'label': fmt_shape(g.nodes[o.node].shape)})}];")
    out.append("}")
    return "\n".join(out) + "\n"


# ---- running Graphviz ------------------------------------------------------------


def find_dot() -> str:
    exe = shutil.which("dot")
    if exe is None:
        raise CnncError(f"Graphviz's `dot` program was not found on PATH; {INSTALL_HINT}")
    return exe


def write_dot(text: str, out: str, inputs=()) -> None:
    """Write DOT text to `out` atomically (a temporary file in the same directory, then a rename);
    `inputs`: the command's input files, which `out` must not be."""
    write_atomically(prepare_output(out, "net.dot", inputs), text.encode("utf-8"))


def render_file(text: str, fmt: str, out: str, inputs=()) -> None:
    """Run `dot -T<fmt>` on DOT text, writing `out` atomically; errors are CnncErrors. The `dot`
    process never outlives this call: on any error or interruption (KeyboardInterrupt, or the
    command line's SIGTERM exception) it is killed and reaped before the exception goes on."""
    exe = find_dot()
    with atomic_output(prepare_output(out, f"net.{fmt}", inputs)) as tmp:
        try:
            proc = subprocess.Popen([exe, f"-T{fmt}", "-o", str(tmp)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            raise CnncError(f"cannot run Graphviz's `dot` ({exe}): {e.strerror or e}; {INSTALL_HINT}")
        try:
            _, raw = proc.communicate(text.encode("utf-8"))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err = raw.decode("utf-8", "replace").strip()
        if proc.returncode != 0:
            raise CnncError(f"Graphviz's `dot` failed (exit {proc.returncode}) rendering {fmt}: {err or 'no message'}")
        if err:
            print(f"cnnc render: dot says: {err}", file=sys.stderr)
