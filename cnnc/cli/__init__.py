"""The `cnnc` command line: one subcommand per module of this package. check, summary and list
import no torch and start fast.

Exit status: 0 success, 1 a mistake in the spec or its inputs (reported as
`file:line:col: error: ...`, or `cnnc: error: ...` for the command line and the environment:
an unreadable file, a full disk), 2 command-line misuse, 130 interrupted (SIGINT), 143
terminated (SIGTERM or SIGHUP). An interrupted command removes its temporary files and any
child process (Graphviz's `dot`) before it exits, and prints one line, not a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys

from cnnc.diagnostics import CnncError, printable
from cnnc.version import __version__

from . import build, catalog, compare, export, render
from .common import Reporter, add_color, add_common, emit, front_end, positive, summary_columns


def cmd_check(args) -> int:
    """Each FILE in turn: its one-line total (or its --emit dump), or its errors; 1 if any failed."""
    if args.files.count("-") > 1:
        args.check_usage_error("standard input (-) can be read once")
    if args.report.as_json and args.emit:
        args.check_usage_error("--emit prints a dump, not JSON: leave out one of --emit and --format json")
    failed = False
    for file in args.files:
        one = argparse.Namespace(**vars(args), file=file)
        try:
            if args.report.as_json:
                front_end(one)
            elif not emit(one):
                from cnnc.backends.summary import one_line

                print(one_line(front_end(one).graph))
        except CnncError as e:
            args.report.error(e, file)
            failed = True
    return 1 if failed else 0


def cmd_summary(args) -> int:
    if emit(args):
        return 0
    from cnnc.backends.summary import render as render_summary

    sys.stdout.write(render_summary(front_end(args).graph, args.format, args.depth, args.columns, args.dtype))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="cnnc", description="cnnc: a compiler from CNN architecture specs "
                                 "to PyTorch modules")
    ap.add_argument("--version", action="version", version=f"cnnc {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("check", help="parse, expand and infer shapes; print a one-line total per FILE")
    add_common(p, several=True)
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="json: print the errors and warnings of every FILE as one JSON list on stdout, "
                        "instead of the totals (and text errors on stderr)")
    p.set_defaults(run=cmd_check, check_usage_error=p.error, errors_as_json=True)
    p = sub.add_parser("summary", help="a table of every layer: path, op, shape, parameters, MACs")
    add_common(p)
    p.add_argument("--depth", type=positive, help="roll rows up to block instances N levels deep")
    p.add_argument("--format", choices=["text", "markdown", "csv", "json"], default="text",
                   help="json: the summary as JSON on stdout, or the errors as a JSON list there")
    summary_columns(p)
    p.set_defaults(run=cmd_summary, errors_as_json=True)
    for command in (build, export, render):
        p = sub.add_parser(command.NAME, help=command.HELP)
        add_common(p, emit=False)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    for command in (compare, catalog):  # no spec argument of their own: no add_common
        p = sub.add_parser(command.NAME, help=command.HELP)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    for p in sub.choices.values():
        add_color(p)
    return ap


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised where the program is, so that cleanups (`finally`) run."""


def _terminate(signum, frame):
    raise Terminated(signum)


@contextlib.contextmanager
def _signals():
    """SIGTERM and SIGHUP raise Terminated while the command runs (SIGINT raises
    KeyboardInterrupt as usual); the previous handlers come back afterwards."""
    saved = {}
    with contextlib.suppress(ValueError):  # not the main thread: leave the handlers alone
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
                saved[sig] = signal.signal(sig, _terminate)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _silence_stdout() -> None:
    """After stdout failed (a closed pipe, a full disk): send what is still buffered, and the
    flush at exit, to /dev/null instead of failing again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)


# errors of a write to a stream (files cnnc writes itself fail as CnncErrors naming the file)
_WRITE_ERRORS = {errno.ENOSPC, errno.EIO, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _stdout_failed() -> bool:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        return True
    return False


def main(argv=None) -> int:
    from cnnc.outfile import remove_own_temporaries

    report = Reporter()
    with _signals():
        try:
            try:
                ap = build_parser()
                args = ap.parse_args(argv)
                args.report = report = Reporter.of(args)
                try:
                    status = args.run(args)
                except CnncError as e:
                    report.error(e, getattr(args, "file", None))
                    status = 1
                report.finish()
                sys.stdout.flush()  # a full disk or closed pipe shows here, as an error of this command
                return status
            finally:
                remove_own_temporaries()  # any a signal caught between creating and using them
        except CnncError as e:  # (one from outside a command)
            report.error(e)
            return 1
        except BrokenPipeError:
            _silence_stdout()
            return 1
        except KeyboardInterrupt:
            _say("cnnc: interrupted")
            return 130
        except Terminated:
            _say("cnnc: terminated")
            return 143
        except OSError as e:
            if _stdout_failed() or (e.filename is None and e.errno in _WRITE_ERRORS):
                _silence_stdout()
                _say(f"cnnc: error: cannot write to standard output: {e.strerror or e}")
            else:
                _say(f"cnnc: error: {e.strerror or e}" + (f": '{e.filename}'" if e.filename else ""))
            return 1
        except Exception as e:  # a compiler bug: say so in one line, keep the traceback for developers
            if os.environ.get("CNNC_DEBUG"):
                raise
            _say(f"cnnc: internal error: {type(e).__name__}: {e} (set CNNC_DEBUG=1 for a traceback; "
                 "please report it)")
            return 3


def _say(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(printable(line), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
