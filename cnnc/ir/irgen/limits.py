"""Limits and budgets: what keeps every spec finite.

A spec is untrusted input, so the interpreter charges its work against fixed ceilings, each
reported at the line that crossed it; `Limits` is the interpreter's part that checks them, the
ceilings are data here.

The step budget is charged for every piece of work, in proportion to its size: one step per
statement, loop trip, call and expression node evaluated; for work on values of unbounded size,
one step per item (list concatenation, repetition, comparison, min/max) or per STRING_CHUNK
characters (strings); and INSTANCE_STEPS for each node, block instance or group made (so that a
spec making as many as the node and instance budgets allow also runs into the step budget,
instead of taking the time of all three budgets together). Values themselves are bounded:
integers within 2^62 (literals included, and checked before Python computes anything whose size
depends on them, like `round(5, -10**9)` or `2 ** n`), floats finite, lists of at most MAX_LIST
items, strings of at most MAX_STRING characters. The graph is bounded too: nodes, block
instances and groups, inputs per node, tensor elements and parameters per node, instance names
and paths. Together with the front end's limits (file sizes, tokens; cnnc/frontend/loader.py) no
spec runs long or grows large before it is refused; tools/bombs.py measures that. Crossing the
step, node or instance budget stops the run (`Exhausted`: no error after it is looked for).
"""
from __future__ import annotations

import math

from cnnc.diagnostics import Loc
from cnnc.ir.values import fmt_shape

from .recovery import Exhausted

MAX_NODES = 120_000
MAX_SCOPES = 100_000  # block instances and groups
MAX_STEPS = 3_000_000
INSTANCE_STEPS = 15  # steps charged per node, block instance or group made (about what each costs)
MAX_ELEMENTS = 2**32  # per sample, per tensor
MAX_PARAMS = 10**11  # per node
MAX_INPUTS = 10_000  # tensor inputs of one node (concat)
MAX_INT = 2**62
MAX_LIST = 1_000_000
MAX_STRING = 10_000
STRING_CHUNK = 16  # characters per step of string work
MAX_NAME = 128  # characters of an instance name
MAX_PATH = 1024  # characters of an instance path


def too_large(negative: bool) -> str:
    return f"integer too large ({'< -' if negative else '> '}2^62)"


def range_length(r: range) -> int:
    """len(r) without OverflowError (len() fails past sys.maxsize)."""
    if r.step > 0:
        return max(0, (r.stop - r.start + r.step - 1) // r.step)
    return max(0, (r.start - r.stop - r.step - 1) // -r.step)


class Limits:
    """The budget checks (a mixin of the Interpreter: `self.error` locates and annotates)."""

    steps: int

    def tick(self, loc: Loc):
        """One step of work: a statement, a loop trip, a call or an expression node."""
        self.last_loc = loc
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise self.error(f"spec takes more than {MAX_STEPS:,} steps to expand; is a loop too long?", loc,
                             cls=Exhausted)

    def charge(self, units: int, loc: Loc):
        """Work in proportion to a value's size, `units` steps at once (charged before it is done)."""
        self.steps += units
        if self.steps > MAX_STEPS:
            raise self.error(f"spec takes more than {MAX_STEPS:,} steps to expand (large values cost a step per "
                             f"item, nodes and block instances {INSTANCE_STEPS} steps each)", loc, cls=Exhausted)

    def charge_size(self, v, loc: Loc):
        """Charge for a walk over every item of `v`, nested lists included (shared sublists count
        each time they are reached, as a comparison reaches them); stops at the budget."""
        stack = [v]
        while stack:
            x = stack.pop()
            if isinstance(x, tuple):
                self.charge(1 + len(x), loc)
                stack.extend(y for y in x if isinstance(y, (tuple, str, range)))
            elif isinstance(x, range):
                self.charge(1 + range_length(x), loc)
            elif isinstance(x, str):
                self.charge(1 + len(x) // STRING_CHUNK, loc)

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
        self.charge(items * max(times, 0), loc)

    def check_concat(self, a, b, loc):
        """Before `a + b` on two lists or two strings: the result's size, without building it."""
        if isinstance(a, str):
            if len(a) + len(b) > MAX_STRING:
                raise self.error(f"string would be longer than {MAX_STRING:,} characters", loc)
            self.charge((len(a) + len(b)) // STRING_CHUNK, loc)
        else:
            if len(a) + len(b) > MAX_LIST:
                raise self.error(f"list would have more than {MAX_LIST:,} items", loc)
            self.charge(len(a) + len(b), loc)

    def check_power(self, a, b, loc):
        """Before `a ** b`: refused where Python would give a complex number or an integer of
        unbounded size (2 ** 10**9 would take minutes before check_num saw it)."""
        if a < 0 and not float(b).is_integer():
            raise self.error(f"({a}) ** {b}: a negative number to a fractional power", loc)
        if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1 and b * math.log2(abs(a)) > 63:
            raise self.error(too_large(a < 0 and b % 2 == 1), loc)

    def check_range(self, r, loc):
        if isinstance(r, range) and range_length(r) > MAX_STEPS:
            raise self.error(f"range of {range_length(r):,} items is longer than the step budget ({MAX_STEPS:,})", loc)

    def check_node_budget(self, loc):
        self.charge(INSTANCE_STEPS, loc)
        if len(self.nodes) >= MAX_NODES:
            raise self.error(f"spec expands past the budget of {MAX_NODES:,} nodes; is a loop or depth too large?",
                             loc, cls=Exhausted)

    def check_scope_budget(self, loc):
        self.charge(INSTANCE_STEPS, loc)
        if len(self.scopes) >= MAX_SCOPES:
            raise self.error(f"spec expands past the budget of {MAX_SCOPES:,} block instances and groups; "
                             "is a loop or depth too large?", loc, cls=Exhausted)

    def check_inputs(self, op: str, n: int, loc):
        if n > MAX_INPUTS:
            raise self.error(f"{op} of {n:,} tensors; an op takes at most {MAX_INPUTS:,} inputs", loc)
        self.charge(n, loc)

    def check_name(self, name: str, path: str, loc):
        """An instance name and the dotted path it makes."""
        if len(name) > MAX_NAME:
            raise self.error(f"instance name of {len(name):,} characters; the limit is {MAX_NAME}", loc)
        if len(path) > MAX_PATH:
            raise self.error(f"instance path of {len(path):,} characters; the limit is {MAX_PATH:,} "
                             "(blocks and groups nested too deeply)", loc)

    def check_value(self, v, loc):
        """A value from outside the interpreter (a --set override): within the value limits."""
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return self.check_num(v, loc)
        if isinstance(v, str) and len(v) > MAX_STRING:
            raise self.error(f"string of {len(v):,} characters; the limit is {MAX_STRING:,}", loc)
        if isinstance(v, (tuple, list)):
            self.check_list(v, loc)
            for x in v:
                self.check_value(x, loc)
        return v

    def check_tensor(self, op: str, shape: tuple, loc):
        n_el = math.prod(shape)
        if n_el > MAX_ELEMENTS or min(shape, default=1) < 1:
            raise self.error(f"{op} would make a tensor of shape {fmt_shape(shape)} ({n_el:,} elements per sample); "
                             f"the limit is 2^32", loc)

    def check_params(self, op: str, params: int, loc):
        if params > MAX_PARAMS:
            raise self.error(f"{op} would have {params:,} parameters; the limit is {MAX_PARAMS:,}", loc)


def is_sized(v) -> bool:
    """A value whose comparison costs in proportion to its size."""
    return isinstance(v, (tuple, range, str))
