"""`cnnc render`: the command line of the Graphviz picture (cnnc/backends/render.py draws it)."""
from __future__ import annotations

import argparse
import os
import sys

from cnnc.backends.render import (DEFAULT_MAX_HEIGHT, FORMATS, choose_depth, estimate_extent, find_dot, plan,
                                  render_file, to_dot, write_dot)

from .common import graph_and_inputs, positive

NAME = "render"
HELP = "draw the network with Graphviz: DOT text, or an SVG/PNG/PDF picture"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dot", action="store_true",
                   help="print the DOT text on stdout (or write it to -o); needs no Graphviz")
    p.add_argument("--format", choices=FORMATS,
                   help="picture format (default: from the suffix of -o)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="file to write (required unless --dot); a regular file or a new one, never a symbolic link "
                        "(cnnc does not write through links) or an input")
    p.add_argument("--depth", type=positive, metavar="N",
                   help="draw block instances deeper than N levels as one node each (default: full detail, "
                        "or the deepest depth whose picture fits --max-height)")
    p.add_argument("--collapse-repeats", action=argparse.BooleanOptionalAction, default=None,
                   help="draw a run of identical consecutive block instances as one node marked xN "
                        "(default: on whenever a depth is in effect)")
    p.add_argument("--no-merge", dest="merge", action="store_false",
                   help="draw every op as its own node (default: bn, activations and other "
                        "shape-preserving ops join the op before them when it has no other user)")
    p.add_argument("--max-height", type=positive, default=DEFAULT_MAX_HEIGHT, metavar="PX",
                   help=f"size budget for the automatic depth: pixels at 96 dpi along the flow, the picture's "
                        f"height (its width with --rankdir LR); default {DEFAULT_MAX_HEIGHT}")
    p.add_argument("--rankdir", choices=["TB", "LR"], default="TB",
                   help="layout direction: top to bottom (default) or left to right")
    p.add_argument("--dpi", type=positive, metavar="N",
                   help="Graphviz's resolution: PNG pixels per inch (default 96); SVG and PDF scale by N/72")
    p.add_argument("--no-legend", dest="legend", action="store_false",
                   help="leave out the legend of fill colours and edge kinds")
    p.add_argument("--fused", action="store_true",
                   help="draw the inference graph after the fusion passes (conv+bn+add+activation as one node)")
    p.set_defaults(render_usage_error=p.error)


def _format_of(args) -> str:
    if args.dot:
        if args.format not in (None, "dot"):
            args.render_usage_error(f"--dot prints DOT text; it cannot be combined with --format {args.format}")
        return "dot"
    if args.format:
        if not args.output:
            args.render_usage_error(f"--format {args.format} needs -o OUT (or use --dot to print DOT text)")
        return args.format
    if not args.output:
        args.render_usage_error("give -o OUT (a .svg, .png, .pdf or .dot file), or --dot to print DOT text")
    suffix = os.path.splitext(args.output)[1].lstrip(".").lower()
    if suffix not in FORMATS:
        args.render_usage_error(f"cannot tell the format from '{args.output}'; add --format svg|png|pdf|dot")
    return suffix


def run(args) -> int:
    fmt = _format_of(args)
    if fmt != "dot":
        find_dot()  # fail before any work when Graphviz is missing
    g, inputs = graph_and_inputs(args, fused=args.fused)
    depth = args.depth
    if depth is None:
        depth, px = choose_depth(g, args.max_height, args.merge, args.collapse_repeats, args.rankdir, args.legend)
        if depth is not None:
            full = estimate_extent(plan(g, None, merge=args.merge), args.rankdir, args.legend)
            side = "tall" if args.rankdir == "TB" else "wide"
            print(f"cnnc render: {g.name} at full detail would be about {full:,} px {side}; drawing to depth "
                  f"{depth} (about {px:,} px); choose with --depth N", file=sys.stderr)
    text = to_dot(g, depth, args.collapse_repeats, args.merge, args.rankdir, legend=args.legend, dpi=args.dpi)
    if fmt == "dot" and not args.output:
        sys.stdout.write(text)
    elif fmt == "dot":
        write_dot(text, args.output, inputs)
    else:
        render_file(text, fmt, args.output, inputs)
    return 0
