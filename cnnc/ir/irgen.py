"""Stage 2: AST -> IR, by interpreting the spec.

Blocks are expanded at every call, loops unrolled and conditionals decided, so
the result is a flat dataflow graph. Shapes are inferred as each node is made
(by the op's shape rule in ops.py), because specs may read a tensor's shape
(`x.channels`) to decide what comes next.

Limits keep every spec finite: a node budget, a step budget for loops, a
tensor-size ceiling and an integer ceiling. Each is reported at the line that
crossed it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from cnnc.frontend import ast
from cnnc.diagnostics import CnncError, Loc, suggest
from .graph import Graph, Node, Output, Scope, live_scopes
from cnnc.frontend.loader import Program
from .ops import ALIASES, OPS, REQUIRED, OpError, lookup, normalize_arg
from .values import Tensor, describe_value, fmt_shape

MAX_NODES = 100_000
MAX_STEPS = 2_000_000
MAX_ELEMENTS = 2**32  # per sample, per tensor
MAX_PARAMS = 10**11  # per node
MAX_INT = 2**62
MAX_LIST = 1_000_000


class _Return(Exception):
    def __init__(self, value):
        self.value = value


@dataclass
class _Frame:
    """A naming scope: the network root, a block instance or a labelled group."""

    path: str  # prefix ending in '.', or '' at the root
    counters: dict = field(default_factory=dict)
    names: dict = field(default_factory=dict)  # name -> Loc of the first use


@dataclass
class _Active:
    block: str
    path: str
    call_loc: Loc


def generate(prog: Program, overrides: dict | None = None) -> Graph:
    return _Expander(prog).run(dict(overrides or {}))


def _too_large(negative: bool) -> str:
    return f"integer too large ({'< -' if negative else '> '}2^62)"


class _Expander:
    def __init__(self, prog: Program):
        self.prog = prog
        self.nodes: list[Node] = []
        self.scopes: list[Scope] = []
        self.outputs: list[Output] = []
        self.frames: list[_Frame] = [_Frame("")]
        self.active: list[_Active] = []
        self.globals: dict = {}
        self.steps = 0
        self.in_network = False
        self.last_call = None  # the call being expanded most recently, for "nested too deeply"

    # ---- entry ---------------------------------------------------------------

    def run(self, overrides: dict) -> Graph:
        net = self.prog.network
        for c in self.prog.consts:
            if c.name in self.globals:
                raise CnncError(f"constant '{c.name}' is defined twice", c.loc)
            self.globals[c.name] = self.eval(c.value, self.globals)
        env: dict = {}
        names = [p.name for p in net.params]
        for k in overrides:
            if k not in names:
                hint = suggest(k, names)
                known = ", ".join(names) if names else "none"
                raise CnncError(f"--set: network '{net.name}' has no parameter '{k}'{hint} (its parameters: {known})")
        used = []
        for p in net.params:
            if p.name in env:
                raise CnncError(f"parameter '{p.name}' is listed twice", p.loc)
            if p.name in overrides:
                env[p.name] = overrides[p.name]
            elif p.default is None:
                raise CnncError(f"network parameter '{p.name}' has no default; give one or pass --set {p.name}=...",
                                p.loc)
            else:
                env[p.name] = self.eval(p.default, env)
            used.append((p.name, _freeze(env[p.name])))
        self.in_network = True
        try:
            self.exec_body(net.body, env)
        except _Return as r:  # pragma: no cover - rejected in exec
            raise AssertionError(r)
        except RecursionError:
            # the innermost call being expanded is where the nesting went too deep
            where = self.last_call.loc if self.last_call is not None else net.loc
            raise CnncError("spec is nested too deeply (expressions or block calls)", where) from None
        if not any(n.op == "input" for n in self.nodes):
            raise CnncError(f"network '{net.name}' has no input; add e.g. `x = input(3, 224, 224)`", net.loc)
        if not self.outputs:
            raise CnncError(f"network '{net.name}' has no output; add e.g. `output logits = x`", net.loc)
        return Graph(net.name, net.loc.file, tuple(used), tuple(self.nodes), tuple(self.outputs),
                     tuple(live_scopes(self.scopes, self.nodes)))

    # ---- errors --------------------------------------------------------------

    def error(self, message: str, loc: Loc, notes=()) -> CnncError:
        err = CnncError(message, loc)
        for n in notes:
            if n:
                err.note(n)
        for a in reversed(self.active):
            err.note(f"in '{a.path}' (an instance of block '{a.block}'), called here", a.call_loc)
        return err

    def tick(self, loc: Loc):
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise self.error(f"spec takes more than {MAX_STEPS:,} steps to expand; is a loop too long?", loc)

    # ---- statements ------------------------------------------------------------

    def exec_body(self, body, env):
        for stmt in body:
            self.exec(stmt, env)

    def exec(self, s, env):
        self.tick(s.loc)
        if isinstance(s, ast.Assign):
            env[s.name] = self.eval(s.value, env)
        elif isinstance(s, ast.For):
            seq = self.eval(s.iter, env)
            if not isinstance(seq, (range, tuple)):
                raise self.error(f"for needs a range or a list, got {describe_value(seq)}", _loc(s.iter))
            for v in seq:
                self.tick(s.loc)
                env[s.var] = v
                self.exec_body(s.body, env)
        elif isinstance(s, ast.If):
            for cond, body in s.branches:
                if self.truth(self.eval(cond, env), _loc(cond)):
                    self.exec_body(body, env)
                    return
            self.exec_body(s.orelse, env)
        elif isinstance(s, ast.Return):
            if not self.active:
                raise self.error("return outside a block; a network names its results with `output name = ...`",
                                 s.loc)
            raise _Return(self.eval(s.value, env))
        elif isinstance(s, ast.Output):
            if self.active:
                raise self.error("output inside a block; blocks hand back their result with `return`", s.loc)
            v = self.eval(s.value, env)
            if not isinstance(v, Tensor):
                raise self.error(f"output '{s.name}' must be a tensor, got {describe_value(v)}", _loc(s.value))
            for o in self.outputs:
                if o.name == s.name:
                    raise self.error(f"output '{s.name}' is defined twice", s.loc, ())
            self.outputs.append(Output(s.name, v.node, s.train_only, s.loc))
        else:  # pragma: no cover
            raise AssertionError(s)

    # ---- expressions -------------------------------------------------------------

    def eval(self, e, env):
        m = getattr(self, "eval_" + type(e).__name__)
        return m(e, env)

    def eval_Num(self, e, env):
        return e.value

    def eval_Str(self, e, env):
        return e.value

    def eval_Const(self, e, env):
        return e.value

    def eval_Name(self, e, env):
        if e.id in env:
            return env[e.id]
        if e.id in self.globals:
            return self.globals[e.id]
        hint = suggest(e.id, list(env) + list(self.globals))
        extra = ""
        if not hint and (lookup(e.id) or e.id in self.prog.blocks):
            extra = f"; '{e.id}' is an op or block: call it, e.g. x -> {e.id}(...)"
        raise self.error(f"unknown name '{e.id}'{hint}{extra}", e.loc)

    def eval_List(self, e, env):
        return tuple(self.eval(x, env) for x in e.items)

    def eval_IfExpr(self, e, env):
        c = self.eval(e.cond, env)
        return self.eval(e.then if self.truth(c, _loc(e.cond)) else e.orelse, env)

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
        if not _is_int(i):
            raise self.error(f"list index must be an integer, got {describe_value(i)}", _loc(e.index))
        if not -len(obj) <= i < len(obj):
            raise self.error(f"index {i} out of range for a list of {len(obj)}", _loc(e.index))
        return obj[i]

    def eval_Unary(self, e, env):
        v = self.eval(e.operand, env)
        if e.op == "not":
            return not self.truth(v, _loc(e.operand))
        if _is_num(v):
            return -v
        if isinstance(v, Tensor):
            return self.make_node("scale", [v], {"factor": -1.0}, e.loc, None, "neg")
        raise self.error(f"cannot negate {describe_value(v)}", e.loc)

    def eval_BinOp(self, e, env):
        if e.op in ("and", "or"):
            left = self.truth(self.eval(e.left, env), _loc(e.left))
            if (e.op == "and" and not left) or (e.op == "or" and left):
                return left
            return self.truth(self.eval(e.right, env), _loc(e.right))
        a = self.eval(e.left, env)
        b = self.eval(e.right, env)
        return self.binop(e.op, a, b, e.loc)

    def binop(self, op, a, b, loc):
        ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
        if ta or tb:
            names = {"+": "add", "-": "sub", "*": "mul"}
            if ta and tb and op in names:
                return self.make_node(names[op], [a, b], {}, loc, None, names[op])
            if op == "*" and _is_num(b) and ta:
                return self.make_node("scale", [a], {"factor": float(b)}, loc, None, "scale")
            if op == "*" and _is_num(a) and tb:
                return self.make_node("scale", [b], {"factor": float(a)}, loc, None, "scale")
            if op == "/" and _is_num(b) and ta and b != 0:
                return self.make_node("scale", [a], {"factor": 1.0 / b}, loc, None, "scale")
            raise self.error(f"cannot apply '{op}' to {describe_value(a)} and {describe_value(b)}", loc)
        if op in ("==", "!="):
            eq = _freeze(a) == _freeze(b) and type(a) is type(b) or (_is_num(a) and _is_num(b) and a == b)
            return eq if op == "==" else not eq
        if op in ("<", "<=", ">", ">="):
            if not ((_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str))):
                raise self.error(f"cannot compare {describe_value(a)} with {describe_value(b)}", loc)
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        if op == "+" and isinstance(a, tuple) and isinstance(b, tuple):
            return self.check_list(a + b, loc)
        if op == "+" and isinstance(a, str) and isinstance(b, str):
            return a + b
        if op == "*" and isinstance(a, tuple) and _is_int(b):
            if len(a) * max(b, 0) > MAX_LIST:
                raise self.error(f"list would have more than {MAX_LIST:,} items", loc)
            return a * b
        if not (_is_num(a) and _is_num(b)):
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
                r = self.power(a, b, loc)
            else:  # pragma: no cover
                raise AssertionError(op)
        except ZeroDivisionError:
            raise self.error("division by zero", loc) from None
        except OverflowError:
            raise self.error("number too large", loc) from None
        return self.check_num(r, loc)

    def power(self, a, b, loc):
        """a ** b with Python's semantics, refused where Python would give a complex number or
        an integer of unbounded size (2 ** 10**9 would take minutes before check_num saw it)."""
        if a < 0 and not float(b).is_integer():
            raise self.error(f"({a}) ** {b}: a negative number to a fractional power", loc)
        if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1 and b * math.log2(abs(a)) > 63:
            raise self.error(_too_large(a < 0 and b % 2 == 1), loc)
        return a ** b

    def check_num(self, r, loc):
        if isinstance(r, int) and abs(r) > MAX_INT:
            raise self.error(_too_large(r < 0), loc)
        if isinstance(r, float) and not math.isfinite(r):
            raise self.error(f"arithmetic gives {r}", loc)
        return r

    def check_list(self, v, loc):
        if len(v) > MAX_LIST:
            raise self.error(f"list would have more than {MAX_LIST:,} items", loc)
        return v

    def truth(self, v, loc) -> bool:
        if isinstance(v, Tensor):
            raise self.error("a tensor is neither true nor false; compare its shape, e.g. x.channels == 64", loc)
        if isinstance(v, (tuple, range, str)):
            raise self.error(f"{describe_value(v)} is neither true nor false", loc)
        return bool(v)

    def eval_Group(self, e, env):
        name = self.label_name(e.label, env)
        path = self.claim(name, e.label.loc)
        self.scopes.append(Scope(path, "group", name, e.label.loc))
        self.frames.append(_Frame(path + "."))
        try:
            return self.eval(e.body, env)
        finally:
            self.frames.pop()

    def eval_Pipe(self, e, env):
        v = self.eval(e.head, env)
        for step in e.steps:
            v = self.call(step, env, piped=v)
        return v

    def eval_Call(self, e, env):
        return self.call(e, env)

    # ---- calls -----------------------------------------------------------------

    def call(self, c: ast.Call, env, piped=None):
        self.tick(c.loc)
        self.last_call = c
        pos = [(piped, c.loc)] if piped is not None else []
        pos += [(self.eval(a, env), _loc(a)) for a in c.args]
        kw = {k.name: (self.eval(k.value, env), k.loc) for k in c.kwargs}
        if c.func in BUILTINS:
            if c.label is not None:
                raise self.error(f"'{c.func}' computes a value and creates no instance to name", c.label.loc)
            return self.builtin(c, pos, kw)
        if c.func in self.prog.blocks:
            return self.expand_block(self.prog.blocks[c.func], pos, kw, c, env)
        d = lookup(c.func)
        if d is None:
            cands = list(OPS) + list(ALIASES) + list(self.prog.blocks) + list(BUILTINS)
            raise self.error(f"unknown op or block '{c.func}'{suggest(c.func, cands)}", c.loc)
        label = (self.label_name(c.label, env), c.label.loc) if c.label else None
        return self.op_call(d, pos, kw, c, label)

    def op_call(self, d, pos, kw, c: ast.Call, label):
        name = c.func
        if d.arity == "none":
            if self.active:
                raise self.error("input() belongs in the network, not inside a block", c.loc)
            if kw:
                raise self.error("input takes only its dimensions, e.g. input(3, 224, 224)",
                                 next(iter(kw.values()))[1])
            if not pos:
                raise self.error("input needs its dimensions, e.g. input(3, 224, 224)", c.loc)
            dims = []
            for v, loc in pos:
                if not _is_int(v) or v < 1:
                    raise self.error(f"input dimensions must be positive integers, got {describe_value(v)}", loc)
                dims.append(v)
            return self.make_node("input", [], {"dims": tuple(dims)}, c.loc, label, name)
        # tensor inputs
        if d.arity == "many" and len(pos) == 1 and isinstance(pos[0][0], tuple):
            pos = [(v, pos[0][1]) for v in pos[0][0]] + pos[1:]
        want = {"one": 1, "two": 2}.get(d.arity)
        tensors = []
        while pos and isinstance(pos[0][0], Tensor) and (want is None or len(tensors) < want):
            tensors.append(pos.pop(0)[0])
        if want is not None and len(tensors) < want:
            got = pos[0][0] if pos else None
            what = f"got {describe_value(got)}" if pos else "got none"
            hint = f"write x -> {name}(...) or {name}(x, ...)" if want == 1 else f"write {name}(a, b)"
            raise self.error(f"{name} expects {'a tensor' if want == 1 else 'two tensors'} as input, {what}",
                             pos[0][1] if pos else c.loc, (hint,))
        if d.arity == "many" and not tensors:
            raise self.error(f"{name} expects tensors to join", c.loc)
        for v, loc in pos:
            if isinstance(v, Tensor):
                raise self.error(f"too many tensor inputs to {name}", loc)
        if len(pos) > len(d.args):
            raise self.error(f"{name} takes at most {len(d.args)} argument{'s' if len(d.args) != 1 else ''} "
                             f"besides its input, got {len(pos)}", pos[len(d.args)][1],
                             (_signature(d),))
        attrs = {}
        locs = {}
        for (v, loc), a in zip(pos, d.args):
            attrs[a.name], locs[a.name] = v, loc
        argnames = [a.name for a in d.args]
        for k, (v, loc) in kw.items():
            if k not in argnames:
                raise self.error(f"{name} has no argument '{k}'{suggest(k, argnames)}", loc, (_signature(d),))
            if k in attrs:
                raise self.error(f"argument '{k}' of {name} given twice", loc)
            attrs[k], locs[k] = v, loc
        final = {}
        for a in d.args:
            if a.name in attrs:
                try:
                    final[a.name] = normalize_arg(a.kind, attrs[a.name], name, a.name)
                except OpError as err:
                    raise self.error(err.message, locs[a.name], err.notes) from None
            elif a.default is REQUIRED:
                raise self.error(f"{name} needs argument '{a.name}'", c.loc, (_signature(d),))
            else:
                final[a.name] = a.default if a.default is None else normalize_arg(a.kind, a.default, name, a.name)
        return self.make_node(d.name, tensors, final, c.loc, label, name)

    def make_node(self, op, inputs, attrs: dict, loc, label, auto):
        if len(self.nodes) >= MAX_NODES:
            raise self.error(f"spec expands past the budget of {MAX_NODES:,} nodes; is a loop or depth too large?",
                             loc)
        d = OPS[op]
        items = tuple((a.name, attrs[a.name]) for a in d.args)
        in_shapes = [t.shape for t in inputs]
        try:
            shape = tuple(d.shape(items, in_shapes))
        except OpError as err:
            notes = list(err.notes)
            if in_shapes and "shape" not in err.message and not any("shape" in n for n in notes):
                notes.insert(0, "input shape" + ("s: " if len(in_shapes) > 1 else ": ")
                             + ", ".join(fmt_shape(s) for s in in_shapes))
            raise self.error(err.message, loc, notes) from None
        n_el = math.prod(shape)
        if n_el > MAX_ELEMENTS or min(shape, default=1) < 1:
            raise self.error(f"{op} would make a tensor of shape {fmt_shape(shape)} ({n_el:,} elements per sample); "
                             f"the limit is 2^32", loc)
        if label is not None:
            name, label_loc = label
            path = self.claim(name, label_loc)
        else:
            path = self.frames[-1].path + self.auto_name(auto)
        node = Node(len(self.nodes), op, tuple(t.node for t in inputs), items, shape, path, loc)
        p = d.params(items, in_shapes, shape)
        if p > MAX_PARAMS:
            raise self.error(f"{op} would have {p:,} parameters; the limit is {MAX_PARAMS:,}", loc)
        self.nodes.append(node)
        return Tensor(node.id, shape)

    # ---- naming --------------------------------------------------------------------

    def label_name(self, label: ast.Label, env) -> str:
        if not label.template:
            return label.text

        def fill(m):
            from cnnc.frontend.parser import parse_expr

            part = m.group(1)
            v = self.eval(parse_expr(part, label.loc), env)
            if not (_is_int(v) or isinstance(v, str)):
                raise self.error(f"label part '{{{part}}}' must be an integer or string, got {describe_value(v)}",
                                 label.loc)
            return str(v)

        text = re.sub(r"\{([^{}]*)\}", fill, label.text)
        if not re.fullmatch(r"[A-Za-z0-9_]+", text):
            raise self.error(f'label "{text}" must contain only letters, digits and _', label.loc)
        return text

    def auto_name(self, base: str) -> str:
        f = self.frames[-1]
        while True:
            f.counters[base] = f.counters.get(base, 0) + 1
            name = f"{base}{f.counters[base]}"
            if name not in f.names:
                f.names[name] = None
                return name

    def claim(self, name: str, loc: Loc) -> str:
        f = self.frames[-1]
        if name in f.names:
            first = f.names[name]
            err = self.error(f"instance name '{name}' is already used in this scope", loc)
            if first is not None:
                err.notes.insert(0, _note("first used here", first))
            else:
                err.notes.insert(0, _note("an unnamed instance was given this name automatically; pick another", None))
            raise err
        f.names[name] = loc
        return f.path + name

    # ---- blocks ----------------------------------------------------------------------

    def expand_block(self, b: ast.BlockDef, pos, kw, c: ast.Call, caller_env):
        for a in self.active:
            if a.block == b.name:
                chain = " -> ".join([x.block for x in self.active] + [b.name])
                raise self.error(f"recursive block '{b.name}' ({chain}); blocks cannot call themselves", c.loc)
        names = [p.name for p in b.params]
        if len(pos) > len(names):
            raise self.error(f"block '{b.name}' takes {len(names)} argument{'s' if len(names) != 1 else ''}, "
                             f"got {len(pos)}", pos[len(names)][1], (f"block {b.name}({', '.join(names)})",))
        env: dict = {}
        for (v, _), p in zip(pos, b.params):
            env[p.name] = v
        for k, (v, loc) in kw.items():
            if k not in names:
                raise self.error(f"block '{b.name}' has no parameter '{k}'{suggest(k, names)}", loc,
                                 (f"block {b.name}({', '.join(names)})",))
            if k in env:
                raise self.error(f"argument '{k}' of block '{b.name}' given twice", loc)
            env[k] = v
        label = self.label_name(c.label, caller_env) if c.label else None
        name = label if label is not None else self.auto_name(c.func)
        path = self.claim(name, c.label.loc) if label is not None else self.frames[-1].path + name
        self.scopes.append(Scope(path, "block", b.name, c.loc))
        self.active.append(_Active(b.name, path, c.loc))
        self.frames.append(_Frame(path + "."))
        try:
            for p in b.params:
                if p.name not in env:
                    if p.default is None:
                        raise self.error(f"block '{b.name}' needs argument '{p.name}'", c.loc)
                    env[p.name] = self.eval(p.default, env)
            try:
                self.exec_body(b.body, env)
            except _Return as r:
                return r.value
            raise self.error(f"block '{b.name}' ended without `return`", b.loc)
        finally:
            self.frames.pop()
            self.active.pop()

    # ---- builtins ----------------------------------------------------------------------

    def builtin(self, c, pos, kw):
        fn, arity = BUILTINS[c.func]
        args = [v for v, _ in pos]
        lo, hi = arity
        allowed_kw = {"divisible": ("min",), "round": ()}.get(c.func, ())
        for k, (v, loc) in kw.items():
            if k not in allowed_kw:
                raise self.error(f"{c.func}() takes no argument '{k}'", loc)
        if not lo <= len(args) <= hi:
            n = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise self.error(f"{c.func}() takes {n} argument{'s' if hi != 1 else ''}, got {len(args)}", c.loc)
        for v, loc in pos:
            if c.func not in ("len", "min", "max") and not (_is_num(v) or (c.func == "divisible" and v is None)):
                raise self.error(f"{c.func}() needs numbers, got {describe_value(v)}", loc)
        try:
            r = fn(*args, **{k: v for k, (v, _) in kw.items()})
        except (TypeError, ValueError, OverflowError) as err:
            raise self.error(f"{c.func}(): {err}", c.loc) from None
        if isinstance(r, range) and len(r) > MAX_STEPS:
            raise self.error(f"range of {len(r):,} items is longer than the step budget ({MAX_STEPS:,})", c.loc)
        return self.check_num(r, c.loc) if _is_num(r) else r


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
        if not _is_int(v):
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
        if not all(_is_num(x) for x in a):
            raise ValueError("needs numbers")
        return f(a)
    return g


def _len(v):
    if not isinstance(v, (tuple, range, str)):
        raise ValueError(f"needs a list, got {describe_value(v)}")
    return len(v)


BUILTINS = {
    "ceil": (lambda x: math.ceil(x), (1, 1)),
    "floor": (lambda x: math.floor(x), (1, 1)),
    "round": (lambda x, n=None: round(x, int(n)) if n is not None else round(x), (1, 2)),
    "int": (lambda x: int(x), (1, 1)),
    "float": (lambda x: float(x), (1, 1)),
    "abs": (lambda x: abs(x), (1, 1)),
    "sqrt": (lambda x: math.sqrt(x), (1, 1)),
    "min": (_minmax(min), (1, 99)),
    "max": (_minmax(max), (1, 99)),
    "len": (_len, (1, 1)),
    "range": (_range, (1, 3)),
    "divisible": (_divisible, (1, 2)),
}


def _signature(d) -> str:
    parts = []
    for a in d.args:
        parts.append(a.name if a.default is REQUIRED else f"{a.name}={_fmt_default(a.default)}")
    inp = {"one": "x", "two": "a, b", "many": "x1, x2, ...", "none": ""}[d.arity]
    return f"signature: {d.name}({', '.join([inp] * bool(inp) + parts)})"


def _fmt_default(v):
    return "true" if v is True else "false" if v is False else "none" if v is None else repr(v)


def _note(message, loc):
    from cnnc.diagnostics import Note

    return Note(message, loc)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _freeze(v):
    if isinstance(v, range):
        return tuple(v)
    return v


def _loc(e) -> Loc:
    return getattr(e, "loc", Loc("<unknown>", 0, 0))
