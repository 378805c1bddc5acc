"""The `cnnc` command line: one subcommand per module of this package. check, summary and list
import no torch and start fast.

Exit status: 0 success, 1 a mistake in the spec or its inputs (reported as
`file:line:col: error: ...`), 2 command-line misuse.
"""
from __future__ import annotations

import argparse
import os
import sys

from cnnc.diagnostics import CnncError

from . import build, catalog, compare, render
from .common import add_common, emit, front_end, positive, summary_columns


def cmd_check(args) -> int:
    if emit(args):
        return 0
    from cnnc.backends.summary import one_line

    print(one_line(front_end(args).graph))
    return 0


def cmd_summary(args) -> int:
    if emit(args):
        return 0
    from cnnc.backends.summary import render as render_summary

    sys.stdout.write(render_summary(front_end(args).graph, args.format, args.depth, args.columns, args.dtype))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="cnnc", description="cnnc: a compiler from CNN architecture specs "
                                 "to PyTorch modules")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("check", help="parse, expand and infer shapes; print a one-line total")
    add_common(p)
    p.set_defaults(run=cmd_check)
    p = sub.add_parser("summary", help="a table of every layer: path, op, shape, parameters, MACs")
    add_common(p)
    p.add_argument("--depth", type=positive, help="roll rows up to block instances N levels deep")
    p.add_argument("--format", choices=["text", "markdown", "csv", "json"], default="text")
    summary_columns(p)
    p.set_defaults(run=cmd_summary)
    for command in (build, render):
        p = sub.add_parser(command.NAME, help=command.HELP)
        add_common(p, emit=False)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    for command in (compare, catalog):  # no spec argument of their own: no add_common
        p = sub.add_parser(command.NAME, help=command.HELP)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
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
