"""The spec library's catalog: every `preset` declared in the library's spec files.

An entry is a preset (docs/spec-library.md): a name, the family file that declares it
(`specs/resnet.cnn`), the network parameters it sets, and the reference it reproduces
(`torchvision:resnet50`). `cnnc list` prints the catalog; `cnnc check resnet50` and
`cnnc.compile("resnet50")` build an entry by name, from any directory.

The catalog is the library's top-level `.cnn` files (not `blocks/`, which hold no network),
read afresh each time: nothing is cached on disk. Finding one name reads each file's
`preset NAME` lines (a declaration starts a line: the language has no multi-line strings or
comments) and parses only the file that declares it; `entries()` loads every file, which also
checks every preset against its network (loader.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cnnc.diagnostics import CnncError, suggest

from . import ast
from .loader import Program, display_path, library_root, load_file, preset_values

_DECLARATION = re.compile(r"^[ \t]*preset[ \t]+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


@dataclass(frozen=True)
class Entry:
    name: str
    spec: Path  # the family file that declares it
    preset: ast.Preset

    @property
    def reference(self) -> str:
        return self.preset.reference

    @property
    def overrides(self) -> dict:
        return preset_values(self.preset)


def library_files() -> list[Path]:
    """The library's spec files that hold a network (its `blocks/` are imported by them)."""
    root = library_root()
    return sorted(root.glob("*.cnn")) if root is not None else []


def is_name(text: str) -> bool:
    """Whether a command-line spec argument could be a catalog name rather than a path."""
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text) is not None


def declared_names() -> dict:
    """Name -> the file that declares it, from the files' `preset NAME` lines (no parsing)."""
    names: dict = {}
    for path in library_files():
        for name in _DECLARATION.findall(path.read_text(encoding="utf-8", errors="replace")):
            if name in names and names[name] != path:
                raise CnncError(f"catalog: preset '{name}' is declared in both {display_path(names[name])} "
                                f"and {display_path(path)}")
            names[name] = path
    return names


def load_entry(name: str) -> Program:
    """The program of the file that declares preset `name`, set to build it."""
    names = declared_names()
    if name not in names:
        hint = suggest(name, names) or "; `cnnc list` shows the catalog"
        raise CnncError(f"'{name}' is neither a spec file nor a catalog entry{hint}")
    program = load_file(names[name])
    program.preset = next((p for p in program.presets if p.name == name), None)
    if program.preset is None:  # a `preset NAME` line that is no declaration (cannot parse otherwise)
        raise AssertionError(f"{names[name]} declares no preset '{name}'")
    return program


def entries() -> list[tuple[Program, list[Entry]]]:
    """Every library file (loaded: imports read, presets checked) with its entries, in file
    order; a name declared twice is an error at the second declaration."""
    out, first = [], {}
    for path in library_files():
        program = load_file(path)
        items = []
        for p in program.presets:
            if p.name in first:
                raise CnncError(f"catalog: preset '{p.name}' is declared twice", p.loc).note(
                    "first declared here", first[p.name])
            first[p.name] = p.loc
            items.append(Entry(p.name, path, p))
        out.append((program, items))
    return out
