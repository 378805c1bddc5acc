"""Reading spec files and their imports into one `Program`.

`import "blocks/resnet.cnn"` is looked for in the search roots (`import_roots`): the importing
file's directory first, then the installed spec library (`library_root`), so a spec anywhere
can import the library's blocks. Every file is parsed once; import cycles, missing files,
duplicate block names and a missing or repeated `network` are reported at the line that caused
them. The root file's `preset` declarations (catalog entries) are checked here against its
network's parameters.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import ast
from cnnc.diagnostics import CnncError, Loc, suggest
from .parser import parse

MAX_SPEC_BYTES = 4 * 1024 * 1024
# What a preset's `reference` may name: a library model, or a paper (with the table or figure)
REFERENCE_KINDS = ("torchvision", "timm", "paper")


@dataclass
class Program:
    network: ast.NetworkDef | None = None
    blocks: dict = field(default_factory=dict)  # name -> BlockDef
    consts: list = field(default_factory=list)  # ConstDef, in file order (imports first)
    modules: list = field(default_factory=list)  # ast.Module, in load order
    presets: list = field(default_factory=list)  # ast.Preset of the root file, in file order
    preset: ast.Preset | None = None  # the catalog entry to build: its values, then --set's


def library_root() -> Path | None:
    """The installed spec library: `cnnc/specs` in a wheel (pyproject maps the checkout's
    `specs/` there), or `specs/` beside the package in a source checkout or editable install."""
    package = Path(__file__).resolve().parent.parent
    for root in (package / "specs", package.parent / "specs"):
        if root.is_dir() and (root / "blocks").is_dir() and (
                root.parent == package or (package.parent / "pyproject.toml").is_file()):
            return root
    return None


def import_roots(base_dir: Path) -> list[Path]:
    """Where `import "path"` is looked for, in order: the importing file's directory, then the
    spec library."""
    lib = library_root()
    return [base_dir] + ([lib] if lib is not None and lib.resolve() != base_dir.resolve() else [])


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
    _check_presets(prog)
    return prog


def _find_import(item: ast.Import, base_dir: Path) -> Path:
    roots = import_roots(base_dir)
    for root in roots:
        target = (root / item.path).resolve()
        if target.exists():
            return target
    where = display_path((base_dir / item.path).resolve()) + (" and in the spec library" if len(roots) > 1 else "")
    raise CnncError(f"cannot import '{item.path}': no such file (looked for {where})", item.loc)


def _load(text, name, base_dir, prog, stack, seen, root):
    module = parse(text, name)
    prog.modules.append(module)
    for item in module.items:
        if isinstance(item, ast.Import):
            if "\x00" in item.path:  # the OS refuses such a path (ValueError from os.stat)
                raise CnncError(f"cannot import {item.path!r}: a path cannot hold a NUL character", item.loc)
            target = _find_import(item, base_dir)
            if target in stack:
                chain = " -> ".join(Path(str(s)).name for s in stack + [target])
                raise CnncError(f"import cycle: {chain}", item.loc)
            if target in seen:
                continue
            seen.add(target)
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
        elif isinstance(item, ast.Preset):
            if not root:
                raise CnncError(f"imported file declares a preset ('{item.name}'); a preset belongs in the "
                                "file of its network", item.loc)
            prog.presets.append(item)


def _check_presets(prog: Program) -> None:
    """Each preset names parameters of the network, with literal values, once per file, and a
    reference that reads `torchvision:<model>`, `timm:<model>` or `paper:<citation>`."""
    names = [p.name for p in prog.network.params]
    seen: dict = {}
    for p in prog.presets:
        if p.name in seen:
            raise CnncError(f"preset '{p.name}' is declared twice", p.loc).note("first declared here", seen[p.name])
        seen[p.name] = p.loc
        if p.args:
            raise CnncError("a preset gives network parameters by name, e.g. preset resnet18(layers=[2, 2, 2, 2])",
                            ast.loc_of(p.args[0]))
        for k in p.kwargs:
            if k.name not in names:
                raise CnncError(f"preset '{p.name}': network '{prog.network.name}' has no parameter "
                                f"'{k.name}'{suggest(k.name, names)}", k.loc).note(
                    f"its parameters: {', '.join(names) if names else 'none'}")
            literal(k.value)
        kind, colon, what = p.reference.partition(":")
        if not colon or kind not in REFERENCE_KINDS or not what.strip() or what != what.strip():
            raise CnncError(f'preset \'{p.name}\': reference "{p.reference}" should read "torchvision:<model>", '
                            f'"timm:<model>" or "paper:<authors year, table or figure>"', p.loc)


def literal(e):
    """The value of a preset argument, which is data: a number, string, true, false, none, or a
    list of these (lists as tuples, as the interpreter holds them)."""
    if isinstance(e, (ast.Num, ast.Str, ast.Const)):
        return e.value
    if isinstance(e, ast.Unary) and e.op == "-" and isinstance(e.operand, ast.Num):
        return -e.operand.value
    if isinstance(e, ast.List):
        return tuple(literal(x) for x in e.items)
    raise CnncError("a preset's values are literals: numbers, strings, true, false, none, and lists of them",
                    ast.loc_of(e))


def preset_values(preset: ast.Preset) -> dict:
    """A preset's parameter values, in the order written."""
    return {k.name: literal(k.value) for k in preset.kwargs}
