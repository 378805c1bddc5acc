"""Per-layer table of a graph: instance path, op, output shape, parameters, MACs.

`rows(graph, depth)` rolls nodes up to the first `depth` components of their
instance path (a block instance becomes one row named after the block);
`render(...)` formats the table as text, markdown, csv or json.
"""
from __future__ import annotations

import csv
import io
import json

from cnnc.ir.graph import Graph
from cnnc.ir.values import fmt_shape


def rows(g: Graph, depth: int | None = None) -> list[dict]:
    scopes = g.scope_map()
    out: list[dict] = []
    index: dict[str, dict] = {}
    for n in g.nodes:
        parts = n.path.split(".")
        key = n.path if depth is None or len(parts) <= depth else ".".join(parts[:depth])
        p, m = g.params_of(n), g.macs_of(n)
        row = index.get(key)
        if row is None:
            s = scopes.get(key)
            op = n.op if key == n.path else (s.name if s and s.kind == "block" else "group")
            row = {"path": key, "op": op, "shape": list(n.shape), "params": 0, "macs": 0, "layers": 0}
            index[key] = row
            out.append(row)
        row["shape"] = list(n.shape)
        row["params"] += p
        row["macs"] += m
        row["layers"] += 1
    return out


def totals(g: Graph) -> tuple[int, int]:
    return sum(g.params_of(n) for n in g.nodes), sum(g.macs_of(n) for n in g.nodes)


def summary_data(g: Graph, depth: int | None = None) -> dict:
    params, macs = totals(g)
    layers = rows(g, depth)
    for r in layers:
        if depth is None:
            del r["layers"]
    return {
        "network": g.name,
        "parameters": dict(g.params),
        "inputs": [{"path": n.path, "shape": list(n.shape)} for n in g.nodes if n.op == "input"],
        "outputs": [{"name": o.name, "shape": list(g.nodes[o.node].shape), "train_only": o.train_only}
                    for o in g.outputs],
        "params": params,
        "macs": macs,
        "layers": layers,
    }


def human(n: int, unit: str = "") -> str:
    for div, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "K")):
        if n >= div:
            return f"{n / div:.2f} {suffix}{unit}"
    return f"{n} {unit}".rstrip()


def one_line(g: Graph) -> str:
    params, macs = totals(g)
    return f"{g.name}: {len(g.nodes)} layers, {params:,} parameters, {human(macs, 'MACs')} ({macs:,})"


def render(g: Graph, fmt: str = "text", depth: int | None = None) -> str:
    data = summary_data(g, depth)
    if fmt == "json":
        return json.dumps(data, indent=1) + "\n"
    layers = data["layers"]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["path", "op", "shape", "params", "macs"])
        for r in layers:
            w.writerow([r["path"], r["op"], fmt_shape(r["shape"]), r["params"], r["macs"]])
        return buf.getvalue()
    from tabulate import tabulate

    table = [[r["path"], r["op"], fmt_shape(r["shape"]), f"{r['params']:,}", f"{r['macs']:,}"] for r in layers]
    table.append(["total", "", "", f"{data['params']:,}", f"{data['macs']:,}"])
    headers = ["layer", "op", "output", "params", "MACs"]
    style = "github" if fmt == "markdown" else "simple"
    body = tabulate(table, headers=headers, tablefmt=style, colalign=("left", "left", "left", "right", "right"))
    outs = ", ".join(f"{o['name']} {fmt_shape(o['shape'])}{' (train only)' if o['train_only'] else ''}"
                     for o in data["outputs"])
    ins = ", ".join(f"{i['path']} {fmt_shape(i['shape'])}" for i in data["inputs"])
    foot = f"{one_line(g)}\ninputs: {ins}\noutputs: {outs}"
    if fmt == "markdown":
        return f"## {g.name}\n\n{body}\n\n{foot}\n"
    return f"{body}\n\n{foot}\n"
