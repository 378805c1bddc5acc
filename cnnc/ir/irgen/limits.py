"""Limits and budgets: what keeps every spec finite.

A spec is untrusted input, so the interpreter charges its work against fixed ceilings: a step
budget (statements, loop trips and calls), a node budget, a tensor-size and a parameter ceiling
per node, an integer ceiling and a list-length ceiling. Each is reported at the line that
crossed it. `Limits` is the interpreter's part that checks them; the ceilings are data here.
"""
from __future__ import annotations

import math

from cnnc.diagnostics import Loc
from cnnc.ir.values import fmt_shape

MAX_NODES = 100_000
MAX_STEPS = 2_000_000
MAX_ELEMENTS = 2**32  # per sample, per tensor
MAX_PARAMS = 10**11  # per node
MAX_INT = 2**62
MAX_LIST = 1_000_000


def too_large(negative: bool) -> str:
    return f"integer too large ({'< -' if negative else '> '}2^62)"


class Limits:
    """The budget checks (a mixin of the Interpreter: `self.error` locates and annotates)."""

    steps: int

    def tick(self, loc: Loc):
        """One step of work: a statement, a loop trip or a call."""
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise self.error(f"spec takes more than {MAX_STEPS:,} steps to expand; is a loop too long?", loc)

    def check_num(self, r, loc):
        """An arithmetic result: integers within MAX_INT, floats finite."""
        if isinstance(r, int) and abs(r) > MAX_INT:
            raise self.error(too_large(r < 0), loc)
        if isinstance(r, float) and not math.isfinite(r):
            raise self.error(f"arithmetic gives {r}", loc)
        return r

    def check_list(self, v, loc):
        if len(v) > MAX_LIST:
            raise self.error(f"list would have more than {MAX_LIST:,} items", loc)
        return v

    def check_repeat(self, items: int, times: int, loc):
        """Before `list * n`: the result's length, without building it."""
        if items * max(times, 0) > MAX_LIST:
            raise self.error(f"list would have more than {MAX_LIST:,} items", loc)

    def check_power(self, a, b, loc):
        """Before `a ** b`: refused where Python would give a complex number or an integer of
        unbounded size (2 ** 10**9 would take minutes before check_num saw it)."""
        if a < 0 and not float(b).is_integer():
            raise self.error(f"({a}) ** {b}: a negative number to a fractional power", loc)
        if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1 and b * math.log2(abs(a)) > 63:
            raise self.error(too_large(a < 0 and b % 2 == 1), loc)

    def check_range(self, r, loc):
        if isinstance(r, range) and len(r) > MAX_STEPS:
            raise self.error(f"range of {len(r):,} items is longer than the step budget ({MAX_STEPS:,})", loc)

    def check_node_budget(self, loc):
        if len(self.nodes) >= MAX_NODES:
            raise self.error(f"spec expands past the budget of {MAX_NODES:,} nodes; is a loop or depth too large?",
                             loc)

    def check_tensor(self, op: str, shape: tuple, loc):
        n_el = math.prod(shape)
        if n_el > MAX_ELEMENTS or min(shape, default=1) < 1:
            raise self.error(f"{op} would make a tensor of shape {fmt_shape(shape)} ({n_el:,} elements per sample); "
                             f"the limit is 2^32", loc)

    def check_params(self, op: str, params: int, loc):
        if params > MAX_PARAMS:
            raise self.error(f"{op} would have {params:,} parameters; the limit is {MAX_PARAMS:,}", loc)
