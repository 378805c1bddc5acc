"""The builtin functions of the language: a table, name -> (function, (fewest, most) arguments).

Builtins compute values and create no instance. Each function gets the evaluated arguments and
raises ValueError (or TypeError) with a message the interpreter reports at the call; `Builtins`
is the interpreter's part that checks a call against the table and runs it.
"""
from __future__ import annotations

import math

from cnnc.ir.values import describe_value, is_int, is_num

from .limits import range_length


def _divisible(v, d=8, min=None):
    """MobileNet's _make_divisible: round v to a multiple of d, never below 90% of v."""
    if d <= 0:
        raise ValueError("divisor must be positive")
    lo = d if min is None else min
    new = max(lo, int(v + d / 2) // d * d)
    if new < 0.9 * v:
        new += d
    return new


def _range(*a):
    for v in a:
        if not is_int(v):
            raise ValueError(f"range needs integers, got {describe_value(v)}")
    if len(a) == 3 and a[2] == 0:
        raise ValueError("range step must not be zero")
    return range(*a)


def _minmax(f):
    def g(*a):
        if len(a) == 1:
            if not isinstance(a[0], (tuple, range)) or len(a[0]) == 0:
                raise ValueError("needs numbers or a non-empty list")
            a = tuple(a[0])
        if not all(is_num(x) for x in a):
            raise ValueError("needs numbers")
        return f(a)
    return g


def _domain(ok: bool, what: str, x):
    if not ok:
        raise ValueError(f"needs {what} number, got {x:g}")


def _log(x, base=None):
    """Natural logarithm, or to `base`: RegNet's widths round log(u / w0) / log(wm)."""
    _domain(x > 0, "a positive", x)
    if base is None:
        return math.log(x)
    if base <= 0 or base == 1:
        raise ValueError(f"base must be positive and not 1, got {base:g}")
    return math.log(x, base)


def _log2(x):
    _domain(x > 0, "a positive", x)
    return math.log2(x)


def _round(x, n=None):
    """Python's round. ndigits is clamped to +-400 first, which changes no result (every value is
    within 2^62 or a finite float) but keeps round(5, -10**9) from computing 10**(10**9)."""
    if n is None:
        return round(x)
    return round(x, max(-400, min(400, int(n))))


def _len(v):
    if not isinstance(v, (tuple, range, str)):
        raise ValueError(f"needs a list, got {describe_value(v)}")
    return len(v)


BUILTINS = {
    "ceil": (lambda x: math.ceil(x), (1, 1)),
    "floor": (lambda x: math.floor(x), (1, 1)),
    "round": (_round, (1, 2)),
    "int": (lambda x: int(x), (1, 1)),
    "float": (lambda x: float(x), (1, 1)),
    "abs": (lambda x: abs(x), (1, 1)),
    "sqrt": (lambda x: _domain(x >= 0, "a non-negative", x) or math.sqrt(x), (1, 1)),
    "log": (_log, (1, 2)),
    "log2": (_log2, (1, 1)),
    "exp": (lambda x: math.exp(x), (1, 1)),  # OverflowError past ~709: "number too large"
    "min": (_minmax(min), (1, 99)),
    "max": (_minmax(max), (1, 99)),
    "len": (_len, (1, 1)),
    "range": (_range, (1, 3)),
    "divisible": (_divisible, (1, 2)),
}
# keyword arguments a builtin takes (all others take none)
KEYWORDS = {"divisible": ("min",)}
# builtins whose arguments need not be numbers
ANY_ARGUMENTS = ("len", "min", "max")


class Builtins:
    """Calling a builtin (a mixin of the Interpreter)."""

    def builtin(self, c, pos, kw):
        fn, (lo, hi) = BUILTINS[c.func]
        args = [v for v, _ in pos]
        for k, (v, loc) in kw.items():
            if k not in KEYWORDS.get(c.func, ()):
                raise self.error(f"{c.func}() takes no argument '{k}'", loc)
        if not lo <= len(args) <= hi:
            n = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise self.error(f"{c.func}() takes {n} argument{'s' if hi != 1 else ''}, got {len(args)}", c.loc)
        for v, loc in pos:
            if c.func not in ANY_ARGUMENTS and not (is_num(v) or (c.func == "divisible" and v is None)):
                raise self.error(f"{c.func}() needs numbers, got {describe_value(v)}", loc)
            if c.func in ("min", "max") and isinstance(v, (tuple, range)):
                self.charge(len(v) if isinstance(v, tuple) else range_length(v), loc)
        try:
            r = fn(*args, **{k: v for k, (v, _) in kw.items()})
        except OverflowError:
            raise self.error(f"{c.func}(): number too large", c.loc) from None
        except (TypeError, ValueError) as err:
            raise self.error(f"{c.func}(): {err}", c.loc) from None
        self.check_range(r, c.loc)
        return self.check_num(r, c.loc) if is_num(r) else r
