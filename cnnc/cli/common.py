"""What every command shares: the spec argument, `--set` overrides, running the front end, `--emit`,
and where diagnostics go (`Reporter`: --color, and --format json for errors)."""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

from cnnc.diagnostics import COLOUR, PLAIN, CnncError


def colour_wanted(choice: str, stream) -> bool:
    """--color always|never|auto: auto is colour on a terminal, unless NO_COLOR is set to
    anything non-empty (no-color.org) or TERM is dumb; always and never override both."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def add_color(p: argparse.ArgumentParser) -> None:
    p.add_argument("--color", "--colour", dest="color", choices=["auto", "always", "never"], default="auto",
                   help="colour diagnostics: auto (default) on a terminal unless NO_COLOR is set")


class Reporter:
    """Where a command's diagnostics go. As text on stderr, in colour where `colour_wanted`;
    or, with `--format json` on check and summary, as one JSON list on stdout once the command
    ends (`finish`): check prints the list always (`[]` when all is well), summary only when
    there are errors (else its stdout is the summary, and warnings go to stderr as text)."""

    def __init__(self, color: str = "auto", as_json: bool = False, always: bool = False):
        self.style = COLOUR if colour_wanted(color, sys.stderr) else PLAIN
        self.as_json, self.always = as_json, always
        self.items: list = []  # (diagnostic, file) held for the JSON list
        self.failed = False

    @classmethod
    def of(cls, args) -> "Reporter":
        as_json = getattr(args, "errors_as_json", False) and getattr(args, "format", None) == "json"
        return cls(getattr(args, "color", "auto"), as_json, always=getattr(args, "command", None) == "check")

    def warning(self, w, file: str | None = None) -> None:
        if self.as_json:
            self.items.append((w, file))
        else:
            print(w.render(self.style) if hasattr(w, "render") else w, file=sys.stderr)

    def error(self, e: CnncError, file: str | None = None) -> None:
        self.failed = True
        if self.as_json:
            self.items.append((e, file))
        else:
            sys.stdout.flush()  # what earlier files printed first, where both streams go to one place
            print(e.render(self.style), file=sys.stderr)

    def finish(self) -> None:
        """The JSON list, where one is due; held warnings of a summary that succeeded as text."""
        if not self.as_json:
            return
        if not (self.failed or self.always):
            self.as_json = False
            for w, file in self.items:
                self.warning(w, file)
            return
        out = []
        for d, file in self.items:
            shown = "<stdin>" if file == "-" else file
            out += d.as_json(shown) if isinstance(d, CnncError) else [d.as_json(shown)]
        print(json.dumps(out, indent=2))


class SetAction(argparse.Action):
    """`--set NAME=VALUE`, collected into a dict; a malformed or repeated one is a usage error
    (exit status 2, like every other command-line mistake)."""

    def __call__(self, parser, namespace, text, option_string=None):
        sets = dict(getattr(namespace, self.dest, None) or {})
        name, eq, value = text.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier() or not name.isascii():
            parser.error(f"--set expects NAME=VALUE, got {text!r}")
        if name in sets:
            parser.error(f"--set {name} is given twice")
        try:
            sets[name] = parse_override(value)
        except ValueError as e:
            parser.error(f"--set {name}: {e}")
        setattr(namespace, self.dest, sets)


def add_common(p: argparse.ArgumentParser, emit: bool = True, several: bool = False) -> None:
    """The spec argument (`several`: one or more, as `files`), --set, --import-root, --emit."""
    what = ("a .cnn spec file, the name of a catalog entry (`cnnc list`), e.g. resnet50, "
            "or - to read the spec from standard input")
    if several:
        p.add_argument("files", nargs="+", metavar="FILE", help=what + " (one or more)")
    else:
        p.add_argument("file", help=what)
    p.add_argument("--set", dest="sets", action=SetAction, default={}, metavar="NAME=VALUE",
                   help="override a network parameter (repeatable, once per name), e.g. --set classes=10")
    p.add_argument("--import-root", dest="import_roots", action="append", default=[], metavar="DIR",
                   help="a directory the spec may also import from (repeatable); by default imports are "
                        "confined to the spec's own directory and below")
    if emit:
        p.add_argument("--emit", choices=["ast", "ir", "fused"],
                       help="print one stage's dump instead (fused: the IR after the fusion passes)")


def add_output(p: argparse.ArgumentParser, suffix: str, what: str, also: str = "") -> None:
    """`-o/--output OUT.<suffix>`, by default `build/<spec stem>.<suffix>` (`default_output`)."""
    p.add_argument("-o", "--output", metavar=f"OUT.{suffix}",
                   help=f"where to write the {what} (default: build/<spec stem>.{suffix}"
                        f"{', ' + also if also else ''}); a regular file or a new one, never a symbolic link "
                        "(cnnc does not write through links) or an input")


def default_output(args, suffix: str, name: str, variant: str = ""):
    """The command's output path: -o, or build/<spec stem><variant>.<suffix> (`variant`: "_fused"
    for build --fused, so that the two builds of one spec live side by side); a spec read from
    standard input is named after its network, `name`."""
    from pathlib import Path

    stem = name if args.file == "-" else Path(args.file).stem
    return args.output or Path("build") / (stem + variant + "." + suffix)


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
    """Parse the value of `--set name=value`: int, float, true/false, none, or a string. Numbers
    are ASCII digits only, as in the language; ValueError for a number too long to be one."""
    t = text.strip()
    if re.fullmatch(r"[+-]?[0-9]+", t):
        if len(t) > 100:
            raise ValueError(f"number of {len(t):,} digits is too long")
        return int(t)
    if re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", t):
        return float(t)
    if t in ("true", "false"):
        return t == "true"
    if t == "none":
        return None
    return t


def load(args):
    """The command's spec: `-` reads standard input, anything else is what pipeline.load takes
    (a path or a catalog name)."""
    roots = tuple(args.import_roots)
    if args.file == "-":
        from cnnc.frontend.loader import load_stdin

        return load_stdin(roots)
    from cnnc.pipeline import load as load_spec

    return load_spec(args.file, roots)


def front_end(args):
    """The front end on the command's spec, --set values and --import-root directories;
    warnings go to stderr."""
    from cnnc.pipeline import front_end as fe

    result = fe(load(args), dict(args.sets))
    for w in result.warnings:
        args.report.warning(w, args.file)
    return result


def graph(args, fused: bool = False):
    """The command's graph, after the fusion passes when `fused`."""
    return graph_and_inputs(args, fused)[0]


def graph_and_inputs(args, fused: bool = False):
    """The command's graph (after the fusion passes when `fused`) and the files it read (the
    spec and its imports), which no output of the command may overwrite."""
    result = front_end(args)
    g = result.graph
    if fused:
        from cnnc.pipeline import fuse

        g = fuse(g)
    return g, list(result.program.files)


def emit(args) -> bool:
    """Handle --emit; True if it printed a dump."""
    if not getattr(args, "emit", None):
        return False
    if args.emit == "ast":
        from cnnc.frontend.ast import dump_ast

        for m in load(args).modules:
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
