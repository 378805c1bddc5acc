"""Calls: ops, blocks and builtins, and the instance names they create.

`x -> conv(64, 3)` or `conv(x, 64, 3)` makes one IR node (its arguments checked against the op's
signature in ops.py, its shape inferred by the op's rule); a block call expands the block's body
in a new naming frame; a builtin computes a value (builtins.py). `(expr) as name` groups what is
created inside under one name.

Naming: every op or block call creates an instance, named after it and counted per frame
(`conv1`, `bottleneck3`), or explicitly with `as name` / `as "block{i}"`. A name is used once per
frame; the dotted path of frames (`layer3.bottleneck2.conv1`) names modules, summary rows and
render clusters.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from cnnc.diagnostics import Loc, Note, suggest
from cnnc.frontend import ast
from cnnc.frontend.ast import loc_of
from cnnc.ir.graph import Node, Scope
from cnnc.ir.ops import ALIASES, LIST_OPS, OPS, REQUIRED, ListOpDef, OpError, lookup, normalize
from cnnc.ir.values import Tensor, describe_value, fmt_shape, is_int

from .builtins import BUILTINS
from .recovery import Abandoned, Skipped

FLAT = "_"  # `x -> block(...) as _`: a call that adds no level to instance paths


class Return(Exception):
    """`return value`: unwinds a block's body to its call."""

    def __init__(self, value):
        self.value = value


@dataclass
class Frame:
    """A naming scope: the network root, a block instance or a labelled group."""

    path: str  # prefix ending in '.', or '' at the root
    counters: dict = field(default_factory=dict)
    names: dict = field(default_factory=dict)  # name -> Loc of the first use


@dataclass
class Active:
    """A block being expanded (for notes that say where an error happened)."""

    block: str
    path: str
    call_loc: Loc
    flat: bool = False  # called `as _`: its contents are named in the caller's scope (`path`)


class Calls:
    """Op, block and builtin calls, groups and instance naming (a mixin of the Interpreter)."""

    def eval_Call(self, e, env):
        return self.call(e, env)

    def eval_Pipe(self, e, env):
        v = self.eval(e.head, env)
        for step in e.steps:
            v = self.call(step, env, piped=v)
        return v

    def eval_Group(self, e, env):
        name = self.label_name(e.label, env)
        if name == FLAT:
            raise self.error(f"`as {FLAT}` applies to block calls (their contents are named in the caller's "
                             "scope); a group adds a level by its name: leave out `( ) as` for none", e.label.loc)
        path = self.claim(name, e.label.loc)
        self.check_scope_budget(e.label.loc)
        self.scopes.append(Scope(path, "group", name, e.label.loc))
        self.frames.append(Frame(path + "."))
        try:
            return self.eval(e.body, env)
        finally:
            self.frames.pop()

    def call(self, c: ast.Call, env, piped=None):
        self.tick(c.loc)
        self.last_call = c
        pos = [(piped, c.loc)] if piped is not None else []
        pos += [(self.eval(a, env), loc_of(a)) for a in c.args]
        kw = {k.name: (self.eval(k.value, env), k.loc) for k in c.kwargs}
        if c.func in BUILTINS:
            if c.label is not None:
                raise self.error(f"'{c.func}' computes a value and creates no instance to name", c.label.loc)
            return self.builtin(c, pos, kw)
        if c.func in self.prog.blocks:
            return self.expand_block(self.prog.blocks[c.func], pos, kw, c, env)
        d = lookup(c.func) or LIST_OPS.get(c.func)
        if d is None:
            cands = list(OPS) + list(ALIASES) + list(LIST_OPS) + list(self.prog.blocks) + list(BUILTINS)
            raise self.error(f"unknown op or block '{c.func}'{suggest(c.func, cands)}", c.loc)
        label = (self.label_name(c.label, env), c.label.loc) if c.label else None
        if label is not None and label[0] == FLAT:
            raise self.error(f"`as {FLAT}` applies to block calls (their contents are named in the caller's "
                             f"scope); {c.func} is an op, whose instance always has a name", c.label.loc)
        if isinstance(d, ListOpDef):
            return self.list_op_call(d, pos, kw, c, label)
        return self.op_call(d, pos, kw, c, label)

    # ---- ops -------------------------------------------------------------------------

    def op_call(self, d, pos, kw, c: ast.Call, label):
        if d.arity == "none":
            return self.input_call(pos, kw, c, label)
        tensors, final = self.bind_op(d, pos, kw, c)
        return self.make_node(d.name, tensors, final, c.loc, label, c.func)

    def list_op_call(self, d, pos, kw, c: ast.Call, label):
        """split(x, 2): one `d.part_op` node per part, named `<instance>_0`, `<instance>_1`, ...
        after the call's instance name (`split1`, or the label); the value is their list."""
        tensors, final = self.bind_op(d, pos, kw, c)
        items = tuple((a.name, final[a.name]) for a in d.args)
        try:
            parts = d.parts(items, [t.shape for t in tensors])
        except OpError as err:
            raise self.error(err.message, c.loc, ["input shape: " + fmt_shape(tensors[0].shape)] + err.notes) from None
        if label is not None:
            base = self.claim(*label).rpartition(".")[2]
        else:
            base = self.auto_name(c.func)
        loc = label[1] if label is not None else c.loc
        return tuple(self.make_node(d.part_op, tensors, attrs, c.loc, (f"{base}_{i}", loc), c.func)
                     for i, attrs in enumerate(parts))

    def bind_op(self, d, pos, kw, c: ast.Call):
        """The tensor inputs and the normalised arguments of an op call, checked against the op's
        signature; arguments not given come from `defaults` statements in force, else the op's own."""
        name = c.func
        if (d.name, None) in self.op_defaults:  # a failed `defaults` of this op is in force (recovery.py)
            raise Skipped
        # tensor inputs
        if d.arity == "many" and len(pos) == 1 and isinstance(pos[0][0], tuple):
            self.check_inputs(name, len(pos[0][0]), pos[0][1])
            pos = [(v, pos[0][1]) for v in pos[0][0]] + pos[1:]
        want = {"one": 1, "two": 2}.get(d.arity)
        k = 0
        while k < len(pos) and isinstance(pos[k][0], Tensor) and (want is None or k < want):
            k += 1
        tensors, pos = [v for v, _ in pos[:k]], pos[k:]
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
                             (signature(d),))
        attrs = {}
        locs = {}
        for (v, loc), a in zip(pos, d.args):
            attrs[a.name], locs[a.name] = v, loc
        argnames = [a.name for a in d.args]
        for k, (v, loc) in kw.items():
            if k not in argnames:
                raise self.error(f"{name} has no argument '{k}'{suggest(k, argnames)}", loc, (signature(d),))
            if k in attrs:
                raise self.error(f"argument '{k}' of {name} given twice", loc)
            attrs[k], locs[k] = v, loc
        final = {}
        for a in d.args:
            if a.name in attrs:
                try:
                    final[a.name] = normalize(a, attrs[a.name], name)
                except OpError as err:
                    raise self.error(err.message, locs[a.name], err.notes) from None
            elif (d.name, a.name) in self.op_defaults:
                final[a.name] = self.op_defaults[(d.name, a.name)]
            elif a.default is REQUIRED:
                raise self.error(f"{name} needs argument '{a.name}'", c.loc, (signature(d),))
            else:
                final[a.name] = normalize(a, a.default, name)
        return tensors, final

    def input_call(self, pos, kw, c: ast.Call, label):
        """input(3, 224, 224): a graph input, in the network only."""
        if self.active:
            raise self.error("input() belongs in the network, not inside a block", c.loc)
        if kw:
            raise self.error("input takes only its dimensions, e.g. input(3, 224, 224)",
                             next(iter(kw.values()))[1])
        if not pos:
            raise self.error("input needs its dimensions, e.g. input(3, 224, 224)", c.loc)
        dims = []
        for v, loc in pos:
            if not is_int(v) or v < 1:
                raise self.error(f"input dimensions must be positive integers, got {describe_value(v)}", loc)
            dims.append(v)
        return self.make_node("input", [], {"dims": tuple(dims)}, c.loc, label, c.func)

    def make_node(self, op, inputs, attrs: dict, loc, label, auto):
        """A new IR node: its shape from the op's rule, its instance path from `label` (name,
        loc) or else the automatic name `auto`N."""
        self.check_node_budget(loc)
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
        self.check_tensor(op, shape, loc)
        if label is not None:
            name, label_loc = label
            path = self.claim(name, label_loc)
        else:
            name = self.auto_name(auto)
            path = self.frames[-1].path + name
            self.check_name(name, path, loc)
        node = Node(len(self.nodes), op, tuple(t.node for t in inputs), items, shape, path, loc)
        self.check_params(op, d.params(items, in_shapes, shape), loc)
        self.nodes.append(node)
        return Tensor(node.id, shape)

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
        flat = label == FLAT  # `as _`: no instance level; the contents are named in the caller's frame
        if flat:
            path = self.frames[-1].path.rstrip(".")
        else:
            name = label if label is not None else self.auto_name(c.func)
            path = self.claim(name, c.label.loc) if label is not None else self.frames[-1].path + name
            self.check_name(name, path, c.loc)
            self.check_scope_budget(c.loc)
            self.scopes.append(Scope(path, "block", b.name, c.loc))
            self.frames.append(Frame(path + "."))
        self.active.append(Active(b.name, path, c.loc, flat))
        saved_defaults = self.op_defaults
        self.op_defaults = saved_defaults.new_child()  # a block's `defaults` end with its body
        try:
            for p in b.params:
                if p.name not in env:
                    if p.default is None:
                        raise self.error(f"block '{b.name}' needs argument '{p.name}'", c.loc)
                    env[p.name] = self.eval(p.default, env)
            failures = self.failures
            try:
                self.exec_body(b.body, env)
            except Return as r:
                return r.value
            except Abandoned:  # its return failed (recovery.py): the call's value is unknown
                raise Skipped from None
            if self.failures > failures:  # a failed statement may have been its return, or held it
                raise Skipped
            raise self.error(f"block '{b.name}' ended without `return`", b.loc)
        finally:
            self.op_defaults = saved_defaults
            if not flat:
                self.frames.pop()
            self.active.pop()

    # ---- naming ----------------------------------------------------------------------

    def label_name(self, label: ast.Label, env) -> str:
        if not label.template:
            return label.text

        def fill(m):
            part = m.group(1)
            v = self.eval(_label_part(part, label.loc), env)
            if not (is_int(v) or isinstance(v, str)):
                raise self.error(f"label part '{{{part}}}' must be an integer or string, got {describe_value(v)}",
                                 label.loc)
            return str(v)

        text = re.sub(r"\{([^{}]*)\}", fill, label.text)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", text):  # `-`: torchvision's RegNet names its blocks "block1-0"
            raise self.error(f'label "{text}" must contain only letters, digits, _ and -', label.loc)
        return text

    def auto_name(self, base: str) -> str:
        """`conv1`, `conv2`, ...: the call's name and a count per frame, with `_` between them when
        the name ends in a digit (`se_v3_1`, `relu6_2`), so the count stays readable."""
        f = self.frames[-1]
        sep = "_" if base[-1:].isdigit() else ""
        while True:
            f.counters[base] = f.counters.get(base, 0) + 1
            name = f"{base}{sep}{f.counters[base]}"
            if name not in f.names:
                f.names[name] = None
                return name

    def claim(self, name: str, loc: Loc) -> str:
        f = self.frames[-1]
        self.check_name(name, f.path + name, loc)
        if name in f.names:
            first = f.names[name]
            err = self.error(f"instance name '{name}' is already used in this scope", loc)
            if first is not None:
                err.notes.insert(0, Note("first used here", first))
            else:
                err.notes.insert(0, Note("an unnamed instance was given this name automatically; pick another", None))
            raise err
        f.names[name] = loc
        return f.path + name


@lru_cache(maxsize=4096)
def _label_part(text: str, loc: Loc):
    """The expression of a `{...}` part of a label template, parsed once (a label in a loop is
    filled on every trip)."""
    from cnnc.frontend.parser import parse_expr

    return parse_expr(text, loc)


def signature(d) -> str:
    """'signature: conv(x, out, kernel, stride=1, ...)', a note under argument errors."""
    parts = []
    for a in d.args:
        parts.append(a.name if a.default is REQUIRED else f"{a.name}={_fmt_default(a.default)}")
    inp = {"one": "x", "two": "a, b", "many": "x1, x2, ...", "none": ""}[d.arity]
    return f"signature: {d.name}({', '.join([inp] * bool(inp) + parts)})"


def _fmt_default(v):
    return "true" if v is True else "false" if v is False else "none" if v is None else repr(v)
