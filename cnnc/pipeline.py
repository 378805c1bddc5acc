"""The front end, stage by stage. `front_end` is the one place that lists them in order:

  1. load    spec text and its imports -> AST         (cnnc/frontend/)
  2. irgen   AST -> IR, shapes inferred per op        (cnnc/ir/irgen/, the op table cnnc/ir/ops.py)
  3. verify  IR invariants                            (cnnc/ir/verify.py)
  4. passes  prune_unused                             (cnnc/passes/)
  5. fuse    fold_batchnorm, fuse_residual_add, fuse_activation (cnnc/passes/; `fuse`, inference only)

The back ends start from its result (cnnc/backends/): the summary, the Graphviz picture, and
PyTorch code generation, whose modules call the Triton kernels in cnnc/kernels/.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .diagnostics import CnncError
from .frontend import catalog
from .frontend.loader import Program, load_file, load_text
from .ir.graph import Graph
from .ir.irgen import OverridesBy, generate
from .ir.verify import verify
from .passes.prune_unused import prune_unused


@dataclass
class FrontEnd:
    program: Program
    graph: Graph
    warnings: list = field(default_factory=list)


def is_path(spec: str | os.PathLike) -> bool:
    """A path to a .cnn file, not spec text (anything containing a newline or '{')."""
    return isinstance(spec, os.PathLike) or ("\n" not in spec and "{" not in spec)


def load(spec: str | os.PathLike, import_roots=()) -> Program:
    """A path to a .cnn file, a catalog name (`resnet50`: a preset of the spec library, where no
    file has that name), or spec text (anything containing a newline or '{'). Imports may read
    from the spec's directory (the working directory for spec text), the spec library and
    `import_roots` (cnnc/frontend/loader.py)."""
    roots = tuple(import_roots)
    if isinstance(spec, os.PathLike):
        return load_file(spec, roots)
    if not is_path(spec):
        return load_text(spec, "<spec>", Path.cwd(), roots)
    if catalog.is_name(spec) and not Path(spec).is_file():
        return catalog.load_entry(spec)
    try:
        return load_file(spec, roots)
    except CnncError as err:
        stem = Path(spec).stem
        if not Path(spec).exists() and catalog.is_name(stem) and stem in catalog.declared_names():
            err.note(f"'{stem}' is a catalog entry: give its name alone to use it")
        raise


def front_end(spec, overrides: dict | None = None, stop_after: str | None = None, import_roots=(),
              api: str | None = None) -> FrontEnd:
    """`spec`: what `load` takes, or a loaded Program. `overrides` come from the command line's
    --set, or from the keyword arguments of the API function `api` names (`"cnnc.compile()"`),
    which their errors then name."""
    program = spec if isinstance(spec, Program) else load(spec, import_roots)
    try:
        graph = verify(generate(program, overrides, OverridesBy(api)))
    except CnncError as err:
        if program.preset is not None:
            for e in err.errors():
                e.note(f"while building preset '{program.preset.name}'", program.preset.loc)
        raise
    warnings: list[str] = []
    pruned, w = prune_unused(graph)
    warnings += w
    return FrontEnd(program, graph if pruned is graph else verify(pruned), warnings)  # unchanged: verified


def fuse(graph: Graph) -> Graph:
    """The fusion passes, in order, each followed by the verifier (inference graphs only)."""
    from .passes.fold_batchnorm import fold_batchnorm
    from .passes.fuse_activation import fuse_activation
    from .passes.fuse_residual_add import fuse_residual_add

    for step in (fold_batchnorm, fuse_residual_add, fuse_activation):
        graph = verify(step(graph))
    return graph
