"""What a spec can make cnnc read (cnnc/frontend/loader.py): imports confined to the import
roots (the root spec's directory and below, the spec library, --import-root directories), regular
files only, sizes capped before reading, and nothing of a file that is not a spec ever quoted."""
import os
import subprocess
import sys

import pytest

from cnnc.cli import main
from cnnc.diagnostics import CnncError
from cnnc.frontend import loader
from cnnc.pipeline import front_end
from cnnc_testlib import ROOT

NET = "network n() {\n    x = input(3, 8, 8)\n    output o = x -> %s\n}\n"
BLOCK = "block b(x) { return x -> relu }\n"
SECRET = "SECRET_TOKEN_a41f"


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """tmp/project/ holds the spec; tmp/outside/ a file a spec must not read."""
    project, outside = tmp_path / "project", tmp_path / "outside"
    (project / "blocks").mkdir(parents=True)
    outside.mkdir()
    (project / "blocks" / "b.cnn").write_text(BLOCK)
    (outside / "b.cnn").write_text(f"{SECRET} = 1\n" + BLOCK)
    monkeypatch.chdir(project)
    return project, outside


def _check(project, import_line, *extra):
    (project / "spec.cnn").write_text(f"{import_line}\n" + NET % "b")
    return main(["check", "spec.cnn", *extra])


def test_imports_inside_the_spec_directory_are_read(tree, capsys):
    project, _ = tree
    assert _check(project, 'import "blocks/b.cnn"') == 0
    assert _check(project, f'import "{project / "blocks" / "b.cnn"}"') == 0  # absolute, but inside
    (project / "blocks" / "link.cnn").symlink_to(project / "blocks" / "b.cnn")
    assert _check(project, 'import "blocks/link.cnn"') == 0


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink", "proc"])
def test_imports_outside_the_roots_are_refused_unread(tree, capsys, how):
    project, outside = tree
    if how == "symlink":
        (project / "blocks" / "sneaky.cnn").symlink_to(outside / "b.cnn")
    path = {"dotdot": "../outside/b.cnn", "absolute": str(outside / "b.cnn"), "symlink": "blocks/sneaky.cnn",
            "proc": "/proc/self/environ"}[how]
    assert _check(project, f'import "{path}"') == 1
    err = capsys.readouterr().err
    assert err.startswith(f"spec.cnn:1:1: error: cannot import '{path}': it lies outside the directories a spec "
                          "may import from ('.' and below, and the spec library); add one with --import-root DIR\n")
    assert SECRET not in err and "PATH=" not in err


def test_import_roots_can_be_added(tree, capsys):
    project, outside = tree
    assert _check(project, 'import "../outside/b.cnn"', "--import-root", str(outside)) == 0
    spec = project / "spec.cnn"
    assert front_end(spec, import_roots=[outside]).graph.nodes[-1].op == "relu"
    with pytest.raises(CnncError, match="lies outside"):
        front_end(spec)
    with pytest.raises(CnncError, match=r"import root '.*nothere' is not a directory"):
        front_end(spec, import_roots=[outside / "nothere"])


def test_a_directory_or_device_is_never_read(tree, capsys):
    project, _ = tree
    assert _check(project, 'import "blocks"') == 1
    assert "'blocks' is a directory, not a spec file" in capsys.readouterr().err
    assert _check(project, 'import "/dev/zero"', "--import-root", "/dev") == 1
    assert capsys.readouterr().err.startswith("spec.cnn:1:1: error: '/dev/zero' is not a regular file (a device, "
                                              "FIFO or socket); specs are read from regular files only\n")


@pytest.mark.parametrize("what", ["import", "root"])
def test_a_fifo_never_blocks(tree, what):
    project, _ = tree
    os.mkfifo(project / "blocks" / "fifo.cnn")
    (project / "spec.cnn").write_text('import "blocks/fifo.cnn"\n' + NET % "relu")
    target = "spec.cnn" if what == "import" else "blocks/fifo.cnn"
    out = subprocess.run([sys.executable, "-m", "cnnc", "check", target], cwd=project, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 1
    assert "fifo.cnn' is not a regular file (a device, FIFO or socket)" in out.stderr


def test_sizes_are_capped_before_reading(tree, capsys, monkeypatch):
    project, _ = tree
    monkeypatch.setattr(loader, "MAX_SPEC_BYTES", 1000)
    (project / "blocks" / "big.cnn").write_text(BLOCK + "#" * 2000 + "\n")
    assert _check(project, 'import "blocks/big.cnn"') == 1
    assert capsys.readouterr().err.startswith("spec.cnn:1:1: error: 'blocks/big.cnn' is larger than 0 MiB")
    # all files of a spec together
    monkeypatch.setattr(loader, "MAX_SPEC_BYTES", 4000)
    monkeypatch.setattr(loader, "MAX_TOTAL_BYTES", 3000)
    (project / "blocks" / "big.cnn").write_text(BLOCK + "#" * 2950 + "\n")
    assert _check(project, 'import "blocks/big.cnn"') == 1
    assert capsys.readouterr().err.startswith("spec.cnn:1:1: error: 'blocks/big.cnn' would take the spec and its "
                                              "imports past 0 MiB")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_read_reads_at_most_the_cap(monkeypatch):
    """A file whose size stat does not tell (like /proc files, size 0) or that grows after the
    check is still read only up to the cap plus one byte."""
    monkeypatch.setattr(loader, "MAX_SPEC_BYTES", 100)
    assert os.stat("/proc/self/status").st_size == 0
    reads = []
    real_read = os.read
    monkeypatch.setattr(loader.os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    with pytest.raises(CnncError, match="'/proc/self/status' is larger than 0 MiB"):
        loader.read_spec("/proc/self/status")
    assert sum(reads) == 101


def test_an_imported_file_that_is_not_text_is_never_quoted(tree, capsys):
    project, _ = tree
    (project / "blocks" / "bin.cnn").write_bytes(b"# ok\n" + SECRET.encode() + b" = \xff\xfe\n")
    assert _check(project, 'import "blocks/bin.cnn"') == 1
    assert capsys.readouterr().err == (
        "spec.cnn:1:1: error: cannot import 'blocks/bin.cnn': 'blocks/bin.cnn' is not UTF-8 text (byte 0xff)\n"
        "    1 | import \"blocks/bin.cnn\"\n      | ^\n"
        "blocks/bin.cnn:2:21: note: the first character that is not spec text\n")
    (project / "blocks" / "nul.cnn").write_bytes(SECRET.encode() + b" = 1\x00\n")
    assert _check(project, 'import "blocks/nul.cnn"') == 1
    err = capsys.readouterr().err
    assert err.startswith("spec.cnn:1:1: error: cannot import 'blocks/nul.cnn': control character U+0000: a spec is "
                          "text\n") and SECRET not in err


def test_many_files_share_one_token_budget(tree, capsys, monkeypatch):
    from cnnc.frontend import parser

    project, _ = tree
    monkeypatch.setattr(loader, "MAX_TOKENS", 60)  # the budget the loader starts each spec with
    monkeypatch.setattr(parser, "MAX_TOKENS", 60)
    (project / "blocks" / "c.cnn").write_text("".join(f"c{i} = {i}\n" for i in range(20)))  # 60 tokens
    assert _check(project, 'import "blocks/c.cnn"') == 1
    # the spec holds 24 tokens, so the 37th token of c.cnn (the first of its line 13) is the 61st
    assert capsys.readouterr().err == ("blocks/c.cnn:13:1: error: spec is too long: more than 60 tokens (in this "
                                       "file and the files it imports together)\n")
