"""Error recovery: every independent error of a spec, not only the first.

The interpreter reports an error by raising a CnncError. Where that happens inside a statement
of a network or block body, the statement is abandoned, the error recorded, and the body goes
on with its next statement, so that one run finds the mistakes of independent statements
(and of independent network parameters and constants). What a later statement could have
learnt from the failed one is poisoned, so that no error caused by an earlier one is reported:

- every name the failed statement would have bound (an assignment's, an unpacking's, a loop's
  variable and, for a loop or a conditional, every name bound anywhere in its bodies) is bound
  to POISON; a statement that reads a poisoned name is skipped silently (Skipped), and poisons
  its own names in turn. So is a block call that reads one: its caller's statement is skipped;
- a failed statement that is or holds a `return` (a `return`, or a loop or conditional with one
  inside) ends its block (Abandoned): what follows it might never have run. The block's call is
  then skipped, as its value is unknown;
- a failed `defaults op(...)` (or one inside a failed loop or conditional) poisons the op:
  later calls of it, while those defaults would be in force, are skipped;
- checks of what a whole body or network must have (a block's `return`, the network's input
  and output, the layers named by `init`) are made only when nothing failed before them.

Each error is reported once per location (a block called many times reports its mistake at its
first instance), up to MAX_ERRORS; the budgets (steps, nodes, block instances) and nesting too
deep stop the run at once. Errors before the interpreter (parsing, imports, presets) are
reported one at a time, as is the verifier's.
"""
from __future__ import annotations

from cnnc.diagnostics import MAX_ERRORS, CnncError
from cnnc.frontend import ast
from cnnc.ir.ops import lookup


class _Poison:
    """The value of a name whose statement failed."""

    def __repr__(self) -> str:  # pragma: no cover - for debugging
        return "POISON"


POISON = _Poison()


class Skipped(Exception):
    """A statement that needs a value an earlier error left unknown: skipped, with no error of
    its own (the earlier one was reported)."""


class Abandoned(Exception):
    """A block body that cannot go on: a statement failed that is or holds its `return`. The
    block's call is skipped (expand_block raises Skipped in the caller)."""


class Stop(Exception):
    """The run ends here: a budget or nesting limit, or more than MAX_ERRORS errors."""


class Exhausted(CnncError):
    """A budget crossed (steps, nodes, block instances): nothing after it is checked."""


class Recovery:
    """Recording errors and poisoning what they leave unknown (a mixin of the Interpreter)."""

    def failed(self, err: CnncError | None) -> None:
        """Something failed with `err` (None: Skipped, its error recorded before): count it and
        record the error; raises Stop where the run ends."""
        self.failures += 1
        if err is not None:
            self.record(err)

    def recover(self, err: CnncError | None, stmt, env) -> None:
        """After statement `stmt` failed with `err` (None: Skipped): record the error, poison
        what the statement would have bound, and go on (unless the run stops)."""
        self.failed(err)
        self.poison(stmt, env)
        if self.active and _returns(stmt):  # the block may have ended here: so does its expansion
            raise Abandoned

    def record(self, err: CnncError) -> None:
        if isinstance(err, Exhausted):
            self.errors.append(err)
            raise Stop
        key = err.loc if err.loc is not None else err.message
        if key in self.error_keys:
            return
        if len(self.errors) == MAX_ERRORS:
            self.stopped = True
            raise Stop
        self.error_keys.add(key)
        self.errors.append(err)

    def poison(self, stmt, env) -> None:
        if isinstance(stmt, ast.Assign):
            env[stmt.name] = POISON
        elif isinstance(stmt, ast.Unpack):
            env.update(dict.fromkeys(stmt.names, POISON))
        elif isinstance(stmt, ast.For):
            env[stmt.var] = POISON
            for s in stmt.body:
                self.poison(s, env)
        elif isinstance(stmt, ast.If):
            for s in [s for _, body in stmt.branches for s in body] + list(stmt.orelse):
                self.poison(s, env)
        elif isinstance(stmt, ast.Defaults):
            d = lookup(stmt.op)
            self.op_defaults[(d.name if d is not None else stmt.op, None)] = POISON

    def collected(self, last: CnncError | None = None) -> CnncError:
        """The errors recorded (and `last`, which stopped the run), as one CnncError."""
        errors = self.errors + ([last] if last is not None else [])
        first = errors[0]
        first.also, first.stopped = errors[1:], self.stopped
        return first


def _returns(stmt) -> bool:
    """Whether a statement is a `return` or holds one."""
    if isinstance(stmt, ast.Return):
        return True
    if isinstance(stmt, ast.For):
        return any(_returns(s) for s in stmt.body)
    if isinstance(stmt, ast.If):
        return any(_returns(s) for _, body in stmt.branches for s in body) or any(_returns(s) for s in stmt.orelse)
    return False
