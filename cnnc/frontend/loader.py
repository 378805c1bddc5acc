"""Reading spec files and their imports into one `Program`.

`import "blocks/resnet.cnn"` is looked for relative to the importing file's directory first,
then in the installed spec library (`library_root`), so a spec anywhere can import the library's
blocks. Every file is parsed once; import cycles, missing files, duplicate block names and a
missing or repeated `network` are reported at the line that caused them. The root file's
`preset` declarations (catalog entries) are checked here against its network's parameters.

A spec is untrusted input, so what it can make cnnc read is confined:
- an import must resolve (symbolic links followed) to a file inside one of the import roots:
  the directory of the root spec (and everything below it; for spec text given to the API and
  for a spec read from standard input, `cnnc check -`, the working directory), the installed
  spec library, and any directory given with `--import-root DIR` (`import_roots=` in the API).
  Anything else is refused before it is looked at;
- only regular files are read: never a directory, device, FIFO or socket (checked before
  opening; the file is opened non-blocking and checked again, so a FIFO swapped in never blocks),
  besides standard input when the user names it (`-`);
- each file (and standard input) is at most MAX_SPEC_BYTES (checked before reading, and never more than that read),
  all files of a spec together at most MAX_TOTAL_BYTES in MAX_FILES files and
  parser.MAX_TOKENS tokens;
- a file that is not spec text (not UTF-8, or holding control characters) is reported at the
  offending byte, or for an import at the import line, and its lines are never quoted.
"""
from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import ast
from cnnc.diagnostics import CnncError, Loc, forget_source, line_col, suggest
from .parser import MAX_TOKENS, NotSpecText, count_tokens, parse, prepare_text

MAX_SPEC_BYTES = 4 * 1024 * 1024  # one file
MAX_TOTAL_BYTES = 8 * 1024 * 1024  # a spec and all its imports
MAX_FILES = 1000
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
    files: list = field(default_factory=list)  # real paths of the files read, root first


def library_root() -> Path | None:
    """The installed spec library: `cnnc/specs` in a wheel (pyproject maps the checkout's
    `specs/` there), or `specs/` beside the package in a source checkout or editable install."""
    package = Path(__file__).resolve().parent.parent
    for root in (package / "specs", package.parent / "specs"):
        if root.is_dir() and (root / "blocks").is_dir() and (
                root.parent == package or (package.parent / "pyproject.toml").is_file()):
            return root
    return None


@dataclass
class _Budget:
    """What the files of one spec may still take together."""

    tokens: int = field(default_factory=lambda: MAX_TOKENS)
    bytes: int = field(default_factory=lambda: MAX_TOTAL_BYTES)
    files: int = field(default_factory=lambda: MAX_FILES)


def display_path(path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _mib(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB"


def read_spec(path, loc: Loc | None = None, budget: _Budget | None = None) -> bytes:
    """The bytes of a spec file: a regular file of at most MAX_SPEC_BYTES (and of what the
    budget has left), never anything else; errors are CnncErrors at `loc`."""
    budget = budget or _Budget()
    shown = display_path(path)
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise CnncError(f"no such file: '{shown}'", loc) from None
    except OSError as e:
        raise CnncError(f"cannot read '{shown}': {e.strerror or e}", loc) from None
    _check_file(st, shown, loc, budget)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except OSError as e:
        raise CnncError(f"cannot read '{shown}': {e.strerror or e}", loc) from None
    try:
        _check_file(os.fstat(fd), shown, loc, budget)  # what was opened, in case the path changed
        return _read_bounded(lambda n: os.read(fd, n), shown, loc, budget)
    finally:
        os.close(fd)


def _read_bounded(read, shown: str, loc, budget: _Budget) -> bytes:
    """All that `read(n)` gives until end of file, refused past MAX_SPEC_BYTES (and what the
    budget has left) after reading at most one byte more than that."""
    limit = min(MAX_SPEC_BYTES, budget.bytes)
    chunks, size = [], 0
    try:
        while size <= limit:  # at most limit + 1 bytes: enough to tell that a file is too large
            chunk = read(min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise CnncError(f"cannot read '{shown}': {e.strerror or e}", loc) from None
    if size > limit:
        raise _too_large(shown, loc, budget)
    budget.bytes -= size
    return b"".join(chunks)


def _check_file(st: os.stat_result, shown: str, loc, budget: _Budget) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise CnncError(f"'{shown}' is a directory, not a spec file", loc)
    if not stat.S_ISREG(st.st_mode):
        raise CnncError(f"'{shown}' is not a regular file (a device, FIFO or socket); specs are read from "
                        "regular files only", loc)
    if st.st_size > min(MAX_SPEC_BYTES, budget.bytes):
        raise _too_large(shown, loc, budget)


def _too_large(shown: str, loc, budget: _Budget) -> CnncError:
    if budget.bytes < MAX_SPEC_BYTES:
        return CnncError(f"'{shown}' would take the spec and its imports past {_mib(MAX_TOTAL_BYTES)}", loc)
    return CnncError(f"'{shown}' is larger than {_mib(MAX_SPEC_BYTES)}", loc)


def decode_spec(data: bytes, shown: str) -> str:
    """UTF-8 text; a byte that is not UTF-8 is a NotSpecText error at its line and column."""
    forget_source(shown)  # a file of that name read before is not this one
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[:e.start].decode("utf-8")  # valid up to the bad byte
        if before.startswith("\ufeff"):
            before = before[1:]
        line, col = line_col(before, len(before))
        raise NotSpecText(f"'{shown}' is not UTF-8 text (byte 0x{data[e.start]:02x})", Loc(shown, line, col)) from None


def resolve_roots(base_dir, extra=()) -> tuple[str, ...]:
    """The directories imports may read from: the root spec's directory, the spec library and
    `extra` (each must be a directory), as real paths."""
    roots = [os.path.realpath(base_dir)]
    lib = library_root()
    for r in tuple(extra) + ((lib,) if lib is not None else ()):
        real = os.path.realpath(r)
        if not os.path.isdir(real):
            raise CnncError(f"import root '{r}' is not a directory")
        roots.append(real)
    return tuple(dict.fromkeys(roots))


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives
        return False


def load_file(path: str | os.PathLike, import_roots: tuple = ()) -> Program:
    shown = display_path(path)
    budget = _Budget()
    real = os.path.realpath(path)
    text = decode_spec(read_spec(path, None, budget), shown)
    return load_text(text, shown, Path(real).parent, import_roots, _key=real, _budget=budget)


STDIN = "<stdin>"  # the name of the spec read from standard input, in errors


def load_stdin(import_roots: tuple = (), stream=None) -> Program:
    """The spec on standard input (`-` on the command line; `stream`: a binary file to read
    instead), named STDIN, read within the same size limit as a file. It has no directory of its
    own: its imports resolve relative to the working directory, which is its first import root."""
    stream = stream if stream is not None else getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise CnncError("cannot read the spec from standard input: there is none")
    budget = _Budget()
    text = decode_spec(_read_bounded(stream.read, STDIN, None, budget), STDIN)
    return load_text(text, STDIN, Path.cwd(), import_roots, _budget=budget)


def load_text(text: str, name: str = "<spec>", base_dir: Path | None = None, import_roots: tuple = (),
              _key=None, _budget: _Budget | None = None) -> Program:
    """A Program from spec text named `name`, whose imports resolve relative to `base_dir` (by
    default the working directory, which is then the first import root)."""
    prog = Program()
    base = os.path.realpath(base_dir or Path.cwd())
    roots = resolve_roots(base, import_roots)
    budget = _budget or _Budget()
    if _key is not None:
        prog.files.append(_key)
    _load(text, name, base, prog, stack=[_key or name], seen=set(), root=True, roots=roots, budget=budget)
    if prog.network is None:
        raise CnncError("no network in this spec; define one with `network name(...) { ... }`",
                        Loc(name, 1, 1))
    _check_presets(prog)
    return prog


def _find_import(item: ast.Import, base_dir: str, roots) -> str:
    """The real path of an import: relative to the importing file's directory, else in the spec
    library; it must lie inside one of `roots` (checked before the file is looked at)."""
    lib = library_root()
    candidates = [base_dir] + ([str(lib)] if lib is not None else [])
    for i, directory in enumerate(candidates):
        target = os.path.realpath(os.path.join(directory, item.path))
        if not any(_inside(target, r) for r in roots):
            if i:
                continue  # (a library path that escapes the library is simply not one)
            shown = [f"'{display_path(r)}'" for r in roots if lib is None or r != os.path.realpath(lib)]
            raise CnncError(f"cannot import '{item.path}': it lies outside the directories a spec may import "
                            f"from ({', '.join(shown)} and below, and the spec library); add one with "
                            "--import-root DIR", item.loc)
        if os.path.lexists(target):
            return target
    where = display_path(os.path.realpath(os.path.join(base_dir, item.path)))
    where += " and in the spec library" if len(candidates) > 1 else ""
    raise CnncError(f"cannot import '{item.path}': no such file (looked for {where})", item.loc)


def _load(text, name, base_dir, prog, stack, seen, root, roots, budget):
    if root:  # an imported file's text was prepared at its import
        text = prepare_text(text, name)
    budget.tokens -= count_tokens(text, name, budget.tokens)
    module = parse(text, name, prepared=True)
    prog.modules.append(module)
    for item in module.items:
        if isinstance(item, ast.Import):
            if "\x00" in item.path:  # the OS refuses such a path (ValueError from os.stat)
                raise CnncError(f"cannot import {item.path!r}: a path cannot hold a NUL character", item.loc)
            target = _find_import(item, base_dir, roots)
            if target in stack:
                chain = " -> ".join(Path(str(s)).name for s in stack + [target])
                raise CnncError(f"import cycle: {chain}", item.loc)
            if target in seen:
                continue
            seen.add(target)
            shown = display_path(target)
            budget.files -= 1
            if budget.files < 0:
                raise CnncError(f"cannot import '{item.path}': a spec may read at most {MAX_FILES} files", item.loc)
            data = read_spec(target, item.loc, budget)
            try:
                sub = prepare_text(decode_spec(data, shown), shown)
            except NotSpecText as e:  # never quote a file that is not a spec: say where, at the import
                raise CnncError(f"cannot import '{item.path}': {e.message}", item.loc).note(
                    "the first character that is not spec text", e.loc) from None
            prog.files.append(target)
            _load(sub, shown, os.path.dirname(target), prog, stack + [target], seen, False, roots, budget)
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
