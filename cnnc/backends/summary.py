"""Per-layer table of a graph: what each layer is, what it holds, what it costs, what it sees.

`summary_data(graph, depth, dtype)` is the data of `cnnc summary --format json` (and of
`cnnc.summary`): network totals and one row per node, or with `depth` one row per block instance
at that depth (`layer1.block0`), rolled up by each column's rule in `COLUMNS`.
`format_summary(data, fmt, columns)` prints it as text, markdown, csv or json.

The columns (docs/summary.md describes each; the JSON row fields have these names):

  path, op            instance path; the op, or the block name of a rolled-up row
  in_shape, shape     first input's shape and the output shape, without the batch
  kernel, stride,     of convs and pools (the op's window, cnnc/ir/geometry.py); groups of convs
  dilation, groups
  params, trainable   learnable parameters (all are trainable: cnnc freezes nothing)
  buffers             non-learnable state elements (BatchNorm's running statistics and counter)
  macs                multiply-adds per sample
  activations         output elements per sample; activation_bytes at the chosen dtype
  receptive_field,    per axis [h, w], at the layer's output (cnnc/ir/geometry.py)
  jump
  train_only          the row runs only in training (it feeds only `train output`s)

No torch is imported here.
"""
from __future__ import annotations

import csv
import html
import io
import json
import math
from dataclasses import dataclass
from typing import Callable

from cnnc.ir.geometry import number, receptive_fields, window_of
from cnnc.ir.graph import Graph
from cnnc.ir.liveness import inference_nodes, peak_live
from cnnc.ir.values import fmt_shape

# Bytes per element of the module's dtype (`--dtype`).
DTYPES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
DEFAULT_DTYPE = "float32"

# Buffer elements per op, as torch registers them: BatchNorm keeps a running mean and variance per
# channel and a num_batches_tracked counter (a fused conv keeps its BatchNorm's). Ops not listed hold none.
BUFFERS: dict = {
    "batchnorm": lambda n, ins: 2 * ins[0][0] + 1,
    "fused:conv": lambda n, ins: 2 * n.attr("out") + 1 if n.attr("bn") else 0,
}


# ---- the columns -----------------------------------------------------------------


def _pair(v) -> str:
    """[3, 3] -> '3', [1, 7] -> '1x7'; fractional jumps to three digits."""
    a, b = (f"{x:.3g}" if isinstance(x, float) else str(x) for x in v)
    return a if a == b else f"{a}x{b}"


def _int(v) -> str:
    return f"{v:,}"


@dataclass(frozen=True)
class Column:
    header: str  # in text and markdown
    text: Callable  # value (never None) -> cell text
    rollup: str  # how a block row combines its layers: "sum", "last", "all", "first" or "op" (op rows only)
    total: bool = False  # summed in the text table's total row


def _kernel(v) -> str:
    return f"{v[0]}x{v[1]}"


COLUMNS: dict[str, Column] = {
    "path": Column("layer", str, "first"),
    "op": Column("op", str, "first"),
    "in_shape": Column("input", fmt_shape, "first"),
    "shape": Column("output", fmt_shape, "last"),
    "kernel": Column("kernel", _kernel, "op"),
    "stride": Column("stride", _pair, "op"),
    "dilation": Column("dilation", _pair, "op"),
    "groups": Column("groups", str, "op"),
    "params": Column("params", _int, "sum", total=True),
    "trainable": Column("trainable", _int, "sum", total=True),
    "buffers": Column("buffers", _int, "sum", total=True),
    "macs": Column("MACs", _int, "sum", total=True),
    "activations": Column("activations", _int, "sum", total=True),
    "activation_bytes": Column("act. bytes", _int, "sum", total=True),
    "receptive_field": Column("RF", _pair, "last"),
    "jump": Column("jump", _pair, "last"),
    "train_only": Column("train only", lambda v: "yes" if v else "", "all"),
}
# text and markdown show a readable subset unless --columns says otherwise; csv and json carry all
TEXT_COLUMNS = ("path", "op", "kernel", "stride", "groups", "shape", "params", "macs", "receptive_field")


def default_text_columns(data: dict) -> tuple:
    """TEXT_COLUMNS, and train_only when some row runs only in training."""
    marked = any(r.get("train_only") for r in data["layers"])
    return TEXT_COLUMNS + ("train_only",) * marked


def parse_columns(text: str) -> tuple:
    """`--columns a,b,c` (or `all`); a ValueError naming the valid columns for an unknown one."""
    names = tuple(c.strip() for c in text.split(",") if c.strip())
    if names == ("all",):
        return tuple(COLUMNS)
    unknown = [c for c in names if c not in COLUMNS]
    if unknown or not names:
        what = f"unknown column{'s' * (len(unknown) > 1)} {', '.join(unknown)}" if unknown else "no columns given"
        raise ValueError(f"{what}; choose from {', '.join(COLUMNS)} (or all)")
    return names


# ---- the data --------------------------------------------------------------------


def node_rows(g: Graph, dtype: str = DEFAULT_DTYPE) -> list[dict]:
    """One row per node with every column."""
    size = DTYPES[dtype]
    fields = receptive_fields(g)
    inference = inference_nodes(g)
    out = []
    for n in g.nodes:
        ins = g.in_shapes(n)
        w = window_of(n, ins)
        f = fields[n.id]
        params = g.params_of(n)
        buffers = BUFFERS.get(n.op)
        activations = math.prod(n.shape)
        out.append({
            "path": n.path,
            "op": n.op,
            "in_shape": list(ins[0]) if ins else None,
            "shape": list(n.shape),
            "kernel": list(w.kernel) if w else None,
            "stride": [number(s) for s in w.stride] if w else None,
            "dilation": list(w.dilation) if w else None,
            "groups": n.attr("groups") if w else None,
            "params": params,
            "trainable": params,
            "buffers": buffers(n, ins) if buffers else 0,
            "macs": g.macs_of(n),
            "activations": activations,
            "activation_bytes": activations * size,
            "receptive_field": [number(x) for x in f.size] if f else None,
            "jump": [number(x) for x in f.jump] if f and len(n.shape) == 3 else None,
            "train_only": n.id not in inference,
        })
    return out


def rows(g: Graph, depth: int | None = None, dtype: str = DEFAULT_DTYPE, per_node=None) -> list[dict]:
    """The table's rows: one per node, or rolled up to block instances at `depth`."""
    per_node = per_node or node_rows(g, dtype)
    if depth is None:
        return per_node
    scopes = g.scope_map()
    keys = []
    for n in g.nodes:
        parts = n.path.split(".")
        keys.append(n.path if len(parts) <= depth else ".".join(parts[:depth]))
    members: dict[str, set] = {}
    for n, key in zip(g.nodes, keys):
        members.setdefault(key, set()).add(n.id)
    out: list[dict] = []
    index: dict[str, dict] = {}
    for n, key, r in zip(g.nodes, keys, per_node):
        row = index.get(key)
        if row is None:
            row = index[key] = dict(r, path=key, layers=0)
            if key != n.path:
                s = scopes.get(key)
                row["op"] = s.name if s and s.kind == "block" else "group"
                row["in_shape"] = None
                for c, col in COLUMNS.items():
                    if col.rollup == "op":
                        row[c] = None
            out.append(row)
        else:
            for c, col in COLUMNS.items():
                if col.rollup == "sum":
                    row[c] += r[c]
                elif col.rollup == "last":
                    row[c] = r[c]
                elif col.rollup == "all":
                    row[c] = row[c] and r[c]
        if row["in_shape"] is None and key != n.path:
            outside = [i for i in n.inputs if i not in members[key]]
            if outside:
                row["in_shape"] = list(g.nodes[outside[0]].shape)
        row["layers"] += 1
    return out


def summary_data(g: Graph, depth: int | None = None, dtype: str = DEFAULT_DTYPE) -> dict:
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype '{dtype}'; choose from {', '.join(DTYPES)}")
    per_node = node_rows(g, dtype)
    inference = inference_nodes(g)
    size = DTYPES[dtype]
    params = sum(r["params"] for r in per_node)
    params_inference = sum(r["params"] for r in per_node if not r["train_only"])
    peak, at = peak_live(g, [r["activation_bytes"] for r in per_node], inference)
    return {
        "network": g.name,
        "parameters": dict(g.params),
        "inputs": [{"path": n.path, "shape": list(n.shape)} for n in g.nodes if n.op == "input"],
        "outputs": [{"name": o.name, "shape": list(g.nodes[o.node].shape), "train_only": o.train_only}
                    for o in g.outputs],
        "dtype": dtype,
        "nodes": len(g.nodes),
        "params": params,
        "params_inference": params_inference,
        "params_train_only": params - params_inference,
        "param_bytes": params * size,
        "trainable": sum(r["trainable"] for r in per_node),
        "buffers": sum(r["buffers"] for r in per_node),
        "macs": sum(r["macs"] for r in per_node),
        "macs_inference": sum(r["macs"] for r in per_node if not r["train_only"]),
        "activations": sum(r["activations"] for r in per_node),
        "activation_bytes": sum(r["activation_bytes"] for r in per_node),
        "peak_activation_bytes": peak,
        "peak_at": g.nodes[at].path if at is not None else None,
        "layers": rows(g, depth, dtype, per_node),
    }


def totals(g: Graph) -> tuple[int, int]:
    return sum(g.params_of(n) for n in g.nodes), sum(g.macs_of(n) for n in g.nodes)


# ---- formatting ------------------------------------------------------------------


def human(n: int, unit: str = "") -> str:
    for div, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "K")):
        if n >= div:
            return f"{n / div:.2f} {suffix}{unit}"
    return f"{n} {unit}".rstrip()


def _line(name: str, nodes: int, params: int, macs: int) -> str:
    return f"{name}: {nodes} layers, {params:,} parameters, {human(macs, 'MACs')} ({macs:,})"


def one_line(g: Graph) -> str:
    params, macs = totals(g)
    return _line(g.name, len(g.nodes), params, macs)


def select(data: dict, columns=None) -> list[dict]:
    """The rows with only the chosen columns (and `layers` of a rolled-up table)."""
    if columns is None:
        return data["layers"]
    keep = list(columns) + ["layers"]
    return [{c: r[c] for c in keep if c in r} for r in data["layers"]]


def footer(data: dict) -> list[str]:
    """The totals under the text and markdown tables."""
    lines = [_line(data["network"], data["nodes"], data["params"], data["macs"])]
    outs = ", ".join(f"{o['name']} {fmt_shape(o['shape'])}{' (train only)' if o['train_only'] else ''}"
                     for o in data["outputs"])
    ins = ", ".join(f"{i['path']} {fmt_shape(i['shape'])}" for i in data["inputs"])
    lines.append(f"inputs: {ins}")
    lines.append(f"outputs: {outs}")
    dtype = data["dtype"]
    lines.append(f"parameters: {data['params']:,} ({human(data['param_bytes'], 'B')} as {dtype}), "
                 f"buffers: {data['buffers']:,}")
    if data["params_train_only"] or data["macs"] != data["macs_inference"]:
        lines.append(f"inference: {data['params_inference']:,} parameters, {human(data['macs_inference'], 'MACs')}; "
                     f"training only: {data['params_train_only']:,} parameters")
    lines.append(f"activations per sample: {data['activations']:,} ({human(data['activation_bytes'], 'B')} "
                 f"as {dtype}); peak live at inference: {human(data['peak_activation_bytes'], 'B')}"
                 f" (at {data['peak_at']})")
    return lines


def _cells(data: dict, columns, fmt: str) -> tuple[list, list]:
    rows_ = data["layers"]
    table = [[("" if r.get(c) is None else COLUMNS[c].text(r[c])) for c in columns] for r in rows_]
    if any(COLUMNS[c].total for c in columns):
        table.append([COLUMNS[c].text(sum(r[c] for r in rows_)) if COLUMNS[c].total
                      else "total" if i == 0 else "" for i, c in enumerate(columns)])
    return [COLUMNS[c].header for c in columns], table


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


def format_summary(data: dict, fmt: str = "text", columns=None) -> str:
    if fmt == "json":
        return json.dumps({**data, "layers": select(data, columns)}, indent=1) + "\n"
    if fmt == "csv":
        columns = columns or tuple(COLUMNS)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns)
        for r in data["layers"]:
            w.writerow([_csv_value(r.get(c)) for c in columns])
        return buf.getvalue()
    columns = columns or default_text_columns(data)
    headers, table = _cells(data, columns, fmt)
    if fmt == "html":
        return _html(data, headers, table)
    from tabulate import tabulate

    align = tuple("right" if COLUMNS[c].text is _int else "left" for c in columns)
    if fmt == "markdown":
        table = [[_md_cell(t) for t in row] for row in table]
    body = tabulate(table, headers=headers, tablefmt="github" if fmt == "markdown" else "simple", colalign=align,
                    disable_numparse=True)
    foot = "\n".join(footer(data))
    if fmt == "markdown":
        return f"## {_md_cell(data['network'])}\n\n{body}\n\n" + "\n".join(
            _md_cell(line) + "  " for line in footer(data)).rstrip() + "\n"
    return f"{body}\n\n{foot}\n"


def _csv_value(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "x".join(str(x) for x in v)
    return v


def _html(data: dict, headers, table) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{e(t)}</td>" for t in row) + "</tr>" for row in table)
    foot = "<br>".join(e(line) for line in footer(data))
    return (f"<div><b>{e(data['network'])}</b><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"<p>{foot}</p></div>")


def render(g: Graph, fmt: str = "text", depth: int | None = None, columns=None, dtype: str = DEFAULT_DTYPE) -> str:
    return format_summary(summary_data(g, depth, dtype), fmt, columns)


class Summary(dict):
    """`cnnc.summary`'s result: the JSON data as a dict, shown as a table in a notebook."""

    def __init__(self, data: dict, columns=None):
        super().__init__(data)
        self.columns = columns

    def _shown(self):
        return self.columns or default_text_columns(self)

    def _repr_markdown_(self) -> str:
        return format_summary(self, "markdown", self._shown())

    def _repr_html_(self) -> str:
        return format_summary(self, "html", self._shown())
