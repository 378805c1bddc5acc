"""Source locations and the one user-facing error type.

Every stage reports a mistake in a spec by raising `CnncError` at a `Loc`;
the driver formats it as ``file:line:col: error: message`` followed by the
source line, a caret under the column, and notes.
"""
from __future__ import annotations

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

# Text of every file the front end has read, so diagnostics can quote lines.
_SOURCES: dict[str, str] = {}


def register_source(name: str, text: str) -> None:
    _SOURCES[name] = text


def source_line(loc: Loc) -> str | None:
    text = _SOURCES.get(loc.file)
    if text is None or loc.line < 1:
        return None
    lines = text.splitlines()
    return lines[loc.line - 1] if loc.line <= len(lines) else None


@dataclass
class Note:
    message: str
    loc: Loc | None = None


@dataclass
class CnncError(Exception):
    """A mistake in a spec or in how cnnc was called, at a location."""

    message: str
    loc: Loc | None = None
    notes: list[Note] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def note(self, message: str, loc: Loc | None = None) -> "CnncError":
        self.notes.append(Note(message, loc))
        return self

    def render(self) -> str:
        return format_diagnostic("error", self.message, self.loc, self.notes)

    def __str__(self) -> str:  # pragma: no cover - used by pytest output only
        return self.render()


def _quote(loc: Loc) -> list[str]:
    line = source_line(loc)
    if line is None:
        return []
    line = line.replace("\t", " ")
    gutter = f"{loc.line:>5} | "
    caret = " " * (len("      | ") - 2) + "| " + " " * max(loc.col - 1, 0) + "^"
    return [gutter + line, caret]


def format_diagnostic(kind: str, message: str, loc: Loc | None, notes=()) -> str:
    head = f"{loc}: {kind}: {message}" if loc else f"cnnc: {kind}: {message}"
    out = [head]
    if loc:
        out += _quote(loc)
    for n in notes:
        out.append(f"{n.loc}: note: {n.message}" if n.loc else f"note: {n.message}")
    return "\n".join(out)


def warn(message: str, loc: Loc | None, warnings: list[str]) -> None:
    warnings.append(format_diagnostic("warning", message, loc))


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
