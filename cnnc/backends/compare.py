"""`cnnc compare`: networks side by side, as a table and as the complexity chart lectures show.

One row per network (`compare_row`), every figure at inference (the nodes the non-`train output`s
need: GoogLeNet's auxiliary heads left out) and per sample:

  params                  learnable parameters
  macs                    multiply-adds (the README's counting convention)
  depth                   the most conv and linear layers (ops that do multiply-adds) on any path
                          from an input to an output: VGG-16 16, ResNet-50 50, GoogLeNet 22,
                          DenseNet-121 121, the numbers in the networks' names
  activation_bytes        every inference node's output, at float32
  peak_activation_bytes   the most of them alive at once (cnnc/ir/liveness.py)
  receptive_field         at the last feature map (the last map larger than 1x1 before the head),
                          [h, w], cnnc/ir/geometry.py
  acc1, acc5, weights     torchvision's published ImageNet-1K accuracy for the catalog entry's
                          reference model, or for a spec file the model named like its network
                          (reference_metrics.py, generated offline): its IMAGENET1K_V1 weights (the
                          original training recipe) where they exist, else its default

`chart(rows, path)` draws MACs against parameters (log-log), accuracy as colour, with matplotlib,
an optional extra (`pip install 'cnnc[plot]'`). No torch is imported here.
"""
from __future__ import annotations

import csv
import io
import json
import os

from cnnc.diagnostics import CnncError
from cnnc.ir.graph import Graph
from cnnc.ir.liveness import peak_live
from cnnc.outfile import atomic_output, prepare_output

from .summary import human, node_rows

CHART_FORMATS = ("svg", "png", "pdf")
PLOT_INSTALL = "pip install 'cnnc[plot]' (or: pip install matplotlib)"
COLUMNS = ("network", "params", "macs", "depth", "activation_bytes", "peak_activation_bytes", "receptive_field",
           "acc1", "acc5")


def published(name: str):
    """(weights name, metrics) of the torchvision model called `name`, or (None, None)."""
    from .reference_metrics import METRICS

    entry = METRICS.get(name)
    if entry is None:
        return None, None
    weights = "IMAGENET1K_V1" if "IMAGENET1K_V1" in entry["weights"] else entry["default"]
    return weights, entry["weights"][weights]


def weighted_depth(g: Graph, nodes) -> int:
    """The most multiply-add ops (conv, linear) on any path through `nodes`."""
    depth = [0] * len(g.nodes)
    for n in g.nodes:
        if n.id in nodes:
            depth[n.id] = max((depth[i] for i in n.inputs), default=0) + (1 if g.macs_of(n) else 0)
    return max((depth[i] for i in nodes), default=0)


def last_feature_map(g: Graph, nodes):
    """The last node in `nodes` whose output is a map larger than 1x1, or None."""
    maps = [n for n in g.nodes if n.id in nodes and len(n.shape) == 3 and n.shape[1] * n.shape[2] > 1]
    return maps[-1] if maps else None


def compare_row(g: Graph, file: str = "", name: str | None = None, reference: str | None = None) -> dict:
    """One network's row. `name` and `reference` come from the catalog for a catalog entry
    ("torchvision:resnet34"); a spec file is named after its network, and its accuracy is
    torchvision's for the model of that name, if any."""
    layers = node_rows(g, "float32")
    nodes = {n.id for n, r in zip(g.nodes, layers) if not r["train_only"]}
    at_inference = [r for r in layers if not r["train_only"]]
    peak, _ = peak_live(g, [r["activation_bytes"] for r in layers], nodes)
    last = last_feature_map(g, nodes)
    if reference is None:
        weights, ref = published(g.name)
        reference = f"torchvision:{g.name}" if ref else None
    else:
        library, _, model = reference.partition(":")
        weights, ref = published(model) if library == "torchvision" else (None, None)
    return {
        "network": name or g.name,
        "file": file,
        "params": sum(r["params"] for r in at_inference),
        "macs": sum(r["macs"] for r in at_inference),
        "depth": weighted_depth(g, nodes),
        "activation_bytes": sum(r["activation_bytes"] for r in at_inference),
        "peak_activation_bytes": peak,
        "last_feature_map": last.path if last is not None else None,
        "receptive_field": layers[last.id]["receptive_field"] if last is not None else None,
        "reference": reference,
        "weights": weights,
        "acc1": ref["acc@1"] if ref else None,
        "acc5": ref["acc@5"] if ref else None,
    }


def _rf(v) -> str:
    if v is None:
        return ""
    return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"


def format_table(rows: list, fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps(rows, indent=1) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        fields = list(rows[0]) if rows else list(COLUMNS)
        w.writerow(fields)
        for r in rows:
            w.writerow(["" if r[k] is None else _rf(r[k]) if k == "receptive_field" else r[k] for k in fields])
        return buf.getvalue()
    from tabulate import tabulate

    headers = ["network", "params", "MACs", "depth", "activations", "peak", "RF", "top-1", "top-5"]
    table = [[r["network"], human(r["params"]), human(r["macs"]), r["depth"], human(r["activation_bytes"], "B"),
              human(r["peak_activation_bytes"], "B"), _rf(r["receptive_field"]),
              "" if r["acc1"] is None else f"{r['acc1']:.2f}", "" if r["acc5"] is None else f"{r['acc5']:.2f}"]
             for r in rows]
    style = "github" if fmt == "markdown" else "simple"
    body = tabulate(table, headers=headers, tablefmt=style, disable_numparse=True,
                    colalign=("left",) + ("right",) * (len(headers) - 1))
    note = ("per sample at inference; activations at float32; depth: conv and linear layers on the longest path; "
            "RF: receptive field at the last feature map; top-1/top-5: torchvision's ImageNet-1K weights")
    return f"{body}\n\n{note}\n"


def chart_format(path: str) -> str | None:
    suffix = os.path.splitext(path)[1].lstrip(".").lower()
    return suffix if suffix in CHART_FORMATS else None


def require_matplotlib():
    """Import matplotlib for a chart, or say how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise CnncError(f"a chart needs matplotlib, which is not installed: {PLOT_INSTALL}") from None
    matplotlib.use("Agg")
    return matplotlib


def chart(rows: list, path: str) -> None:
    """MACs against parameters, log-log, one labelled point per network; top-1 accuracy as the
    colour (grey rings where unknown) and the marker's area growing with depth. Written atomically."""
    require_matplotlib()
    import matplotlib.pyplot as plt

    fmt = chart_format(path)
    out = prepare_output(path, f"compare.{fmt}")
    fig, ax = plt.subplots(figsize=(11, 7.5), dpi=100)
    try:
        known = [r for r in rows if r["acc1"] is not None]
        unknown = [r for r in rows if r["acc1"] is None]
        area = lambda rs: [20 + 1.5 * r["depth"] for r in rs]  # noqa: E731
        if known:
            points = ax.scatter([r["params"] for r in known], [r["macs"] for r in known], s=area(known),
                                c=[r["acc1"] for r in known], cmap="viridis", edgecolors="black", linewidths=0.5,
                                zorder=3)
            fig.colorbar(points, ax=ax, label="ImageNet-1K top-1 (%), torchvision")
        if unknown:
            ax.scatter([r["params"] for r in unknown], [r["macs"] for r in unknown], s=area(unknown),
                       facecolors="none", edgecolors="grey", linewidths=1.0, zorder=3, label="accuracy unknown")
            ax.legend(loc="lower right", fontsize=8)
        for r in rows:
            ax.annotate(r["network"], (r["params"], r["macs"]), textcoords="offset points", xytext=(5, 4), fontsize=7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("parameters (inference)")
        ax.set_ylabel("multiply-adds per sample (inference)")
        ax.set_title("Complexity: MACs against parameters (marker area: depth)")
        ax.grid(True, which="major", alpha=0.3)
        fig.tight_layout()
        with atomic_output(out) as tmp:
            fig.savefig(tmp, format=fmt)
    finally:
        plt.close(fig)
