"""Source locations and the one user-facing error type.

Every stage reports a mistake in a spec by raising `CnncError` at a `Loc`;
the driver formats it as ``file:line:col: error: message`` followed by the
source line, a caret under the column, and notes. One CnncError can carry the further errors
found in the same run (`also`; the interpreter collects them, cnnc/ir/irgen/recovery.py).
A diagnostic renders as plain text, as text in colour (`COLOUR`, for a terminal) or as JSON
(`as_json`); every part that comes from a spec or the command line is escaped by `printable`
first, in all three.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Loc:
    """A position in a spec file (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


UNKNOWN = Loc("<unknown>", 0, 0)

# The one definition of a line break, for lexing, columns and quoting alike: LF, CRLF or CR.
# Other separators (form feed, U+0085, U+2028, U+2029) are ordinary characters; Python's
# str.splitlines would split on them and quote the wrong line.
LINE_BREAK = re.compile(r"\r\n|\r|\n")


def normalize_newlines(text: str) -> str:
    """CRLF and CR as LF, so that the lexer's line numbers are the lines quoted."""
    return LINE_BREAK.sub("\n", text) if "\r" in text else text


def split_lines(text: str) -> list[str]:
    return LINE_BREAK.split(text)


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of the character at `offset`, by LINE_BREAK."""
    before = text[:offset]
    breaks = list(LINE_BREAK.finditer(before))
    start = breaks[-1].end() if breaks else 0
    return len(breaks) + 1, offset - start + 1


# Text of every file the front end has read, so diagnostics can quote lines. A file that is not
# spec text (not UTF-8, control characters) is never registered, so it is never quoted.
_SOURCES: dict[str, str] = {}


def register_source(name: str, text: str) -> None:
    _SOURCES[name] = text


def forget_source(name: str) -> None:
    """Quote nothing of `name` (read again and found not to be spec text)."""
    _SOURCES.pop(name, None)


def source_line(loc: Loc) -> str | None:
    text = _SOURCES.get(loc.file)
    if text is None or loc.line < 1:
        return None
    lines = split_lines(text)
    return lines[loc.line - 1] if loc.line <= len(lines) else None


# Characters never printed raw to a terminal: controls (escape sequences), format characters
# (bidirectional overrides) and line or paragraph separators.
_UNPRINTABLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def printable(text: str) -> str:
    """`text` with every unprintable character as a \\x.., \\u.. escape (messages quote
    names, strings and file names that come from a spec or the command line)."""
    if text.isprintable():
        return text
    return "".join(ch if unicodedata.category(ch) not in _UNPRINTABLE else ascii(ch)[1:-1] for ch in text)


@dataclass
class Note:
    message: str
    loc: Loc | None = None


@dataclass(frozen=True)
class Style:
    """The ANSI escapes around each part of a diagnostic; PLAIN has none."""

    loc: str = ""  # file:line:col
    error: str = ""
    warning: str = ""
    note: str = ""
    caret: str = ""
    reset: str = ""

    def paint(self, part: str, text: str) -> str:
        code = getattr(self, part)
        return f"{code}{text}{self.reset}" if code else text


PLAIN = Style()
COLOUR = Style(loc="\033[1m", error="\033[1;31m", warning="\033[1;35m", note="\033[1;36m",
               caret="\033[1;32m", reset="\033[0m")
MAX_ERRORS = 20  # errors reported from one spec; past that the run stops


@dataclass
class CnncError(Exception):
    """A mistake in a spec or in how cnnc was called, at a location; `also`: further errors
    found in the same run, each independent of this one; `stopped`: the run stopped at
    MAX_ERRORS with more to find."""

    message: str
    loc: Loc | None = None
    notes: list[Note] = field(default_factory=list)
    also: list["CnncError"] = field(default_factory=list)
    stopped: bool = False

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def note(self, message: str, loc: Loc | None = None) -> "CnncError":
        self.notes.append(Note(message, loc))
        return self

    def errors(self) -> list["CnncError"]:
        """This error and those found with it, in the order found."""
        return [self, *self.also]

    def render(self, style: Style = PLAIN) -> str:
        out = [format_diagnostic("error", e.message, e.loc, e.notes, style) for e in self.errors()]
        if self.stopped:
            out.append(format_diagnostic("note", f"stopped after {MAX_ERRORS} errors", None, (), style))
        return "\n".join(out)

    def as_json(self, file: str | None = None) -> list[dict]:
        """Each error as a JSON object (`as_json` below); `file` for those without a location."""
        out = [as_json("error", e.message, e.loc, e.notes, file) for e in self.errors()]
        if self.stopped:
            out.append(as_json("note", f"stopped after {MAX_ERRORS} errors", None, (), file))
        return out

    def __str__(self) -> str:  # pragma: no cover - used by pytest output only
        return self.render()


QUOTE_WIDTH = 160  # characters of a long source line quoted around the column


def _quote(loc: Loc) -> list[str]:
    line = source_line(loc)
    if line is None:
        return []
    line = line.replace("\t", " ")
    col = max(loc.col - 1, 0)
    if len(line) > QUOTE_WIDTH:  # a window around the column
        start = max(0, min(col - QUOTE_WIDTH // 2, len(line) - QUOTE_WIDTH))
        head, tail = ("..." if start else ""), ("..." if start + QUOTE_WIDTH < len(line) else "")
        line, col = head + line[start:start + QUOTE_WIDTH] + tail, col - start + len(head)
    shown, before = printable(line), len(printable(line[:col]))  # escapes widen what precedes the caret
    gutter = f"{loc.line:>5} | "
    return [gutter + shown, " " * (len("      | ") - 2) + "| " + " " * before]  # (the caret goes after)


def format_diagnostic(kind: str, message: str, loc: Loc | None, notes=(), style: Style = PLAIN) -> str:
    """`file:line:col: kind: message`, the quoted line and a caret, then the notes; `kind` is
    error, warning or note. Everything from the spec is escaped before any colour is added."""
    where = printable(str(loc)) + ":" if loc else "cnnc:"
    out = [f"{style.paint('loc', where)} {style.paint(kind, kind + ':')} {printable(message)}"]
    if loc:
        quoted = _quote(loc)
        if quoted:
            out += [quoted[0], quoted[1] + style.paint("caret", "^")]
    for n in notes:
        head = style.paint("note", "note:")
        out.append(f"{style.paint('loc', printable(str(n.loc)) + ':')} {head} {printable(n.message)}" if n.loc
                   else f"{head} {printable(n.message)}")
    return "\n".join(out)


def as_json(severity: str, message: str, loc: Loc | None, notes=(), file: str | None = None) -> dict:
    """{file, line, col, severity, message, notes: [{file, line, col, message}]}, the text
    escaped as in the text form; no location: `file` (the spec the command read), line and col
    null."""
    def where(at: Loc | None, default):
        return ((printable(at.file), at.line, at.col) if at is not None
                else (printable(default) if default is not None else None, None, None))

    f, line, col = where(loc, file)
    return {"file": f, "line": line, "col": col, "severity": severity, "message": printable(message),
            "notes": [dict(zip(("file", "line", "col"), where(n.loc, None)), message=printable(n.message))
                      for n in notes]}


class Diagnostic(str):
    """A warning as its plain text (so it prints, compares and `warnings.warn`s as a string),
    which keeps its parts to render again in colour or as JSON."""

    severity: str
    message: str
    loc: Loc | None
    notes: tuple

    def __new__(cls, severity: str, message: str, loc: Loc | None, notes=()):
        self = super().__new__(cls, format_diagnostic(severity, message, loc, notes))
        self.severity, self.message, self.loc, self.notes = severity, message, loc, tuple(notes)
        return self

    def render(self, style: Style = PLAIN) -> str:
        return format_diagnostic(self.severity, self.message, self.loc, self.notes, style)

    def as_json(self, file: str | None = None) -> dict:
        return as_json(self.severity, self.message, self.loc, self.notes, file)


def warn(message: str, loc: Loc | None, warnings: list[str]) -> None:
    warnings.append(Diagnostic("warning", message, loc))


def suggest(name: str, candidates) -> str:
    """'; did you mean 'x'?' for a near miss, else ''.

    A near miss is a typo: at most one edit (insertion, deletion, substitution or swap of two
    neighbours) per three characters of the longer name, and at least one character kept in
    place; or the same name in other case (`ReLU`); or an abbreviation of at least three
    characters (`eps` for `epsilon`). Names that merely share letters (`upsample` and `scale`)
    are not proposed."""
    best = None
    for cand in sorted(set(candidates)):
        if cand == name:
            continue
        d = 0 if cand.lower() == name.lower() else _edits(name, cand)
        longer = max(len(name), len(cand))
        short, long_ = sorted((name, cand), key=len)
        if d <= max(1, longer // 3) and d < longer:
            rank = (0, d)  # a typo
        elif len(short) >= 3 and long_.startswith(short):
            rank = (1, len(long_) - len(short))  # an abbreviation
        else:
            continue
        if best is None or rank < best[0]:
            best = (rank, cand)
    return f"; did you mean '{best[1]}'?" if best else ""


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps of
    adjacent characters, each one edit."""
    if abs(len(a) - len(b)) > 3:
        return 99
    prev2, prev = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]
