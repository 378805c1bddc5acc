"""Property tests over the language.

1. Generated valid specs parse and check, and cnnc's shapes and parameter counts equal the ones
   the generator computed on its own (a second, independent implementation of the conv/pool rules).
2. Mutated specs (truncated, garbled, with wrong tokens or numbers) either check or give a located
   CnncError; never another exception, a hang or a traceback. So do mutated files (bytes that are
   not UTF-8, line breaks of every kind, separators that are not line breaks, a byte order mark,
   non-ASCII digits, control characters), and their errors quote the line they point at.
"""
import string

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnc.diagnostics import CnncError
from cnnc.pipeline import front_end
from cnnc.backends.summary import totals
from cnnc_testlib import SPECS, TEST_SPECS, examples

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

RES_BLOCK = """
block res(x, c) {
    y = x -> conv(c, 3, padding=1, bias=false) -> bn -> relu -> conv(c, 3, padding=1, bias=false) -> bn
    if x.channels != c {
        s = (x -> conv(c, 1, bias=false) -> bn) as proj
    } else {
        s = x
    }
    return relu(y + s)
}
"""


def _out(size, k, s, p, d=1):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@st.composite
def valid_specs(draw):
    c = draw(st.integers(1, 6))
    h = draw(st.integers(6, 40))
    w = draw(st.integers(6, 40))
    lines = [f"    x = input({c}, {h}, {w})"]
    params = 0
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["conv", "act", "pool", "res", "branch", "loop", "bn"]))
        if kind == "conv":
            groups = draw(st.sampled_from([g for g in (1, 2, 3, 4) if c % g == 0]))
            out = groups * draw(st.integers(1, 4))
            k = draw(st.integers(1, 5))
            d = draw(st.integers(1, 2))
            s = draw(st.integers(1, 2))
            p = draw(st.integers(0, 2))
            if d * (k - 1) + 1 > min(h, w) + 2 * p:
                continue
            bias = draw(st.booleans())
            lines.append(f"    x = x -> conv({out}, {k}, stride={s}, padding={p}, dilation={d}, groups={groups}, "
                         f"bias={'true' if bias else 'false'})")
            params += out * (c // groups) * k * k + (out if bias else 0)
            c, h, w = out, _out(h, k, s, p, d), _out(w, k, s, p, d)
        elif kind == "act":
            lines.append(f"    x = x -> {draw(st.sampled_from(['relu', 'relu6', 'silu', 'gelu', 'tanh', 'hardswish']))}")
        elif kind == "bn":
            lines.append("    x = x -> bn")
            params += 2 * c
        elif kind == "pool":
            k = draw(st.integers(1, 3))
            s = draw(st.integers(1, 2))
            p = draw(st.integers(0, k // 2))
            if k > min(h, w) + 2 * p:
                continue
            op = draw(st.sampled_from(["maxpool", "avgpool"]))
            lines.append(f"    x = x -> {op}({k}, stride={s}, padding={p})")
            h, w = _out(h, k, s, p), _out(w, k, s, p)
        elif kind == "res":
            out = draw(st.integers(1, 6))
            lines.append(f"    x = x -> res({out})")
            params += out * c * 9 + out * out * 9 + 4 * out  # two 3x3 convs, two bn
            if c != out:
                params += out * c + 2 * out
            c = out
        elif kind == "branch":
            a, b = draw(st.integers(1, 4)), draw(st.integers(1, 4))
            lines.append(f"    x = concat(x -> conv({a}, 1), (x -> conv({b}, 3, padding=1) -> relu) as b{len(lines)}, x)")
            params += a * c + a + b * c * 9 + b
            c = a + b + c
        elif kind == "loop":
            n = draw(st.integers(0, 3))
            lines.append(f"    for i in range({n}) {{ x = x -> conv({c}, 1) -> relu as \"r{len(lines)}_{{i}}\" }}")
            params += n * (c * c + c)
    classes = draw(st.integers(1, 20))
    lines.append(f"    output logits = x -> global_avgpool -> flatten -> linear({classes})")
    params += c * classes + classes
    text = RES_BLOCK + "network gen() {\n" + "\n".join(lines) + "\n}\n"
    return text, params, classes


@settings(max_examples=120, **SETTINGS)
@given(valid_specs())
def test_generated_specs_check_with_independent_counts(spec):
    text, params, classes = spec
    g = front_end(text).graph
    assert totals(g)[0] == params
    assert g.nodes[g.outputs[0].node].shape == (classes,)


CORPUS = [p.read_text() for p in sorted(TEST_SPECS.glob("*.cnn"))] + \
         [p.read_text() for p in sorted(SPECS.glob("*.cnn"))[:12]]
TOKENS = ["{", "}", "(", ")", "[", "]", "->", "=", "==", ",", ".", "0", "-1", "2.5", "99999999", "x", "y",
          "conv", "relu", "concat", '"', "#", "\n", "as", "for", "if", "else", "return", "output", "block",
          "network", "import \"zz.cnn\"", "range(", "input(3, 8, 8)", "channels", "none", "true", "*", "//", "\t",
          "é", "\x00"]


@st.composite
def mutated_specs(draw):
    text = draw(st.sampled_from(CORPUS))
    for _ in range(draw(st.integers(1, 3))):
        n = len(text)
        i = draw(st.integers(0, n))
        kind = draw(st.sampled_from(["delete", "insert", "truncate", "replace", "number", "dup-line"]))
        if kind == "delete":
            j = min(n, i + draw(st.integers(1, 20)))
            text = text[:i] + text[j:]
        elif kind == "insert":
            text = text[:i] + draw(st.sampled_from(TOKENS)) + text[i:]
        elif kind == "truncate":
            text = text[:i]
        elif kind == "replace":
            tok = draw(st.sampled_from(TOKENS))
            text = text[:i] + tok + text[i + len(tok):]
        elif kind == "number":
            digits = [k for k, ch in enumerate(text) if ch in string.digits]
            if digits:
                k = draw(st.sampled_from(digits))
                text = text[:k] + draw(st.sampled_from(["0", "9999999", "-3", "1.5", "7"])) + text[k + 1:]
        else:
            lines = text.splitlines(keepends=True)
            if lines:
                k = draw(st.integers(0, len(lines) - 1))
                lines.insert(k, lines[k])
                text = "".join(lines)
    return text


@settings(max_examples=300, **SETTINGS)
@given(mutated_specs())
def test_mutated_specs_give_located_errors(text):
    try:
        front_end(text if ("\n" in text or "{" in text) else text + "\n")
    except CnncError as first:
        for e in first.errors():  # each error found (the interpreter goes on after one)
            rendered = e.render()
            if e.loc is not None:
                assert e.loc.line >= 1 and e.loc.col >= 1
                assert e.loc.line <= text.count("\n") + 1 or e.loc.file != "<spec>"
                assert rendered.startswith(f"{e.loc.file}:{e.loc.line}:{e.loc.col}: error: ")
            else:
                assert rendered.startswith("cnnc: error: ")


def test_truncations_of_every_spec_are_located(tmp_path):
    """Every prefix of a real spec (cut at each line) either checks or fails at a location."""
    for src in sorted(SPECS.glob("*.cnn"))[:8]:
        lines = src.read_text().splitlines(keepends=True)
        for k in range(len(lines)):
            text = "".join(lines[:k])
            f = tmp_path / src.name
            f.write_text(text)
            for b in (SPECS / "blocks").glob("*.cnn"):
                (tmp_path / "blocks").mkdir(exist_ok=True)
                (tmp_path / "blocks" / b.name).write_text(b.read_text())
            try:
                front_end(f)
            except CnncError as e:
                assert e.loc is not None and e.loc.line >= 1, (src.name, k, e.render())


# ---- mutated bytes: what a file can hold, not only what a string can -----------------------------
BYTES = [b"\xff", b"\xfe", b"\xc3", b"\xe2\x80", b"\x80", b"\xed\xa0\x80",  # not UTF-8 (cut or invalid)
         "\u2028".encode(), "\u2029".encode(), "\x85".encode(), b"\x0c", b"\x0b",  # separators, not breaks
         b"\r", b"\r\n", b"\n\r", b"\xef\xbb\xbf",  # breaks, and a byte order mark anywhere
         "\uff13".encode(), "\u0663".encode(), "\u00e9".encode(), "\u202e".encode(),  # digits, letters, bidi
         b"\x00", b"\x1b[2J", b"\t", b'"', b"{", b"}", b"#", b"->", b"9" * 30, b"1e999"]


@st.composite
def mutated_bytes(draw):
    data = draw(st.sampled_from(CORPUS)).encode()
    if draw(st.booleans()):
        data = data.replace(b"\n", draw(st.sampled_from([b"\r", b"\r\n", b"\n"])))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "insert", "delete", "truncate", "flip", "random"]))
        if kind == "insert":
            data = data[:i] + draw(st.sampled_from(BYTES)) + data[i:]
        elif kind == "delete":
            data = data[:i] + data[i + draw(st.integers(1, 8)):]
        elif kind == "truncate":
            data = data[:i]
        elif kind == "flip" and i < len(data):
            data = data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1:]
        else:
            data = data[:i] + draw(st.binary(min_size=1, max_size=4)) + data[i:]
    return data


def _lines(data: bytes) -> list[str]:
    """The file's lines by the one definition of a line break (LF, CRLF, CR), as diagnostics quote them."""
    from cnnc.diagnostics import split_lines

    text = data.decode("utf-8", "replace")
    return split_lines(text[1:] if text.startswith("\ufeff") else text)


@pytest.mark.slow
@settings(max_examples=examples(200), database=None, **SETTINGS)
@given(mutated_bytes())
def test_mutated_bytes_give_located_errors(tmp_path_factory, data):
    """Any bytes in a spec file: it checks, or fails with a located `file:line:col: error:` whose
    line and column exist in the file, and whose quoted line (if any) is that line; never another
    exception."""
    from cnnc.diagnostics import source_line

    directory = tmp_path_factory.getbasetemp() / "mutated_bytes"
    if not directory.exists():
        (directory / "blocks").mkdir(parents=True)
        for b in list((SPECS / "blocks").glob("*.cnn")) + list((TEST_SPECS / "blocks").glob("*.cnn")):
            (directory / "blocks" / b.name).write_text(b.read_text())
    path = directory / "spec.cnn"
    path.write_bytes(data)
    try:
        front_end(path)
    except CnncError as e:
        rendered = e.render()
        if e.loc is None:
            assert rendered.startswith("cnnc: error: ")
            return
        assert rendered.startswith(f"{e.loc.file}:{e.loc.line}:{e.loc.col}: error: ")
        assert e.loc.line >= 1 and e.loc.col >= 1
        if e.loc.file.endswith("spec.cnn"):
            lines = _lines(data)
            assert e.loc.line <= len(lines), (e.loc, len(lines))
            assert e.loc.col <= len(lines[e.loc.line - 1]) + 1, (e.loc, lines[e.loc.line - 1])
            quoted = source_line(e.loc)
            if quoted is not None:  # the line the lexer counted is the line quoted
                assert quoted == lines[e.loc.line - 1]
                assert rendered.splitlines()[1].startswith(f"{e.loc.line:>5} | ")
        assert all(ch.isprintable() for ch in rendered.replace("\n", ""))
