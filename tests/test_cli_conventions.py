"""Command-line and API conventions: --version, `-` for stdin, several files to check, every
error of a spec, errors as JSON, colour, build --fused's default output, API keyword errors."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cnnc.cli import main
from cnnc.diagnostics import MAX_ERRORS, CnncError
from cnnc.pipeline import front_end
from cnnc.version import __version__
from cnnc_testlib import ROOT, imported_modules


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"cnnc {__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_version_imports_no_torch():
    modules = imported_modules("--version")
    assert "cnnc.version" in modules
    assert not [m for m in modules if m.split(".")[0] in ("torch", "triton", "numpy")]


TINY = "network tiny() {\n    x = input(3, 8, 8)\n    output o = x -> conv(4, 3) -> relu\n}\n"
TINY_LINE = "tiny: 3 layers, 112 parameters, 3.89 KMACs (3,888)\n"


def _cnnc(argv, cwd, stdin=None, env=None):
    """`python -m cnnc ARGV` in `cwd` (with this checkout's cnnc), stdin from the string given."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "cnnc", *argv], cwd=cwd, input=stdin, capture_output=True,
                          text=True, env=env, timeout=60)


# ---- `-`: the spec from standard input -------------------------------------------------------

def test_stdin_spec_imports_relative_to_the_working_directory_and_errors_name_stdin(tmp_path):
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "b.cnn").write_text("block head(x) {\n    return x -> conv(4, 3) -> relu\n}\n")
    spec = 'import "blocks/b.cnn"\nnetwork tiny() {\n    x = input(3, 8, 8)\n    output o = x -> head as _\n}\n'
    ok = _cnnc(["check", "-"], tmp_path, spec)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, TINY_LINE, "")
    bad = _cnnc(["check", "-"], tmp_path, TINY.replace("relu", "rellu"))
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr == ("<stdin>:3:35: error: unknown op or block 'rellu'; did you mean 'relu'?\n"
                          "    3 |     output o = x -> conv(4, 3) -> rellu\n"
                          "      |                                   ^\n")


def test_stdin_spec_imports_are_confined_to_the_working_directory(tmp_path):
    (tmp_path / "secret.cnn").write_text("block b(x) {\n    return x\n}\n")
    (tmp_path / "work").mkdir()
    spec = 'import "../secret.cnn"\n' + TINY
    r = _cnnc(["check", "-"], tmp_path / "work", spec)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("<stdin>:1:1: error: cannot import '../secret.cnn': it lies outside the directories "
                               "a spec may import from ('.' and below, and the spec library)")
    r = _cnnc(["check", "-", "--import-root", ".."], tmp_path / "work", spec)
    assert (r.returncode, r.stdout) == (0, TINY_LINE)


def test_stdin_is_bounded_and_must_be_text():
    import io

    from cnnc.frontend.loader import MAX_SPEC_BYTES, load_stdin

    assert load_stdin(stream=io.BytesIO(TINY.encode())).network.name == "tiny"
    with pytest.raises(CnncError) as info:
        load_stdin(stream=io.BytesIO(b" " * (MAX_SPEC_BYTES + 1)))
    assert info.value.render() == "cnnc: error: '<stdin>' is larger than 4 MiB"
    with pytest.raises(CnncError) as info:
        load_stdin(stream=io.BytesIO(b"network n() {\n  \xff"))
    assert info.value.render() == "<stdin>:2:3: error: '<stdin>' is not UTF-8 text (byte 0xff)"


def test_build_from_stdin_names_the_output_after_the_network(tmp_path):
    r = _cnnc(["build", "-"], tmp_path, TINY)
    assert r.returncode == 0, r.stderr
    assert r.stdout == TINY_LINE + "wrote build/tiny.py\n"
    assert "class Tiny" in (tmp_path / "build" / "tiny.py").read_text()


# ---- check FILE... ---------------------------------------------------------------------------

def test_check_reports_each_of_several_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.cnn").write_text(TINY)
    (tmp_path / "bad.cnn").write_text(TINY.replace("conv(4, 3)", "conv(4, 3, strid=2)"))
    assert main(["check", "good.cnn", "bad.cnn", "missing.cnn", "good.cnn"]) == 1
    out, err = capsys.readouterr()
    assert out == TINY_LINE * 2
    assert err.startswith("bad.cnn:3:32: error: conv has no argument 'strid'; did you mean 'stride'?\n")
    assert err.endswith("\ncnnc: error: no such file: 'missing.cnn'\n")
    assert main(["check", "good.cnn", "good.cnn"]) == 0
    assert capsys.readouterr().out == TINY_LINE * 2


def test_check_of_several_files_takes_catalog_names_and_emit(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.cnn").write_text(TINY)
    assert main(["check", "good.cnn", "lenet5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == TINY_LINE.strip() and out[1].startswith("lenet5: ")
    assert main(["check", "good.cnn", "good.cnn", "--emit", "ast"]) == 0
    out = capsys.readouterr().out
    assert out.count("NetworkDef @1:9 name='tiny'") == 2


def test_stdin_can_be_read_once(capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", "-", "-"])
    assert info.value.code == 2
    assert capsys.readouterr().err.endswith("cnnc check: error: standard input (-) can be read once\n")


# ---- build --fused ---------------------------------------------------------------------------

def test_build_fused_writes_beside_the_plain_build(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.cnn").write_text(TINY.replace("-> relu", "-> bn -> relu"))
    assert main(["build", "tiny.cnn"]) == 0
    assert main(["build", "tiny.cnn", "--fused"]) == 0
    out = capsys.readouterr().out
    assert "wrote build/tiny.py\n" in out and "wrote build/tiny_fused.py\n" in out
    plain, fused = (tmp_path / "build" / "tiny.py").read_text(), (tmp_path / "build" / "tiny_fused.py").read_text()
    assert "nn.BatchNorm2d" in plain and "nn.BatchNorm2d" not in fused


# ---- API errors name the keyword argument ----------------------------------------------------

NET_PARAMS = "network n(classes=10, width) {\n    output o = input(3, 8, 8) -> conv(width, 3)\n}\n"


def test_api_errors_name_the_keyword_not_set():
    import cnnc

    with pytest.raises(CnncError) as info:
        cnnc.summary(NET_PARAMS, clases=3, width=4)
    assert info.value.render() == ("cnnc: error: cnnc.summary(): keyword 'clases' is not a parameter of network 'n'; "
                                   "did you mean 'classes'? (its parameters: classes, width)")
    with pytest.raises(CnncError) as info:
        cnnc.render(NET_PARAMS, width=2**70)
    assert info.value.render() == "cnnc: error: cnnc.render(): keyword 'width': integer too large (> 2^62)"
    with pytest.raises(CnncError) as info:
        cnnc.summary(NET_PARAMS)
    assert info.value.message == ("network parameter 'width' has no default; give one or pass width=... to "
                                  "cnnc.summary()")
    assert "--set" not in info.value.render()


def test_compile_errors_name_the_keyword():
    import cnnc

    with pytest.raises(CnncError) as info:
        cnnc.compile("resnet18", clases=10)
    assert info.value.message.startswith("cnnc.compile(): keyword 'clases' is not a parameter of network 'resnet'; "
                                         "did you mean 'classes'? (its parameters: classes, ")
    assert "--set" not in info.value.render()


def test_command_line_errors_still_name_set(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "n.cnn").write_text(NET_PARAMS)
    assert main(["check", "n.cnn", "--set", "width=4", "--set", "clases=3"]) == 1
    assert capsys.readouterr().err == ("cnnc: error: --set: network 'n' has no parameter 'clases'; did you mean "
                                       "'classes'? (its parameters: classes, width)\n")
    assert main(["check", "n.cnn"]) == 1
    assert "give one or pass --set width=...\n" in capsys.readouterr().err


# ---- errors as JSON --------------------------------------------------------------------------

BLOCK_BAD = ("block b(x) {\n    return x -> conv(4, 3, strid=2)\n}\n"
             "network n() {\n    x = input(3, 8, 8)\n    output o = x -> b\n}\n")
UNUSED = "network u() {\n    x = input(3, 8, 8)\n    y = x -> conv(4, 3)\n    output o = x -> relu\n}\n"


def test_check_json_lists_the_errors_and_warnings_of_every_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.cnn").write_text(BLOCK_BAD)
    (tmp_path / "unused.cnn").write_text(UNUSED)
    assert main(["check", "bad.cnn", "missing.cnn", "unused.cnn", "--format", "json"]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out) == [
        {"file": "bad.cnn", "line": 2, "col": 28, "severity": "error",
         "message": "conv has no argument 'strid'; did you mean 'stride'?",
         "notes": [{"file": None, "line": None, "col": None,
                    "message": "signature: conv(x, out, kernel, stride=1, padding=0, dilation=1, groups=1, bias=true)"},
                   {"file": "bad.cnn", "line": 6, "col": 21,
                    "message": "in 'b1' (an instance of block 'b'), called here"}]},
        {"file": "missing.cnn", "line": None, "col": None, "severity": "error",
         "message": "no such file: 'missing.cnn'", "notes": []},
        {"file": "unused.cnn", "line": 3, "col": 14, "severity": "warning",
         "message": "result of conv 'conv1' is never used", "notes": []},
    ]
    assert main(["check", "unused.cnn", "--format", "json"]) == 0  # a warning only: success
    assert [d["severity"] for d in json.loads(capsys.readouterr().out)] == ["warning"]
    (tmp_path / "good.cnn").write_text(TINY)
    assert main(["check", "good.cnn", "--format", "json"]) == 0
    assert capsys.readouterr() == ("[]\n", "")


def test_summary_json_errors_on_stdout(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.cnn").write_text(BLOCK_BAD)
    (tmp_path / "unused.cnn").write_text(UNUSED)
    assert main(["summary", "bad.cnn", "--format", "json"]) == 1
    out, err = capsys.readouterr()
    assert err == "" and [(d["file"], d["line"], d["severity"]) for d in json.loads(out)] == [("bad.cnn", 2, "error")]
    assert main(["summary", "unused.cnn", "--format", "json"]) == 0  # the summary; its warning as text
    out, err = capsys.readouterr()
    assert json.loads(out)["layers"][-1]["op"] == "relu" and err.startswith("unused.cnn:3:14: warning: result of conv")
    assert main(["summary", "bad.cnn", "--format", "text"]) == 1
    assert capsys.readouterr().err.startswith("bad.cnn:2:28: error: conv has no argument 'strid'")


def test_json_errors_escape_what_the_spec_or_command_line_names(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["check", "evil\x1b[2J\u202e.cnn", "--format", "json"]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in json.loads(out)[0]["message"] and "\u202e" not in json.loads(out)[0]["file"]
    assert json.loads(out)[0]["message"] == "no such file: 'evil\\x1b[2J\\u202e.cnn'"


# ---- colour ----------------------------------------------------------------------------------

BOLD, RED, CYAN, GREEN, RESET = "\x1b[1m", "\x1b[1;31m", "\x1b[1;36m", "\x1b[1;32m", "\x1b[0m"


def test_color_always_paints_the_parts(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.cnn").write_text(BLOCK_BAD)
    assert main(["check", "bad.cnn", "--color", "always"]) == 1
    assert capsys.readouterr().err == (
        f"{BOLD}bad.cnn:2:28:{RESET} {RED}error:{RESET} conv has no argument 'strid'; did you mean 'stride'?\n"
        "    2 |     return x -> conv(4, 3, strid=2)\n"
        f"      |                            {GREEN}^{RESET}\n"
        f"{CYAN}note:{RESET} signature: conv(x, out, kernel, stride=1, padding=0, dilation=1, groups=1, bias=true)\n"
        f"{BOLD}bad.cnn:6:21:{RESET} {CYAN}note:{RESET} in 'b1' (an instance of block 'b'), called here\n")
    monkeypatch.setenv("NO_COLOR", "1")  # --color always overrides NO_COLOR (no-color.org)
    assert main(["check", "bad.cnn", "--color", "always"]) == 1
    assert RED in capsys.readouterr().err


def test_color_never_and_auto_off_a_terminal(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NO_COLOR", raising=False)
    (tmp_path / "bad.cnn").write_text(BLOCK_BAD)
    assert main(["check", "bad.cnn", "--color", "never"]) == 1
    plain = capsys.readouterr().err
    assert "\x1b" not in plain and plain.startswith("bad.cnn:2:28: error: conv has no argument")
    assert main(["check", "bad.cnn"]) == 1  # auto: stderr is not a terminal here
    assert capsys.readouterr().err == plain


def test_colour_never_lets_the_spec_write_escapes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["check", "evil\x1b[2J.cnn", "--color", "always"]) == 1
    err = capsys.readouterr().err
    assert err == f"{BOLD}cnnc:{RESET} {RED}error:{RESET} no such file: 'evil\\x1b[2J.cnn'\n"


def _on_a_terminal(argv, cwd, env):
    """stderr of `python -m cnnc ARGV` when it is a pseudo-terminal."""
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "cnnc", *argv], cwd=cwd, stderr=follower,
                              stdout=subprocess.DEVNULL, env={**env, "PYTHONPATH": str(ROOT)}, timeout=60)
        os.close(follower)
        follower = None
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 1 << 16)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
        return proc.returncode, b"".join(chunks).decode()
    finally:
        os.close(leader)
        if follower is not None:
            os.close(follower)


class _Terminal:
    def isatty(self):
        return True


@pytest.mark.parametrize("choice, env, wanted", [
    ("auto", {}, True), ("auto", {"NO_COLOR": "1"}, False), ("auto", {"NO_COLOR": "yes"}, False),
    ("auto", {"NO_COLOR": ""}, True),  # empty: as if unset (no-color.org)
    ("auto", {"TERM": "dumb"}, False), ("never", {}, False), ("always", {"NO_COLOR": "1"}, True),
])
def test_when_colour_is_wanted_on_a_terminal(monkeypatch, choice, env, wanted):
    from cnnc.cli.common import colour_wanted

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert colour_wanted(choice, _Terminal()) is wanted
    assert colour_wanted(choice, sys.stderr) is (choice == "always")  # captured: not a terminal


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_colour_on_a_real_terminal_unless_no_color(tmp_path):
    (tmp_path / "bad.cnn").write_text(BLOCK_BAD)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    status, err = _on_a_terminal(["check", "bad.cnn"], tmp_path, {**env, "TERM": "xterm"})
    assert status == 1 and f"{RED}error:{RESET}" in err
    status, err = _on_a_terminal(["check", "bad.cnn"], tmp_path, {**env, "TERM": "xterm", "NO_COLOR": "1"})
    assert status == 1 and "\x1b" not in err and "bad.cnn:2:28: error: conv has no argument" in err


# ---- every error of a spec -------------------------------------------------------------------

# Statements that each fail on their own, reading only `x` (3x32x32): (statement, its error).
INDEPENDENT = [
    ("a = x -> conv(8, 3, strid=2)", "4:25: conv has no argument 'strid'; did you mean 'stride'?"),
    ("b = x -> rellu", "4:14: unknown op or block 'rellu'; did you mean 'relu'?"),
    ("c = x -> conv(8, 3, bias=1)", "4:25: 'bias' of conv must be true or false, got the integer 1"),
    ("d = x -> conv(8, 3, groups=2)", "4:14: groups (2) must divide the input channels (3)"),
    ("e = [1, 2][5]", "4:16: index 5 out of range for a list of 2"),
    ("f = 1 / 0", "4:11: division by zero"),
    ("g = yy", "4:9: unknown name 'yy'; did you mean 'y'?"),
    ("h = x -> maxpool(64)", "4:14: maxpool kernel larger than its padded input: kernel 64 (dilation 1) "
                                   "spans 64, but the padded height is 32"),
]


def _errors(text, **params):
    with pytest.raises(CnncError) as info:
        front_end(text, params)
    return [f"{e.loc.line}:{e.loc.col}: {e.message}" if e.loc else e.message for e in info.value.errors()]


def _net(*statements, params=""):
    """A network whose statement k (0-based) is on line 4 + k."""
    body = "".join(f"    {s}\n" for s in statements)
    return f"network n({params}) {{\n    x = input(3, 32, 32)\n    y = x -> relu\n{body}    output o = y\n}}\n"


def _at(line, error):
    """`error` (found on line 4) on `line`."""
    return error.replace("4:", f"{line}:", 1)


@pytest.mark.parametrize("k", range(len(INDEPENDENT)))
def test_each_independent_statement_fails_alone_as_expected(k):
    statement, error = INDEPENDENT[k]
    assert _errors(_net(statement)) == [error]


def test_independent_errors_are_all_reported_in_order():
    """Every subset in order (a rotation of the pool per size): exactly the errors of its statements alone."""
    n = len(INDEPENDENT)
    for size in range(2, n + 1):
        for start in range(n):
            chosen = [INDEPENDENT[(start + i) % n] for i in range(size)]
            text = _net(*[s for s, _ in chosen])
            assert _errors(text) == [_at(4 + i, e) for i, (_, e) in enumerate(chosen)], text


# (spec body, the one error expected): the later statements would fail only because of the first
FOLLOW_ONS = {
    "a name bound by a failed statement": (
        ["a = x -> conv(8, 3, strid=2)", "b = a -> conv(8, 3, groups=3)", "c = [a, b]", "output p = a + b"],
        ["4:25: conv has no argument 'strid'; did you mean 'stride'?"]),
    "a loop variable and the names its body binds": (
        ["for i in range(1 / 0) { z = x -> conv(i, 3) }", "w = z -> relu", "v = i * 2"],
        ["4:22: division by zero"]),
    "the names of a conditional whose condition failed": (
        ["if x { q = x -> conv(4, 1) } else { r = x }", "s = q + r"],
        ["4:8: a tensor is neither true nor false; compare its shape, e.g. x.channels == 64"]),
    "unpacked names": (
        ["a, b = 3", "c = x -> conv(a, b)"],
        ["4:12: cannot unpack the integer 3 into 2 names (a, b); only a list unpacks"]),
    "an op whose defaults failed": (
        ["defaults conv(padding=smae)", "a = x -> conv(8, 64)", "b = x -> conv(8, 3)"],
        ["4:27: unknown name 'smae'"]),
    "an output that failed, then no other": (
        ["output p = x -> conv(8, 3, strid=2)", "output p = x"],
        ["4:32: conv has no argument 'strid'; did you mean 'stride'?"]),
}


@pytest.mark.parametrize("case", FOLLOW_ONS)
def test_no_error_caused_by_an_earlier_one(case):
    statements, expected = FOLLOW_ONS[case]
    assert [e.split("; strings are quoted")[0] for e in _errors(_net(*statements))] == expected


BLOCKS = """block bad(x) {
    y = x -> conv(8, 3, strid=2)
    return y
}
block half(x) {
    u = x -> conv(4, 3, bias=1)
    return x -> relu
}
block cond(x) {
    if x { return x }
}
"""


def test_blocks_report_once_and_skip_their_callers():
    text = BLOCKS + _net("a = x -> bad -> conv(8, 3, groups=7)", "b = x -> bad", "c = x -> half -> half",
                         "d = c -> conv(8, 3, groups=2)", "e = x -> cond -> conv(8, 1)")
    errors = _errors(text)
    assert [e.split(":")[0:2] for e in errors] == [["2", "25"], ["6", "25"], ["18", "14"], ["10", "8"]]
    # bad: once, though called twice, and its callers' statements skipped (no groups=7 error);
    # half: its statement fails, its result does not depend on it, so the caller goes on and d's
    # own error is reported; cond: the failed condition, and no "ended without `return`" after it
    assert "groups (2) must divide the input channels (3)" in errors[2]


RETURNS = """block inner(x) {
    return x -> rellu
}
block pick(x, c) {
    if c > 0 {
        return x -> inner as left
    }
    left = x -> relu as left
    return left
}
block guarded(x, c) {
    if c > "s" {
        return x
    }
    return x -> conv(8, 3, groups=5)
}
"""


def test_a_block_ends_where_a_statement_holding_its_return_failed():
    """What follows a failed return (or a failed statement holding one) might never have run:
    here `as left` again, and a conv whose groups are wrong, are not reported."""
    errors = _errors(RETURNS + _net("a = x -> pick(4)", "b = x -> guarded(4)", "c = x -> conv(8, 3, bias=1)"))
    assert errors == ["2:17: unknown op or block 'rellu'; did you mean 'relu'?",
                      "12:10: cannot compare the integer 4 with the string \"s\"",
                      "22:25: 'bias' of conv must be true or false, got the integer 1"]


def test_parameters_constants_and_overrides():
    text = "k = 1 / 0\nm = k + 1\n" + _net("a = x -> conv(m, 3)", "b = x -> conv(8, 3, strid=1)",
                                           params="classes=10, width=k, depth=[1][3]").replace(
        "network n", "network n", 1)
    errors = _errors(text, clases=3, widht=2)
    assert errors == [
        "1:7: division by zero",
        "--set: network 'n' has no parameter 'clases'; did you mean 'classes'? (its parameters: classes, width, depth)",
        "--set: network 'n' has no parameter 'widht'; did you mean 'width'? (its parameters: classes, width, depth)",
        "3:42: index 3 out of range for a list of 1",
        "7:25: conv has no argument 'strid'; did you mean 'stride'?",
    ]


def test_at_most_max_errors_then_a_note(tmp_path, monkeypatch, capsys):
    text = _net(*[f"a{i} = x -> conv(8, 3, strid={i})" for i in range(MAX_ERRORS + 5)])
    with pytest.raises(CnncError) as info:
        front_end(text)
    assert len(info.value.errors()) == MAX_ERRORS and info.value.stopped
    assert info.value.render().endswith(f"\ncnnc: note: stopped after {MAX_ERRORS} errors")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "many.cnn").write_text(text)
    assert main(["check", "many.cnn", "--format", "json"]) == 1
    listed = json.loads(capsys.readouterr().out)
    assert [d["severity"] for d in listed] == ["error"] * MAX_ERRORS + ["note"]
    assert [d["line"] for d in listed[:3]] == [4, 5, 6]


def test_a_budget_stops_the_run(monkeypatch):
    monkeypatch.setattr("cnnc.ir.irgen.limits.MAX_NODES", 50)
    text = _net("a = x -> conv(8, 3, strid=2)", "for i in range(100) { y = y -> relu }", "b = x -> rellu")
    errors = _errors(text)
    assert errors[0] == "4:25: conv has no argument 'strid'; did you mean 'stride'?"
    assert errors[1].startswith("5:") and "budget" in errors[1] and len(errors) == 2


def test_several_errors_in_the_text_and_for_a_preset():
    text = _net("a = x -> conv(8, 3, strid=2)", "b = x -> rellu")
    with pytest.raises(CnncError) as info:
        front_end(text)
    rendered = info.value.render().splitlines()
    assert [line for line in rendered if ": error: " in line] == [
        "<spec>:4:25: error: conv has no argument 'strid'; did you mean 'stride'?",
        "<spec>:5:14: error: unknown op or block 'rellu'; did you mean 'relu'?"]


def _faults(text: str, most: int | None = None) -> list[str]:
    """One fault at a time in spec text: an op or block name after `->` misspelled, or the first
    number argument of an op (never of a block: a wrong value passed to a block is wrong at each
    of its uses there) made a string; at most `most` of them, spread over the text."""
    from cnnc.ir.ops import lookup

    spans = [m.span(1) for m in re.finditer(r"-> ([a-z_][a-z0-9_]*)", text)]
    spans += [m.span(2) for m in re.finditer(r"-> ([a-z_][a-z0-9_]*)\((\d+)[,)]", text) if lookup(m.group(1))]
    if most is not None:
        spans = sorted(spans)[::max(1, -(-len(spans) // most))]
    return [text[:a] + (text[a:b] + "_q" if text[a].isalpha() else '"s"') + text[b:] for a, b in spans]


def _one_error_per_fault(spec: Path, mutated: Path, most: int | None = None) -> int:
    """A correct spec with one fault gives exactly one error (where the fault is, or where its
    value is used): any more would be caused by it. Returns how many faults gave an error."""
    original = mutated.read_text()
    front_end(spec)  # correct as it is
    tried = 0
    try:
        for faulty in _faults(original, most):
            mutated.write_text(faulty)
            try:
                front_end(spec)
            except CnncError as e:
                tried += 1
                assert len(e.errors()) == 1, e.render()
    finally:
        mutated.write_text(original)
    return tried


@pytest.mark.parametrize("spec, mutated", [("tiny_resnet.cnn", "tiny_resnet.cnn"), ("tiny_resnet.cnn", "blocks/tiny.cnn"),
                                           ("tiny_inception.cnn", "tiny_inception.cnn"),
                                           ("tiny_unet.cnn", "tiny_unet.cnn"), ("codegen_tiny.cnn", "codegen_tiny.cnn")])
def test_one_fault_in_a_correct_spec_is_one_error(tmp_path, spec, mutated):
    import shutil

    from cnnc_testlib import TEST_SPECS

    shutil.copytree(TEST_SPECS, tmp_path / "specs")
    assert _one_error_per_fault(tmp_path / "specs" / spec, tmp_path / "specs" / mutated, most=8) >= 4


@pytest.mark.slow
def test_one_fault_in_a_library_spec_is_one_error(tmp_path):
    """Every fault of the two kinds in every family file and block file of the library."""
    import shutil

    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    specs = sorted((tmp_path / "specs").glob("*.cnn"))
    for spec in specs:
        assert _one_error_per_fault(spec, spec) > 0, spec.name
    resnet = tmp_path / "specs" / "resnet.cnn"
    for block in sorted((tmp_path / "specs" / "blocks").glob("*.cnn")):
        users = [s for s in specs if f'"blocks/{block.name}"' in s.read_text()]
        if users:
            _one_error_per_fault(users[0], block)


def test_check_json_and_emit_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", "x.cnn", "--format", "json", "--emit", "ir"])
    assert info.value.code == 2
    assert "--emit prints a dump, not JSON" in capsys.readouterr().err
