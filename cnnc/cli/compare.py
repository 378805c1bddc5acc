"""`cnnc compare SPEC... | --library [--format F] [--chart OUT.svg|png|pdf]`: networks side by side.

The table goes to stdout; `--chart` also draws MACs against parameters with matplotlib (an
optional extra). Every spec is read before anything is written, so a spec error leaves no chart.
cnnc/backends/compare.py defines the columns.
"""
from __future__ import annotations

import argparse
import sys

from cnnc.backends.compare import CHART_FORMATS, chart, chart_format, compare_row, format_table, require_matplotlib

NAME = "compare"
HELP = "compare networks: params, MACs, depth, activation memory, receptive field, published accuracy"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="*", metavar="SPEC", help=".cnn spec files or catalog names")
    p.add_argument("--library", action="store_true", help="every entry of the spec library's catalog (cnnc list)")
    p.add_argument("--format", choices=["text", "markdown", "csv", "json"], default="text")
    p.add_argument("--chart", metavar="OUT",
                   help=f"also draw MACs against parameters ({', '.join('.' + f for f in CHART_FORMATS)}); "
                        "needs matplotlib")
    p.set_defaults(compare_usage_error=p.error)


def run(args) -> int:
    from cnnc.pipeline import front_end

    if args.chart:
        if chart_format(args.chart) is None:
            args.compare_usage_error(f"cannot tell the chart format from '{args.chart}'; "
                                     f"use a .{', .'.join(CHART_FORMATS)} file")
        require_matplotlib()  # fail before any work when it is missing
    specs = list(args.files)
    if args.library:
        from cnnc.frontend.catalog import declared_names

        specs += sorted(declared_names())
    if not specs:
        args.compare_usage_error("give SPEC files or catalog names, or --library")
    rows = []
    for spec in specs:
        result = front_end(spec)
        for w in result.warnings:
            print(w, file=sys.stderr)
        preset = getattr(result.program, "preset", None)
        rows.append(compare_row(result.graph, spec, preset.name if preset else None,
                                preset.reference if preset else None))
    if args.chart:
        chart(rows, args.chart)
    sys.stdout.write(format_table(rows, args.format))
    return 0
