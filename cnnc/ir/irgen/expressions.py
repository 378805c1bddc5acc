"""Expressions: what a spec expression evaluates to.

Numbers, strings, lists, names, attributes of tensors (`x.channels`), indexing, arithmetic with
Python's semantics (each result checked against the limits), comparisons, `and`/`or`/`not`, the
conditional, and tensor arithmetic (`a + b`, `x * 0.5`), which makes IR nodes. Calls and
groups are evaluated by calls.py; `Expressions` is the interpreter's part for the rest.
"""
from __future__ import annotations

from cnnc.diagnostics import suggest
from cnnc.frontend.ast import loc_of
from cnnc.ir.ops import lookup, string_words
from cnnc.ir.values import Tensor, describe_value, fmt_shape, freeze, is_int, is_num

from .limits import is_sized
from .recovery import POISON, Skipped

# tensor arithmetic: the op each operator makes between two tensors
TENSOR_OPS = {"+": "add", "-": "sub", "*": "mul"}


class Expressions:
    """eval_<AST class> per expression node (a mixin of the Interpreter)."""

    def eval(self, e, env):
        self.tick(e.loc)  # every expression node is a step
        m = getattr(self, "eval_" + type(e).__name__)
        return m(e, env)

    def eval_Num(self, e, env):
        if isinstance(e.value, float) and e.value == float("inf"):
            raise self.error("number too large", e.loc)
        return self.check_num(e.value, e.loc)

    def eval_Str(self, e, env):
        return e.value

    def eval_Const(self, e, env):
        return e.value

    def eval_Name(self, e, env):
        v = env[e.id] if e.id in env else self.globals[e.id] if e.id in self.globals else None
        if v is POISON:  # its statement failed: so does this one, silently (recovery.py)
            raise Skipped
        if e.id in env or e.id in self.globals:
            return v
        words = string_words()
        if e.id in words:  # padding=same: a string value written without quotes
            raise self.error(f'unknown name \'{e.id}\'; strings are quoted: {words[e.id]}="{e.id}"', e.loc)
        hint = suggest(e.id, list(env) + list(self.globals))
        extra = ""
        if not hint and (lookup(e.id) or e.id in self.prog.blocks):
            extra = f"; '{e.id}' is an op or block: call it, e.g. x -> {e.id}(...)"
        raise self.error(f"unknown name '{e.id}'{hint}{extra}", e.loc)

    def eval_List(self, e, env):
        return tuple(self.eval(x, env) for x in e.items)

    def eval_IfExpr(self, e, env):
        c = self.eval(e.cond, env)
        return self.eval(e.then if self.truth(c, loc_of(e.cond)) else e.orelse, env)

    def eval_Attr(self, e, env):
        obj = self.eval(e.obj, env)
        if isinstance(obj, Tensor):
            s = obj.shape
            fields = {"channels": s[0], "shape": tuple(s), "rank": len(s)}
            if len(s) == 3:
                fields.update(height=s[1], width=s[2])
            if e.name in fields:
                return fields[e.name]
            raise self.error(f"a tensor {fmt_shape(s)} has no attribute '{e.name}'{suggest(e.name, fields)}"
                             f" (it has: {', '.join(fields)})", e.loc)
        raise self.error(f"{describe_value(obj)} has no attribute '{e.name}'", e.loc)

    def eval_Index(self, e, env):
        obj = self.eval(e.obj, env)
        i = self.eval(e.index, env)
        if not isinstance(obj, (tuple, range)):
            raise self.error(f"cannot index {describe_value(obj)}", e.loc)
        if not is_int(i):
            raise self.error(f"list index must be an integer, got {describe_value(i)}", loc_of(e.index))
        if not -len(obj) <= i < len(obj):
            raise self.error(f"index {i} out of range for a list of {len(obj)}", loc_of(e.index))
        return obj[i]

    def eval_Unary(self, e, env):
        v = self.eval(e.operand, env)
        if e.op == "not":
            return not self.truth(v, loc_of(e.operand))
        if is_num(v):
            return -v
        if isinstance(v, Tensor):
            return self.make_node("scale", [v], {"factor": -1.0}, e.loc, None, "neg")
        raise self.error(f"cannot negate {describe_value(v)}", e.loc)

    def eval_BinOp(self, e, env):
        if e.op in ("and", "or"):
            left = self.truth(self.eval(e.left, env), loc_of(e.left))
            if (e.op == "and" and not left) or (e.op == "or" and left):
                return left
            return self.truth(self.eval(e.right, env), loc_of(e.right))
        a = self.eval(e.left, env)
        b = self.eval(e.right, env)
        return self.binop(e.op, a, b, e.loc)

    def binop(self, op, a, b, loc):
        ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
        if ta or tb:
            return self.tensor_binop(op, a, b, loc)
        if op in ("==", "!=", "<", "<=", ">", ">=") and (is_sized(a) or is_sized(b)):
            self.charge_size(a, loc)  # a comparison may visit every item (of nested lists too)
            self.charge_size(b, loc)
        if op in ("==", "!="):
            eq = freeze(a) == freeze(b) and type(a) is type(b) or (is_num(a) and is_num(b) and a == b)
            return eq if op == "==" else not eq
        if op in ("<", "<=", ">", ">="):
            if not ((is_num(a) and is_num(b)) or (isinstance(a, str) and isinstance(b, str))):
                raise self.error(f"cannot compare {describe_value(a)} with {describe_value(b)}", loc)
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        if op == "+" and any(isinstance(a, t) and isinstance(b, t) for t in (tuple, str)):
            self.check_concat(a, b, loc)
            return a + b
        if op == "*" and isinstance(a, tuple) and is_int(b):
            self.check_repeat(len(a), b, loc)
            return a * b
        if not (is_num(a) and is_num(b)):
            raise self.error(f"cannot apply '{op}' to {describe_value(a)} and {describe_value(b)}", loc)
        try:
            if op == "+":
                r = a + b
            elif op == "-":
                r = a - b
            elif op == "*":
                r = a * b
            elif op == "/":
                r = a / b
            elif op == "//":
                r = a // b
            elif op == "%":
                r = a % b
            elif op == "**":
                self.check_power(a, b, loc)
                r = a ** b
            else:  # pragma: no cover
                raise AssertionError(op)
        except ZeroDivisionError:
            raise self.error("division by zero", loc) from None
        except OverflowError:
            raise self.error("number too large", loc) from None
        return self.check_num(r, loc)

    def tensor_binop(self, op, a, b, loc):
        """An operator with a tensor operand: an elementwise node between two tensors, a `scale`
        node for a tensor times (or divided by) a number, a `shift` node for a number added to or
        subtracted from a tensor, and for a number minus a tensor (a highway gate's `1 - t`) the
        tensor negated, then shifted: `-t + 1`, which is `1 - t` exactly in floating point."""
        ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
        if ta and tb and op in TENSOR_OPS:
            return self.make_node(TENSOR_OPS[op], [a, b], {}, loc, None, TENSOR_OPS[op])
        if op in ("+", "-") and ta and is_num(b):
            return self.make_node("shift", [a], {"offset": float(b if op == "+" else -b)}, loc, None, "shift")
        if op == "+" and is_num(a) and tb:
            return self.make_node("shift", [b], {"offset": float(a)}, loc, None, "shift")
        if op == "-" and is_num(a) and tb:
            negated = self.make_node("scale", [b], {"factor": -1.0}, loc, None, "neg")
            return self.make_node("shift", [negated], {"offset": float(a)}, loc, None, "shift")
        if op == "*" and is_num(b) and ta:
            return self.make_node("scale", [a], {"factor": self.check_num(float(b), loc)}, loc, None, "scale")
        if op == "*" and is_num(a) and tb:
            return self.make_node("scale", [b], {"factor": self.check_num(float(a), loc)}, loc, None, "scale")
        if op == "/" and is_num(b) and ta and b != 0:
            return self.make_node("scale", [a], {"factor": self.check_num(1.0 / b, loc)}, loc, None, "scale")
        raise self.error(f"cannot apply '{op}' to {describe_value(a)} and {describe_value(b)}", loc)

    def truth(self, v, loc) -> bool:
        if isinstance(v, Tensor):
            raise self.error("a tensor is neither true nor false; compare its shape, e.g. x.channels == 64", loc)
        if isinstance(v, (tuple, range, str)):
            raise self.error(f"{describe_value(v)} is neither true nor false", loc)
        return bool(v)
