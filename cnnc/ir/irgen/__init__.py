"""Stage 2, IR generation: AST -> IR, by interpreting the spec.

Blocks are expanded at every call, loops unrolled and conditionals decided, so the result is a
flat dataflow graph. Shapes are inferred as each node is made (by the op's shape rule in
cnnc/ir/ops.py), because specs may read a tensor's shape (`x.channels`) to decide what comes
next. The interpreter is one class assembled from one part per concern:

  statements.py   statements and control flow, and the network entry (`run`)
  expressions.py  expressions: values, arithmetic, comparisons, tensor arithmetic
  builtins.py     the builtin functions (a table) and calling them
  calls.py        op, block and builtin calls, groups, and the instance names they create
  limits.py       the budgets that keep every spec finite, each reported where it was crossed
  recovery.py     going on after an error to find the independent ones, never one caused by another
"""
from __future__ import annotations

from collections import ChainMap

from cnnc.diagnostics import CnncError, Loc
from cnnc.frontend.loader import Program
from cnnc.ir.graph import Graph, Node, Output, Scope

from .builtins import Builtins
from .calls import Active, Calls, Frame
from .expressions import Expressions
from .limits import Limits
from .recovery import Recovery
from .statements import COMMAND_LINE, OverridesBy, Statements

__all__ = ["generate", "Interpreter", "OverridesBy"]


def generate(prog: Program, overrides: dict | None = None, overrides_by: OverridesBy = COMMAND_LINE) -> Graph:
    """The IR of a loaded spec, with network parameters overridden by `overrides` (given on the
    command line with --set, or as keyword arguments of the API function `overrides_by` names)."""
    return Interpreter(prog, overrides_by).run(dict(overrides or {}))


class Interpreter(Statements, Expressions, Calls, Builtins, Limits, Recovery):
    """The state of one expansion; behaviour comes from the parts listed in the module docstring."""

    def __init__(self, prog: Program, overrides_by: OverridesBy = COMMAND_LINE):
        self.prog = prog
        self.overrides_by = overrides_by
        self.nodes: list[Node] = []
        self.scopes: list[Scope] = []
        self.outputs: list[Output] = []
        self.output_names: set = set()
        self.frames: list[Frame] = [Frame("")]  # naming frames, innermost last
        self.active: list[Active] = []  # blocks being expanded, innermost last
        self.globals: dict = {}  # constants
        self.steps = 0
        self.last_call = None  # the call being expanded most recently, for "nested too deeply"
        # `defaults op(arg=value)` in force: (op, arg) -> value; one layer per block body being expanded
        self.op_defaults: ChainMap = ChainMap()
        self.last_loc = prog.network.loc if prog.network else None  # the last step's location, likewise
        self.errors: list[CnncError] = []  # recorded so far (recovery.py)
        self.error_keys: set = set()  # their locations
        self.failures = 0  # statements abandoned or skipped
        self.stopped = False  # at MAX_ERRORS, with more to find

    def error(self, message: str, loc: Loc, notes=(), cls=CnncError) -> CnncError:
        """A located error, with a note for each block instance it happened in."""
        err = cls(message, loc)
        for n in notes:
            if n:
                err.note(n)
        for a in reversed(self.active):
            if a.flat:
                where = f"'{a.path}'" if a.path else "the network"
                err.note(f"in an instance of block '{a.block}' called `as _` (its contents named in {where}), "
                         "called here", a.call_loc)
            else:
                err.note(f"in '{a.path}' (an instance of block '{a.block}'), called here", a.call_loc)
        return err
