"""What every command shares: the spec argument, `--set` overrides, running the front end, `--emit`."""
from __future__ import annotations

import argparse
import re
import sys

from cnnc.diagnostics import CnncError


def add_common(p: argparse.ArgumentParser, emit: bool = True) -> None:
    p.add_argument("file", help="a .cnn spec file, or the name of a catalog entry (`cnnc list`), e.g. resnet50")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                   help="override a network parameter (repeatable), e.g. --set classes=10")
    if emit:
        p.add_argument("--emit", choices=["ast", "ir", "fused"],
                       help="print one stage's dump instead (fused: the IR after the fusion passes)")


def positive(text):
    """argparse type: a positive integer."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return v


def parse_override(text: str):
    """Parse the value of `--set name=value`: int, float, true/false, none, or a string."""
    t = text.strip()
    if re.fullmatch(r"[+-]?\d+", t):
        return int(t)
    try:
        if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", t):
            return float(t)
    except ValueError:
        pass
    if t in ("true", "false"):
        return t == "true"
    if t == "none":
        return None
    return t


def overrides(sets) -> dict:
    out = {}
    for s in sets:
        name, eq, value = s.partition("=")
        if not eq or not name.strip().isidentifier():
            raise CnncError(f"--set expects NAME=VALUE, got '{s}'")
        out[name.strip()] = parse_override(value)
    return out


def front_end(args):
    """The front end on the command's spec and --set values; warnings go to stderr."""
    from cnnc.pipeline import front_end as fe

    result = fe(args.file, overrides(args.sets))
    for w in result.warnings:
        print(w, file=sys.stderr)
    return result


def graph(args, fused: bool = False):
    """The command's graph, after the fusion passes when `fused`."""
    g = front_end(args).graph
    if fused:
        from cnnc.pipeline import fuse

        g = fuse(g)
    return g


def emit(args) -> bool:
    """Handle --emit; True if it printed a dump."""
    if not getattr(args, "emit", None):
        return False
    if args.emit == "ast":
        from cnnc.frontend.ast import dump_ast
        from cnnc.pipeline import load

        for m in load(args.file).modules:
            sys.stdout.write(dump_ast(m))
        return True
    from cnnc.ir.graph import dump_ir

    sys.stdout.write(dump_ir(graph(args, fused=args.emit == "fused")))
    return True


def _columns(text):
    """argparse type of --columns: names from cnnc.backends.summary.COLUMNS, comma separated."""
    from cnnc.backends.summary import parse_columns

    try:
        return parse_columns(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def summary_columns(p: argparse.ArgumentParser) -> None:
    """`--columns` and `--dtype`, the options of the summary table."""
    from cnnc.backends.summary import COLUMNS, DEFAULT_DTYPE, DTYPES, TEXT_COLUMNS

    p.add_argument("--columns", type=_columns, metavar="A,B,...",
                   help=f"columns to show, comma separated, or all: {', '.join(COLUMNS)} "
                        f"(default: {','.join(TEXT_COLUMNS)}, and train_only when some layer runs only in training, for text and markdown, all for csv and json)")
    p.add_argument("--dtype", choices=list(DTYPES), default=DEFAULT_DTYPE,
                   help=f"element type for parameter and activation bytes (default {DEFAULT_DTYPE})")
