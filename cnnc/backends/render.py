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
               node marked `xN` (on by default whenever a depth is in effect);
               real-valued arguments may differ (drop-path rates) and are shown
               as a range, `x9, drop 0.04–0.08`.
  3. edges     one edge per pair of units that exchange a tensor, labelled
               with its shape; an add/mul input that bypasses the main path
               (fewer ops since the graph input than the other input) or a
               fused conv's residual is a dashed skip edge; concat inputs are
               drawn in the join colour.

Units are nested in clusters, one per block instance or labelled group, named
`instance (block)`; a legend cluster lists the fill colours and edge kinds used.
Without --depth, the picture is drawn at the most detailed depth whose size
along the flow (height, or width for LR), estimated from the plan without
running Graphviz (`estimate_extent`), fits `--max-height` (2,500 px at 96 dpi),
with a note on stderr when that is not full detail. No torch is imported here.
"""
from __future__ import annotations

import html
import os
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
DEFAULT_MAX_HEIGHT = 2500  # pixels at Graphviz's default 96 dpi, along the rank axis
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
    member_nodes: list = field(default_factory=list)  # for "repeat": each instance's node ids


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


def _structural(attrs, scope: str) -> tuple:
    """The attributes that make structure: not the real-valued scalars (drop rates, layer-scale
    inits, epsilons), which may differ between repeats; instance paths (a fused conv's members)
    relative to the instance."""
    cut = len(scope) + 1
    out = []
    for k, v in attrs:
        if isinstance(v, float):
            continue
        if isinstance(v, tuple) and v and all(isinstance(x, str) and x.startswith(scope + ".") for x in v):
            v = tuple(x[cut:] for x in v)
        out.append((k, v))
    return tuple(out)


def _signature(g: Graph, u: Unit) -> tuple:
    """Structure and shapes of a collapsed instance, with paths relative to it."""
    index = {nid: k for k, nid in enumerate(u.nodes)}
    cut = len(u.scope) + 1
    return tuple((g.nodes[i].path[cut:], g.nodes[i].op, _structural(g.nodes[i].attrs, u.scope), g.nodes[i].shape,
                  tuple(index.get(j, -1) for j in g.nodes[i].inputs)) for i in u.nodes)


def scalar_ranges(g: Graph, member_nodes: list) -> list:
    """(op, attribute, low, high) of each real-valued attribute that differs across a run's instances
    (ConvNeXt's and EfficientNet's rising drop-path rates), in order of appearance."""
    values: dict = {}
    for ids in member_nodes:
        for i in ids:
            n = g.nodes[i]
            for k, v in n.attrs:
                if isinstance(v, float):
                    values.setdefault((n.op, k), []).append(v)
    return [(op, k, min(vs), max(vs)) for (op, k), vs in values.items() if min(vs) != max(vs)]


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
                        members=[u.scope for u in run], member_nodes=[u.nodes for u in run])
            for i in head.nodes:
                unit_of[i] = head.key
        new_units[head.key] = head
    return new_units, unit_of


def node_count(p: Plan) -> int:
    """Nodes in the picture: units plus one per network output."""
    return len(p.units) + len(p.graph.outputs)


def _ancestors(path: str) -> list:
    """'a.b.c' -> ['a', 'a.b', 'a.b.c']; '' -> []."""
    parts = path.split(".") if path else []
    return [".".join(parts[:k]) for k in range(1, len(parts) + 1)]


def _extent_of(label: str, kind: str, rankdir: str) -> float:
    """A node's size along the rank axis, in points: its height (TB) or width (LR)."""
    lines = label.split("\n")
    if rankdir == "TB":
        inner = len(lines) * S.LINE_PT + 2 * (S.COLLAPSED_MARGIN_PT if kind != "op" else S.NODE_MARGIN_PT)
        return max(S.NODE_MIN_PT, inner) + (S.PERIPHERY_PT if kind == "repeat" else 0)
    return max(len(line) for line in lines) * S.CHAR_PT + 2 * S.NODE_SIDE_MARGIN_PT


def estimate_extent(p: Plan, rankdir: str = "TB", legend: bool = True) -> int:
    """The picture's size along the rank axis (its height for TB, width for LR) in pixels at 96 dpi,
    estimated without running Graphviz. Units are ranked as dot ranks them (the longest chain of
    edges from an input); the estimate is the costliest chain of: each rank's deepest unit (label
    lines, or the legend beside the input), a gap per edge (the rank separation and the edge label,
    as deep as the widest one leaving that rank in LR), the labels and margins of the clusters the
    chain enters and leaves, and the title. dot_style's layout metrics are calibrated so that it
    errs on the large side (tests/test_render.py checks it against dot's layout for every spec)."""
    g = p.graph
    scopes = g.scope_map()
    units = list(p.units.values())
    order = {u.key: k for k, u in enumerate(units)}
    size = {u.key: _extent_of(_unit_attrs(p, u, scopes)["label"], u.kind, rankdir) for u in units}
    for k, o in enumerate(g.outputs):
        size[f"out{k}"] = _extent_of(f"output {o.name}", "op", rankdir)
    parent = {u.key: u.parent for u in units}
    succ: dict = {}
    for (src, dst), e in p.edges.items():
        if order[src] < order[dst]:  # forward edges only: a unit DAG can hold a cycle after collapsing
            label = max(e["shapes"], key=len)
            succ.setdefault(src, []).append((dst, label))
    for k, o in enumerate(g.outputs):
        src = p.unit_of[o.node]
        succ.setdefault(src, []).append((f"out{k}", fmt_shape(g.nodes[o.node].shape)))
        parent[f"out{k}"] = ""
    cluster = S.CLUSTER_TOP_PT if rankdir == "TB" else S.CLUSTER_SIDE_PT

    def crossing(a: str, b: str) -> float:
        """Cluster borders between a unit in cluster path a and one in b: leave, then enter."""
        pa, pb = _ancestors(a), _ancestors(b)
        common = 0
        while common < min(len(pa), len(pb)) and pa[common] == pb[common]:
            common += 1
        return (len(pa) - common) * S.CLUSTER_BOTTOM_PT + (len(pb) - common) * cluster

    def gap(label: str) -> float:
        along = S.EDGE_LABEL_PT if rankdir == "TB" else len(label) * S.EDGE_CHAR_PT
        return S.RANKSEP_PT + along

    if legend:  # on the input's rank: that rank is as tall as the legend (TB), or as wide (LR)
        cells = len(_legend_cells(p))
        first = units[0].key
        legend_pt = (S.CLUSTER_TOP_PT + S.CLUSTER_BOTTOM_PT + -(-cells // S.LEGEND_PER_ROW["TB"]) * S.LEGEND_ROW_PT
                     if rankdir == "TB" else S.LEGEND_WIDTH_PT)
        size[first] = max(size[first], legend_pt)

    # Ranks (longest chain of units), as dot assigns them: a rank is as deep as its deepest unit,
    # and the gap after it as wide as its widest edge label (LR).
    keys = [u.key for u in units] + [f"out{k}" for k in range(len(g.outputs))]
    rank = {k: 0 for k in keys}
    for key in keys:
        for dst, _ in succ.get(key, ()):
            rank[dst] = max(rank[dst], rank[key] + 1)
    rank_size: dict = {}
    rank_gap: dict = {}
    for key in keys:
        rank_size[rank[key]] = max(rank_size.get(rank[key], 0.0), size[key])
        for _, label in succ.get(key, ()):
            rank_gap[rank[key]] = max(rank_gap.get(rank[key], 0.0), gap(label))

    reach = {k: crossing("", parent[k]) + rank_size[0] for k in keys if rank[k] == 0}
    best = 0.0
    for key in keys:
        if key not in reach:
            continue
        here = reach[key]
        best = max(best, here + crossing(parent[key], ""))
        for dst, label in succ.get(key, ()):
            to = here + rank_gap[rank[key]] + crossing(parent[key], parent[dst]) + rank_size[rank[dst]]
            to += (rank[dst] - rank[key] - 1) * (S.RANKSEP_PT + S.NODE_MIN_PT)  # an edge across ranks
            if to > reach.get(dst, -1.0):
                reach[dst] = to
    title = S.TITLE_PT if rankdir == "TB" else 0
    return round((best + title + 2 * S.PAD_PT) * S.ESTIMATE_MARGIN[rankdir] * 96 / 72)


def choose_depth(g: Graph, max_height: int = DEFAULT_MAX_HEIGHT, merge: bool = True,
                 collapse_repeats: bool | None = None, rankdir: str = "TB", legend: bool = True):
    """(depth, estimated pixels along the rank axis): None for full detail when it fits, else the
    deepest depth whose picture fits `max_height` (at least 1)."""
    full = estimate_extent(plan(g, None, merge=merge), rankdir, legend)
    if full <= max_height:
        return None, full
    px = full
    for d in range(max_depth(g) - 1, 0, -1):
        px = estimate_extent(plan(g, d, collapse_repeats, merge), rankdir, legend)
        if px <= max_height:
            return d, px
    return 1, px


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
        if head.op == "input":  # several inputs: each with its instance name
            several = sum(n.op == "input" for n in g.nodes) > 1
            label = f"{head.path if several else label} {fmt_shape(head.shape)}"
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
        ranges = "".join(f", {S.range_label(op, k, lo, hi)}" for op, k, lo, hi in scalar_ranges(g, u.member_nodes))
        label = f"{first} .. {last}\n{what} x{len(u.members)}{ranges}\n{_count(params)} params"
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


def _legend_cells(p: Plan) -> list:
    """The legend's table cells: the fill colours and edge kinds this picture uses."""
    g = p.graph
    entries: dict = {}
    for u in p.units.values():
        if u.kind == "op":
            fill = S.style_of(g.nodes[u.nodes[0]].op).fill
            entries.setdefault(fill, (S.FAMILIES.get(fill, "other"), "1", fill))
        else:
            name = "block (collapsed)" if u.kind == "scope" else "repeats (xN)"
            entries.setdefault(u.kind, (name, "2" if u.kind == "repeat" else "1", S.COLLAPSED["fillcolor"]))
    for o in g.outputs:
        kind = "train output" if o.train_only else "output"
        entries.setdefault(kind, (kind, "1", (S.TRAIN_OUTPUT if o.train_only else S.OUTPUT)["fillcolor"]))
    cells = [f'<TD BGCOLOR="{c}" BORDER="{b}" COLOR="#888888">{html.escape(name)}</TD>'
             for name, b, c in entries.values()]
    kinds = {k for e in p.edges.values() for k in e["kinds"]} & set(S.LEGEND_EDGES)
    for kind in sorted(kinds):
        colour = S.EDGE_KINDS[kind]["color"]
        line = "- - -&gt;" if S.EDGE_KINDS[kind].get("style") == "dashed" else "——&gt;"
        cells.append(f'<TD BORDER="0"><FONT COLOR="{colour}">{line} {html.escape(S.LEGEND_EDGES[kind])}</FONT></TD>')
    return cells


def _legend(p: Plan, anchor: str, rankdir: str) -> list:
    """The legend cluster: a table of the fill colours and edge kinds this picture uses, on the
    input's rank (it widens the picture, and makes that one rank taller): rows of a few entries
    when the graph runs top to bottom, one column when it runs left to right."""
    cells = _legend_cells(p)
    n = S.LEGEND_PER_ROW[rankdir]
    rows = "".join("<TR>" + "".join(cells[i:i + n]) + "</TR>" for i in range(0, len(cells), n))
    table = f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="3" CELLPADDING="2">{rows}</TABLE>>'
    return ["  subgraph cluster_legend {",
            f"    graph [{_attrs(S.LEGEND_CLUSTER)}];",
            f'    legend [shape="plaintext", style="", fontsize="9", label={table}];',
            "  }",
            f"  {{ rank=same; legend; {anchor}; }}"]


def to_dot(g: Graph, depth: int | None = None, collapse_repeats: bool | None = None, merge: bool = True,
           rankdir: str = "TB", p: Plan | None = None, legend: bool = True, dpi: int | None = None) -> str:
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
    graph_attrs = {**S.GRAPH_ATTRS, **S.RANKDIR_ATTRS[rankdir], "rankdir": rankdir, "label": title,
                   **({"dpi": str(dpi)} if dpi else {})}
    out = [f"digraph {_q(g.name)} {{",
           f"  graph [{_attrs(graph_attrs)}];",
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
    if legend:
        out += _legend(p, p.unit_of[next(n.id for n in g.nodes if n.op == "input")], rankdir)
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


def run_dot(text: str, fmt: str, out=None) -> bytes:
    """Run `dot -T<fmt>` on DOT text: into the file `out`, or returning its output; errors are
    CnncErrors. The `dot` process never outlives this call: on any error or interruption
    (KeyboardInterrupt, or the command line's SIGTERM exception) it is killed and reaped before
    the exception goes on."""
    exe = find_dot()
    try:
        proc = subprocess.Popen([exe, f"-T{fmt}"] + (["-o", str(out)] if out is not None else []),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise CnncError(f"cannot run Graphviz's `dot` ({exe}): {e.strerror or e}; {INSTALL_HINT}")
    try:
        stdout, raw = proc.communicate(text.encode("utf-8"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = raw.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        raise CnncError(f"Graphviz's `dot` failed (exit {proc.returncode}) rendering {fmt}: {err or 'no message'}")
    if err:
        print(f"cnnc render: dot says: {err}", file=sys.stderr)
    return stdout


def render_file(text: str, fmt: str, out: str, inputs=()) -> None:
    """Run `dot -T<fmt>` on DOT text, writing `out` atomically (`inputs`: the command's input
    files, which `out` must not be); errors are CnncErrors."""
    with atomic_output(prepare_output(out, f"net.{fmt}", inputs)) as tmp:
        run_dot(text, fmt, tmp)


def save(text: str, out: str, fmt: str | None = None) -> None:
    """DOT text to a file, in the format `fmt` or that of the file's suffix."""
    fmt = fmt or os.path.splitext(str(out))[1].lstrip(".").lower()
    if fmt not in FORMATS:
        raise CnncError(f"cannot tell the picture format from '{out}'; give format= one of {', '.join(FORMATS)}")
    if fmt == "dot":
        write_dot(text, out)
    else:
        render_file(text, fmt, out)


class Picture:
    """A network's picture for notebooks (`cnnc.render`): the DOT text now (`.dot`), an SVG when a
    notebook shows it (`_repr_svg_` runs Graphviz's dot on first use), a file with `.save(path)`."""

    def __init__(self, dot: str, name: str, depth: int | None):
        self.dot, self.name, self.depth = dot, name, depth
        self._svg: str | None = None

    def _repr_svg_(self) -> str:
        if self._svg is None:
            self._svg = run_dot(self.dot, "svg").decode("utf-8")
        return self._svg

    def save(self, path, format: str | None = None) -> None:  # noqa: A002 - format, as in the CLI
        save(self.dot, path, format)

    def __repr__(self) -> str:
        drawn = "full detail" if self.depth is None else f"depth {self.depth}"
        return f"<cnnc picture of {self.name} ({drawn}): .dot, .save(path); a notebook shows it as SVG>"
