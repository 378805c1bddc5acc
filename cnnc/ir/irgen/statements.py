"""Statements and control flow: the network's body and the blocks' bodies, run in order.

`name = expr` binds, `for` unrolls (every trip a step of the budget), `if`/`elif`/`else` is
decided at expansion time, `return` ends a block, `output` names a network result. `run` is
the entry: constants, network parameters (defaults, under a preset's values, under overrides),
the header's `init` clause, the body, and the checks that a network has an input and an output.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from cnnc.diagnostics import CnncError, suggest
from cnnc.frontend import ast
from cnnc.frontend.ast import loc_of
from cnnc.frontend.loader import preset_values
from cnnc.ir.graph import Graph, Init, Output, live_scopes
from cnnc.ir.schemes import (SCHEMES, WITHIN, check_named_layers, check_within, normalize_option, residual_norms,
                              transform_gates)
from cnnc.ir.ops import ALIASES, LIST_OPS, OPS, OpError, lookup, normalize
from cnnc.ir.values import Tensor, describe_value, freeze

from .builtins import BUILTINS
from .calls import Return, signature
from .recovery import POISON, Skipped, Stop


@dataclass(frozen=True)
class OverridesBy:
    """Where the parameter overrides came from, for the words of their errors: the command
    line's `--set` (`api=None`), or the keyword arguments of an API function (`api="cnnc.compile()"`)."""

    api: str | None = None

    def unknown(self, name: str, network: str, hint: str) -> str:
        if self.api is None:
            return f"--set: network '{network}' has no parameter '{name}'{hint}"
        return f"{self.api}: keyword '{name}' is not a parameter of network '{network}'{hint}"

    def bad_value(self, name: str, message: str) -> str:
        return f"--set {name}: {message}" if self.api is None else f"{self.api}: keyword '{name}': {message}"

    def or_give(self, name: str) -> str:
        return f" or pass --set {name}=..." if self.api is None else f" or pass {name}=... to {self.api}"


COMMAND_LINE = OverridesBy()


def _as_spec_value(v):
    """An override as the language holds it: a Python list (`cnnc.compile(spec, layers=[2, 2])`)
    as the tuple a list literal evaluates to, so it indexes and compares like one."""
    if isinstance(v, list):
        return tuple(_as_spec_value(x) for x in v)
    return v


class Statements:
    """exec per statement, and the network entry (a mixin of the Interpreter)."""

    def run(self, overrides: dict) -> Graph:
        """The graph; or, where anything failed, every error found, as one CnncError (its `also`)."""
        try:
            graph = self._run(overrides)
        except Stop:
            raise self.collected() from None
        except RecursionError:
            # the innermost call being expanded (or else the last expression reached) is where the
            # nesting went too deep
            where = self.last_call.loc if self.last_call is not None else self.last_loc
            raise self.collected(CnncError("spec is nested too deeply (expressions or block calls)", where)) from None
        if self.errors:
            raise self.collected()
        assert graph is not None and not self.failures, "a failure without an error"
        return graph

    def _run(self, overrides: dict) -> Graph | None:
        """The graph, or None where something failed (each failure recorded, recovery.py)."""
        net, preset = self.prog.network, self.prog.preset
        for c in self.prog.consts:
            try:
                if c.name in self.globals:
                    raise CnncError(f"constant '{c.name}' is defined twice", c.loc)
                self.globals[c.name] = self.eval(c.value, self.globals)
            except (CnncError, Skipped) as e:
                self.failed(e if isinstance(e, CnncError) else None)
                self.globals.setdefault(c.name, POISON)
        env: dict = {}
        names = [p.name for p in net.params]
        given = dict(overrides)
        if preset is not None:  # a catalog entry: its values, under those given
            overrides = {**preset_values(preset), **overrides}
        for k in given:
            if k not in names:
                hint = suggest(k, names)
                known = ", ".join(names) if names else "none"
                self.failed(CnncError(self.overrides_by.unknown(k, net.name, hint) + f" (its parameters: {known})"))
        used = []
        for p in net.params:
            if p.name in env:
                self.failed(CnncError(f"parameter '{p.name}' is listed twice", p.loc))
                continue
            try:
                env[p.name] = self.parameter(p, overrides, given, env)
                used.append((p.name, freeze(env[p.name])))
            except (CnncError, Skipped) as e:
                self.failed(e if isinstance(e, CnncError) else None)
                env[p.name] = POISON
        init = None
        if net.init is not None:
            try:
                init = self.init_clause(net.init, env)
            except (CnncError, Skipped) as e:
                self.failed(e if isinstance(e, CnncError) else None)
        try:
            self.exec_body(net.body, env)
        except Return as r:  # pragma: no cover - rejected in exec
            raise AssertionError(r)
        if self.failures:  # what the network must have may be missing only because of them
            return None
        if not any(n.op == "input" for n in self.nodes):
            raise CnncError(f"network '{net.name}' has no input; add e.g. `x = input(3, 224, 224)`", net.loc)
        if not self.outputs:
            raise CnncError(f"network '{net.name}' has no output; add e.g. `output logits = x`", net.loc)
        if init is not None and init.options and dict(init.options).get("zero_init_residual"):
            init = replace(init, zero_norms=residual_norms(self.nodes, init.loc))
        if init is not None and init.scheme == "highway":
            init = replace(init, gates=transform_gates(self.nodes, init.loc))
        if init is not None:
            check_named_layers(init, self.nodes)
        g = Graph(preset.name if preset is not None else net.name, net.loc.file, tuple(used),
                  tuple(self.nodes), tuple(self.outputs), tuple(live_scopes(self.scopes, self.nodes)), init)
        if init is not None and init.within is not None:
            check_within(g, init.loc)
        return g

    def parameter(self, p: ast.Param, overrides: dict, given: dict, env):
        """A network parameter's value: given (`given`: by the caller), the preset's, or its default."""
        preset = self.prog.preset
        if p.name in overrides:
            try:
                return self.check_value(_as_spec_value(overrides[p.name]), None)
            except CnncError as e:
                if p.name not in given:  # the preset's value
                    raise CnncError(f"preset '{preset.name}': {p.name}: {e.message}", preset.loc) from None
                raise CnncError(self.overrides_by.bad_value(p.name, e.message)) from None
        if p.default is None:
            raise CnncError(f"network parameter '{p.name}' has no default; give one"
                            f"{self.overrides_by.or_give(p.name)}", p.loc)
        return self.eval(p.default, env)

    def init_clause(self, c: ast.InitClause, env) -> Init:
        """`init resnet(zero_init_residual=...)`: a scheme of cnnc/ir/schemes.py and its options,
        evaluated among the network's parameters."""
        scheme = SCHEMES.get(c.scheme)
        if scheme is None:
            raise self.error(f"unknown initialisation scheme '{c.scheme}'{suggest(c.scheme, SCHEMES)}", c.loc,
                             (f"the schemes: {', '.join(SCHEMES)}",))
        if c.args:
            raise self.error(f"init {c.scheme} takes options by name, e.g. init resnet(zero_init_residual=true)",
                             loc_of(c.args[0]))
        names = [a.name for a in scheme.options] + ["within"]
        given = {}
        for k in c.kwargs:
            if k.name == "within":  # every scheme's: confine it to one instance (a backbone)
                try:
                    given["within"] = normalize(WITHIN, self.eval(k.value, env), f"init {c.scheme}")
                except OpError as err:
                    raise self.error(err.message, k.loc, err.notes) from None
                continue
            a = next((a for a in scheme.options if a.name == k.name), None)
            if a is None:
                takes = f"its options: {', '.join(names)}" if names else "it takes no options"
                raise self.error(f"init {c.scheme} has no option '{k.name}'{suggest(k.name, names)}", k.loc, (takes,))
            try:
                given[a.name] = normalize_option(a, self.eval(k.value, env), f"init {c.scheme}")
            except OpError as err:
                raise self.error(err.message, k.loc, err.notes) from None
        options = tuple((a.name, given.get(a.name, a.default)) for a in scheme.options)
        return Init(c.scheme, options, c.loc, within=given.get("within"))

    def exec_body(self, body, env):
        """Each statement; one that fails is recorded and poisons what it binds (recovery.py)."""
        for stmt in body:
            try:
                self.exec(stmt, env)
            except CnncError as err:
                self.recover(err, stmt, env)
            except Skipped:
                self.recover(None, stmt, env)

    def exec(self, s, env):
        self.tick(s.loc)
        if isinstance(s, ast.Assign):
            env[s.name] = self.eval(s.value, env)
        elif isinstance(s, ast.Unpack):
            v = self.eval(s.value, env)
            names = ", ".join(s.names)
            if not isinstance(v, (tuple, range)):
                raise self.error(f"cannot unpack {describe_value(v)} into {len(s.names)} names ({names}); "
                                 "only a list unpacks", loc_of(s.value))
            if len(v) != len(s.names):
                raise self.error(f"cannot unpack a list of {len(v)} into {len(s.names)} names ({names})",
                                 loc_of(s.value))
            env.update(zip(s.names, v))
        elif isinstance(s, ast.Defaults):
            self.set_defaults(s, env)
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

    def set_defaults(self, s: ast.Defaults, env):
        """`defaults bn(eps=1e-3)`: every later call of the op expanded before the enclosing block or
        network body ends, in this body or in blocks it calls, takes these values unless it gives
        its own. The values are checked here, against the op's signature."""
        d = lookup(s.op)
        if s.op in self.prog.blocks:
            raise self.error(f"defaults: '{s.op}' is a block; defaults apply to ops", s.loc)
        if d is None or d.arity == "none":
            if d is not None or s.op in LIST_OPS or s.op in BUILTINS:
                raise self.error(f"defaults: '{s.op}' has no arguments to default", s.loc)
            raise self.error(f"defaults: unknown op '{s.op}'{suggest(s.op, list(OPS) + list(ALIASES))}", s.loc)
        if s.args:
            raise self.error("defaults takes keyword arguments only, e.g. defaults bn(eps=1e-3)",
                             loc_of(s.args[0]))
        argnames = [a.name for a in d.args]
        for k in s.kwargs:
            a = next((a for a in d.args if a.name == k.name), None)
            if a is None:
                raise self.error(f"{s.op} has no argument '{k.name}'{suggest(k.name, argnames)}", k.loc,
                                 (signature(d),))
            try:
                self.op_defaults[(d.name, a.name)] = normalize(a, self.eval(k.value, env), s.op)
            except OpError as err:
                raise self.error(err.message, k.loc, err.notes) from None
