"""The `cnnc` command line. check and summary import no torch and start fast.

Exit status: 0 success, 1 a mistake in the spec or its inputs (reported as
`file:line:col: error: ...`), 2 command-line misuse.
"""
from __future__ import annotations

import argparse
import os
import sys

from .diagnostics import CnncError


def _add_common(p: argparse.ArgumentParser, emit: bool = True) -> None:
    p.add_argument("file", help="a .cnn spec file")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                   help="override a network parameter (repeatable), e.g. --set classes=10")
    if emit:
        p.add_argument("--emit", choices=["ast", "ir", "fused"],
                       help="print one stage's dump instead (fused: the IR after the fusion passes)")


def _overrides(sets) -> dict:
    from .irgen import parse_override

    out = {}
    for s in sets:
        name, eq, value = s.partition("=")
        if not eq or not name.strip().isidentifier():
            raise CnncError(f"--set expects NAME=VALUE, got '{s}'")
        out[name.strip()] = parse_override(value)
    return out


def front_end(args):
    from .pipeline import front_end as fe

    result = fe(args.file, _overrides(args.sets))
    for w in result.warnings:
        print(w, file=sys.stderr)
    return result


def emit(args) -> bool:
    """Handle --emit; True if it printed a dump."""
    if not getattr(args, "emit", None):
        return False
    if args.emit == "ast":
        from .ast import dump_ast
        from .pipeline import load

        for m in load(args.file).modules:
            sys.stdout.write(dump_ast(m))
        return True
    from .ir import dump_ir

    graph = front_end(args).graph
    if args.emit == "fused":
        from .pipeline import fuse

        graph = fuse(graph)
    sys.stdout.write(dump_ir(graph))
    return True


def cmd_check(args) -> int:
    if emit(args):
        return 0
    from .report import one_line

    print(one_line(front_end(args).graph))
    return 0


def cmd_summary(args) -> int:
    if emit(args):
        return 0
    from .report import render

    sys.stdout.write(render(front_end(args).graph, args.format, args.depth))
    return 0


def _positive(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return v


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="cnnc", description="cnnc: a compiler from CNN architecture specs "
                                 "to PyTorch modules")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("check", help="parse, expand and infer shapes; print a one-line total")
    _add_common(p)
    p.set_defaults(run=cmd_check)
    p = sub.add_parser("summary", help="a table of every layer: path, op, shape, parameters, MACs")
    _add_common(p)
    p.add_argument("--depth", type=_positive, help="roll rows up to block instances N levels deep")
    p.add_argument("--format", choices=["text", "markdown", "csv", "json"], default="text")
    p.set_defaults(run=cmd_summary)
    for name, module in (("build", "cnnc.build"), ("render", "cnnc.render")):
        try:
            mod = __import__(module, fromlist=["add_arguments"])
        except ImportError:
            continue
        p = sub.add_parser(name, help=mod.HELP)
        _add_common(p, emit=False)
        mod.add_arguments(p)
        p.set_defaults(run=mod.run)
    return ap


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        return args.run(args)
    except CnncError as e:
        print(e.render(), file=sys.stderr)
        return 1
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    except KeyboardInterrupt:
        print("cnnc: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a compiler bug: say so in one line, keep the traceback for developers
        if os.environ.get("CNNC_DEBUG"):
            raise
        print(f"cnnc: internal error: {type(e).__name__}: {e} (set CNNC_DEBUG=1 for a traceback; "
              "please report it)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
