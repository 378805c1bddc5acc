"""Reading spec files and their imports into one `Program`.

`import "blocks/resnet.cnn"` is resolved relative to the importing file. Every
file is parsed once; import cycles, missing files, duplicate block names and a
missing or repeated `network` are reported at the line that caused them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import ast
from cnnc.diagnostics import CnncError, Loc
from .parser import parse

MAX_SPEC_BYTES = 4 * 1024 * 1024


@dataclass
class Program:
    network: ast.NetworkDef | None = None
    blocks: dict = field(default_factory=dict)  # name -> BlockDef
    consts: list = field(default_factory=list)  # ConstDef, in file order (imports first)
    modules: list = field(default_factory=list)  # ast.Module, in load order


def display_path(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def read_spec(path: Path, loc: Loc | None = None) -> str:
    try:
        if path.is_dir():
            raise CnncError(f"'{display_path(path)}' is a directory, not a spec file", loc)
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise CnncError(f"'{display_path(path)}' is larger than {MAX_SPEC_BYTES // (1024 * 1024)} MiB", loc)
        data = path.read_bytes()
    except FileNotFoundError:
        raise CnncError(f"no such file: '{display_path(path)}'", loc) from None
    except OSError as e:
        raise CnncError(f"cannot read '{display_path(path)}': {e.strerror}", loc) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CnncError(f"'{display_path(path)}' is not UTF-8 text (byte {e.start})", loc) from None


def load_file(path: str | os.PathLike) -> Program:
    p = Path(path)
    text = read_spec(p)
    return load_text(text, display_path(p), p.resolve().parent, _key=p.resolve())


def load_text(text: str, name: str = "<spec>", base_dir: Path | None = None, _key=None) -> Program:
    prog = Program()
    _load(text, name, base_dir or Path.cwd(), prog, stack=[_key or name], seen=set(), root=True)
    if prog.network is None:
        raise CnncError("no network in this spec; define one with `network name(...) { ... }`",
                        Loc(name, 1, 1))
    return prog


def _load(text, name, base_dir, prog, stack, seen, root):
    module = parse(text, name)
    prog.modules.append(module)
    for item in module.items:
        if isinstance(item, ast.Import):
            if "\x00" in item.path:  # the OS refuses such a path (ValueError from os.stat)
                raise CnncError(f"cannot import {item.path!r}: a path cannot hold a NUL character", item.loc)
            target = (base_dir / item.path).resolve()
            if target in stack:
                chain = " -> ".join(Path(str(s)).name for s in stack + [target])
                raise CnncError(f"import cycle: {chain}", item.loc)
            if target in seen:
                continue
            seen.add(target)
            if not target.exists():
                raise CnncError(f"cannot import '{item.path}': no such file "
                                f"(looked for {display_path(target)})", item.loc)
            sub = read_spec(target, item.loc)
            _load(sub, display_path(target), target.parent, prog, stack + [target], seen, root=False)
        elif isinstance(item, ast.BlockDef):
            if item.name in prog.blocks:
                prev = prog.blocks[item.name]
                raise CnncError(f"block '{item.name}' is defined twice", item.loc).note(
                    "first defined here", prev.loc)
            prog.blocks[item.name] = item
        elif isinstance(item, ast.ConstDef):
            prog.consts.append(item)
        elif isinstance(item, ast.NetworkDef):
            if not root:
                raise CnncError(f"imported file defines a network ('{item.name}'); "
                                "files meant for import hold blocks and constants only", item.loc)
            if prog.network is not None:
                raise CnncError(f"a spec holds one network; '{item.name}' is the second",
                                item.loc).note("the first is here", prog.network.loc)
            prog.network = item
