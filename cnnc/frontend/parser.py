"""Stage 1: source text -> AST.

The grammar lives in grammar.lark; the Transformer below only builds AST
dataclasses with their source locations. Lark's parse errors are turned into
located `CnncError`s with a readable list of what was expected.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast
from cnnc.diagnostics import CnncError, Loc, forget_source, line_col, normalize_newlines, register_source, split_lines

GRAMMAR = Path(__file__).with_name("grammar.lark")

# The parser's work and the AST's size grow with the number of tokens (Lark takes tens of
# microseconds and about a kilobyte per token), so a spec and all its imports together may hold
# at most this many; the loader charges every file against one budget before parsing it.
MAX_TOKENS = 40_000
# A number literal longer than this is refused here (Python's int() refuses past 4,300 digits;
# the interpreter refuses any integer past 2^62 anyway).
MAX_NUMBER_LENGTH = 100


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(GRAMMAR.read_text(), parser="lalr", propagate_positions=True, maybe_placeholders=True,
                start=["start", "expr"])


@lru_cache(maxsize=4096)
def parse_expr(text: str, loc: Loc):
    """Parse one expression (a `{...}` part of a label); every node gets `loc`. Cached: a label
    in a loop is filled once per trip, and the AST is immutable."""
    try:
        tree = _lark().parse(text, start="expr")
    except UnexpectedInput:
        raise CnncError(f"cannot read '{{{text}}}' in a label as an expression", loc) from None
    try:
        return _Builder(loc.file, loc).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, CnncError):
            raise e.orig_exc from None
        raise


class NotSpecText(CnncError):
    """The text holds a character no spec holds (a control character): the file is not a spec,
    and its lines are never quoted."""


# C0 control characters other than tab, line feed, carriage return and form feed, and DEL
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def prepare_text(text: str, file: str) -> str:
    """Spec text as the lexer sees it: a leading byte order mark dropped, line breaks as LF.
    Raises NotSpecText (located at the character, never quoted) for a control character."""
    forget_source(file)  # until it is parsed, nothing of it is quoted
    if text.startswith("\ufeff"):
        text = text[1:]
    bad = _CONTROL.search(text)
    if bad:
        line, col = line_col(text, bad.start())
        raise NotSpecText(f"control character U+{ord(bad.group()):04X}: a spec is text", Loc(file, line, col))
    return normalize_newlines(text)


# Approximately the lexer's tokens (comments are matched to be skipped), to count them fast.
_TOKENS = re.compile(r'"[^"\n]*"|#[^\n]*|[A-Za-z0-9_.]+|->|\*\*|//|[=!<>]=|\S')


def count_tokens(text: str, file: str, limit: int = MAX_TOKENS) -> int:
    """The number of tokens in prepared text; past `limit`, an error at the first token over it."""
    n = 0
    for m in _TOKENS.finditer(text):
        if m.group().startswith("#"):
            continue
        n += 1
        if n > limit:
            raise CnncError(f"spec is too long: more than {MAX_TOKENS:,} tokens (in this file and the files "
                            "it imports together)", Loc(file, *line_col(text, m.start())))
    return n


def parse(text: str, file: str, prepared: bool = False) -> ast.Module:
    """Parse spec text; `file` is the name used in locations. `prepared`: the text already went
    through prepare_text and count_tokens (the loader does both, to charge one token budget). The same text under the same name
    parses once per process (`cnnc list` loads each library block file once per family)."""
    if not prepared:
        text = prepare_text(text, file)
        count_tokens(text, file)
    register_source(file, text)
    return _parse(text, file)


@lru_cache(maxsize=64)
def _parse(text: str, file: str) -> ast.Module:
    try:
        tree = _lark().parse(text, start="start")
    except UnexpectedInput as e:
        raise _parse_error(e, text, file) from None
    except RecursionError:
        raise CnncError("spec is nested too deeply to parse", _deepest_bracket(text, file)) from None
    try:
        items = _Builder(file).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, CnncError):
            raise e.orig_exc from None
        raise
    except RecursionError:
        raise CnncError("expression is nested too deeply", _deepest_node(tree, file)) from None
    return ast.Module(file, tuple(items))


def _deepest_node(tree: Tree, file: str) -> Loc:
    """Where the parse tree is deepest (the first such node): the start of the expression whose
    nesting (brackets, or a long chain of operators, which the tree nests one level per
    operator) was too deep to build. Iterative: the tree is too deep to recurse over."""
    best_depth, best = -1, Loc(file, 1, 1)
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Tree):
            continue
        if depth > best_depth and not node.meta.empty:
            best_depth, best = depth, Loc(file, node.meta.line, node.meta.column)
        stack.extend((child, depth + 1) for child in reversed(node.children))
    return best


def _deepest_bracket(text: str, file: str) -> Loc:
    """The first bracket at the text's greatest bracket depth (where parsing ran out of stack)."""
    depth = best_depth = 0
    line, col, best = 1, 1, Loc(file, 1, 1)
    for ch in text:
        if ch in "([{":
            depth += 1
            if depth > best_depth:
                best_depth, best = depth, Loc(file, line, col)
        elif ch in ")]}":
            depth -= 1
        if ch == "\n":
            line, col = line + 1, 1
        else:
            col += 1
    return best


# ---- parse errors -------------------------------------------------------------

_KEYWORDS = {"import", "block", "network", "for", "in", "if", "elif", "else", "return", "output",
             "train", "then", "and", "or", "not", "true", "false", "none", "as", "defaults", "preset"}


def _describe(term: str) -> str:
    names = {"NAME": "a name", "NUMBER": "a number", "STRING": "a string", "COMP_OP": "a comparison",
             "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '/', '//' or '%'", "POW_OP": "'**'", "TRAIN": "'train'", "$END": "end of file"}
    if term in names:
        return names[term]
    try:
        pattern = _lark().get_terminal(term).pattern
    except KeyError:
        return term.lower()
    return f"'{pattern.value}'" if pattern.type == "str" else term.lower()


_OPERATORS = {"ADD_OP", "MUL_OP", "POW_OP", "COMP_OP", "'->'", "'.'", "'['", "'('", "'and'", "'or'", "'if'"}


def _expected(expected) -> str:
    """What the parser wanted, in words; operators that could continue an expression are one item."""
    raw = {t: _describe(t) for t in expected}
    stmt = {"'for'", "'if'", "'output'", "'return'", "'train'", "'defaults'", "a name"}
    if stmt <= set(raw.values()):  # a statement may start here
        rest = sorted(d for d in raw.values() if d not in stmt)
        return " or ".join(["a statement"] + rest)
    if {"NAME", "NUMBER", "STRING"} <= set(raw):  # an expression may start here
        starts = {"NAME", "NUMBER", "STRING", "'-'", "'not'", "'true'", "'false'", "'none'", "'('", "'['", "'if'"}
        rest = sorted(d for t, d in raw.items() if t not in starts and d not in starts)
        return " or ".join(rest + ["an expression"]) if len(rest) < 2 else ", ".join(rest) + " or an expression"
    ops = [t for t, d in raw.items() if t in _OPERATORS or d in _OPERATORS]
    items = sorted({d for t, d in raw.items() if t not in ops})
    if len(ops) >= 3:
        items.append("an operator")
    else:
        items = sorted(items + [raw[t] for t in ops])
    if len(items) > 8:
        items = items[:8] + ["..."]
    return ", ".join(items) if len(items) < 2 else ", ".join(items[:-1]) + " or " + items[-1]


def _accepted(e) -> set:
    """The terminals that really fit here (LALR's own list includes look-aheads of merged states)."""
    ip = getattr(e, "interactive_parser", None)
    if ip is not None:
        try:
            acc = ip.accepts()
            if acc:
                return acc
        except Exception:  # noqa: BLE001 - fall back to the parser's list
            pass
    return set(e.expected)


def _token_text(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    return f"'{tok}'"


def _parse_error(e: UnexpectedInput, text: str, file: str) -> CnncError:
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        if ch == '"':
            msg = "unterminated string (strings end on the same line)"
        else:
            msg = f"unexpected character {ch!r}"
        return CnncError(msg, Loc(file, e.line, e.column))
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        lines = split_lines(text)
        if len(lines) > 1 and not lines[-1]:
            lines.pop()  # the end of the last line, not the empty one after its line break
        line = len(lines)
        col = len(lines[-1]) + 1
        return CnncError(f"unexpected end of file; expected {_expected(_accepted(e))}", Loc(file, line, col))
    assert isinstance(e, UnexpectedToken)
    tok = e.token
    loc = Loc(file, tok.line, tok.column)
    if tok.type == "NAME" and str(tok) in _KEYWORDS:
        pass
    msg = f"unexpected {_token_text(tok)}; expected {_expected(_accepted(e))}"
    err = CnncError(msg, loc)
    if str(tok) == "=" and "COMP_OP" in e.expected:
        err.note("use '==' to compare")
    return err


# ---- tree -> AST -----------------------------------------------------------------

_NUM = re.compile(r"^[0-9]+$")


@v_args(meta=True)
class _Builder(Transformer):
    def __init__(self, file: str, fixed: Loc | None = None):
        super().__init__()
        self.file = file
        self.fixed = fixed  # parsing a fragment: every node gets this location

    def _loc(self, meta) -> Loc:
        return self.fixed or Loc(self.file, getattr(meta, "line", 0), getattr(meta, "column", 0))

    def _tok(self, tok: Token) -> Loc:
        return self.fixed or Loc(self.file, tok.line, tok.column)

    # definitions
    def start(self, meta, items):
        return items

    def import_stmt(self, meta, c):
        return ast.Import(c[0][1:-1], self._loc(meta))

    def const_def(self, meta, c):
        return ast.ConstDef(str(c[0]), c[1], self._tok(c[0]))

    def block_def(self, meta, c):
        return ast.BlockDef(str(c[0]), c[1] or (), c[2], self._tok(c[0]))

    def network_def(self, meta, c):
        return ast.NetworkDef(str(c[0]), c[1] or (), c[3], self._tok(c[0]), c[2])

    def init_clause(self, meta, c):
        name, args = c
        pos, kw = args if args is not None else ((), ())
        return ast.InitClause(str(name), kw, pos, self._tok(name))

    def preset_def(self, meta, c):
        name, args, ref = c
        pos, kw = args if args is not None else ((), ())
        return ast.Preset(str(name), kw, pos, str(ref)[1:-1], self._tok(name))

    def params(self, meta, c):
        return tuple(p for p in c if p is not None)

    def param(self, meta, c):
        return ast.Param(str(c[0]), c[1], self._tok(c[0]))

    def body(self, meta, c):
        return tuple(c)

    # statements
    def assign(self, meta, c):
        return ast.Assign(str(c[0]), c[1], self._tok(c[0]))

    def unpack(self, meta, c):
        *names, value = c
        return ast.Unpack(tuple(str(n) for n in names), value, self._tok(names[0]))

    def defaults_stmt(self, meta, c):
        name, (pos, kw) = c
        return ast.Defaults(str(name), kw, pos, self._tok(name))

    def for_stmt(self, meta, c):
        return ast.For(str(c[0]), c[1], c[2], self._loc(meta))

    def if_stmt(self, meta, c):
        cond, body, *rest = c
        branches = [(cond, body)]
        orelse = ()
        for r in rest:
            if r is None:
                continue
            if r[0] == "elif":
                branches.append((r[1], r[2]))
            else:
                orelse = r[1]
        return ast.If(tuple(branches), orelse, self._loc(meta))

    def elif_clause(self, meta, c):
        return ("elif", c[0], c[1])

    def else_clause(self, meta, c):
        return ("else", c[0])

    def return_stmt(self, meta, c):
        return ast.Return(c[0], self._loc(meta))

    def output_stmt(self, meta, c):
        train, name, value = c
        return ast.Output(str(name), value, train is not None, self._loc(meta))

    # expressions
    def ifexpr(self, meta, c):
        return ast.IfExpr(c[0], c[1], c[2], self._loc(meta))

    def pipe(self, meta, c):
        return ast.Pipe(c[0], tuple(c[1:]), self._loc(meta))

    def step(self, meta, c):
        name, args, label = c
        pos, kw = args if args is not None else ((), ())
        return ast.Call(str(name), pos, kw, label, self._tok(name))

    def call(self, meta, c):
        name, (pos, kw), label = c
        return ast.Call(str(name), pos, kw, label, self._tok(name))

    def call_args(self, meta, c):
        pos, kw = [], []
        for a in c:
            if a is None:
                continue
            if isinstance(a, ast.Kwarg):
                if any(k.name == a.name for k in kw):
                    raise CnncError(f"argument '{a.name}' given twice", a.loc)
                kw.append(a)
            elif kw:
                raise CnncError("positional argument after a keyword argument", ast.loc_of(a))
            else:
                pos.append(a)
        return tuple(pos), tuple(kw)

    def kwarg(self, meta, c):
        return ast.Kwarg(str(c[0]), c[1], self._tok(c[0]))

    def label(self, meta, c):
        tok = c[0]
        if tok.type == "STRING":
            return ast.Label(str(tok)[1:-1], True, self._tok(tok))
        return ast.Label(str(tok), False, self._tok(tok))

    def group(self, meta, c):
        return ast.Group(c[0], c[1], self._loc(meta))

    def or_(self, meta, c):
        return ast.BinOp("or", c[0], c[1], self._loc(meta))

    def and_(self, meta, c):
        return ast.BinOp("and", c[0], c[1], self._loc(meta))

    def not_(self, meta, c):
        return ast.Unary("not", c[0], self._loc(meta))

    def neg(self, meta, c):
        return ast.Unary("-", c[0], self._loc(meta))

    def compare(self, meta, c):
        return ast.BinOp(str(c[1]), c[0], c[2], self._tok(c[1]))

    def binop(self, meta, c):
        return ast.BinOp(str(c[1]), c[0], c[2], self._tok(c[1]))

    def attr(self, meta, c):
        return ast.Attr(c[0], str(c[1]), self._tok(c[1]))

    def index(self, meta, c):
        return ast.Index(c[0], c[1], self._loc(meta))

    def number(self, meta, c):
        s = str(c[0])
        if len(s) > MAX_NUMBER_LENGTH:
            raise CnncError(f"number literal of {len(s):,} characters is too long", self._tok(c[0]))
        value = int(s) if _NUM.match(s) else float(s)
        return ast.Num(value, self._tok(c[0]))

    def string(self, meta, c):
        return ast.Str(str(c[0])[1:-1], self._tok(c[0]))

    def name(self, meta, c):
        return ast.Name(str(c[0]), self._tok(c[0]))

    def true(self, meta, c):
        return ast.Const(True, self._loc(meta))

    def false(self, meta, c):
        return ast.Const(False, self._loc(meta))

    def none(self, meta, c):
        return ast.Const(None, self._loc(meta))

    def list(self, meta, c):
        return ast.List(tuple(x for x in c if x is not None), self._loc(meta))
