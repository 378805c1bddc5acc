"""Statements and control flow: the network's body and the blocks' bodies, run in order.

`name = expr` binds, `for` unrolls (every trip a step of the budget), `if`/`elif`/`else` is
decided at expansion time, `return` ends a block, `output` names a network result. `run` is
the entry: constants, network parameters (defaults or overrides), the body, and the checks
that a network has an input and an output.
"""
from __future__ import annotations

from cnnc.diagnostics import CnncError, suggest
from cnnc.frontend import ast
from cnnc.frontend.ast import loc_of
from cnnc.ir.graph import Graph, Output, live_scopes
from cnnc.ir.values import Tensor, describe_value, freeze

from .calls import Return


class Statements:
    """exec per statement, and the network entry (a mixin of the Interpreter)."""

    def run(self, overrides: dict) -> Graph:
        try:
            return self._run(overrides)
        except RecursionError:
            # the innermost call being expanded (or else the last expression reached) is where the
            # nesting went too deep
            where = self.last_call.loc if self.last_call is not None else self.last_loc
            raise CnncError("spec is nested too deeply (expressions or block calls)", where) from None

    def _run(self, overrides: dict) -> Graph:
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
                try:
                    env[p.name] = self.check_value(overrides[p.name], None)
                except CnncError as e:
                    raise CnncError(f"--set {p.name}: {e.message}") from None
            elif p.default is None:
                raise CnncError(f"network parameter '{p.name}' has no default; give one or pass --set {p.name}=...",
                                p.loc)
            else:
                env[p.name] = self.eval(p.default, env)
            used.append((p.name, freeze(env[p.name])))
        try:
            self.exec_body(net.body, env)
        except Return as r:  # pragma: no cover - rejected in exec
            raise AssertionError(r)
        if not any(n.op == "input" for n in self.nodes):
            raise CnncError(f"network '{net.name}' has no input; add e.g. `x = input(3, 224, 224)`", net.loc)
        if not self.outputs:
            raise CnncError(f"network '{net.name}' has no output; add e.g. `output logits = x`", net.loc)
        return Graph(net.name, net.loc.file, tuple(used), tuple(self.nodes), tuple(self.outputs),
                     tuple(live_scopes(self.scopes, self.nodes)))

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
                raise self.error(f"for needs a range or a list, got {describe_value(seq)}", loc_of(s.iter))
            for v in seq:
                self.tick(s.loc)
                env[s.var] = v
                self.exec_body(s.body, env)
        elif isinstance(s, ast.If):
            for cond, body in s.branches:
                if self.truth(self.eval(cond, env), loc_of(cond)):
                    self.exec_body(body, env)
                    return
            self.exec_body(s.orelse, env)
        elif isinstance(s, ast.Return):
            if not self.active:
                raise self.error("return outside a block; a network names its results with `output name = ...`",
                                 s.loc)
            raise Return(self.eval(s.value, env))
        elif isinstance(s, ast.Output):
            if self.active:
                raise self.error("output inside a block; blocks hand back their result with `return`", s.loc)
            v = self.eval(s.value, env)
            if not isinstance(v, Tensor):
                raise self.error(f"output '{s.name}' must be a tensor, got {describe_value(v)}", loc_of(s.value))
            if s.name in self.output_names:
                raise self.error(f"output '{s.name}' is defined twice", s.loc, ())
            self.output_names.add(s.name)
            self.outputs.append(Output(s.name, v.node, s.train_only, s.loc))
        else:  # pragma: no cover
            raise AssertionError(s)
