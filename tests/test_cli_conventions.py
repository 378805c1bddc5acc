"""Command-line and API conventions: --version, `-` for stdin, several files to check, every
error of a spec, errors as JSON, colour, build --fused's default output, API keyword errors."""
import json
import os
import re
import subprocess
import sys

import pytest

from cnnc.cli import main
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

    from cnnc.diagnostics import CnncError
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
    from cnnc.diagnostics import CnncError

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
    from cnnc.diagnostics import CnncError

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
