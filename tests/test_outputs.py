"""What cnnc writes (cnnc/outfile.py, `build` and `render`): only regular files, never an input of
the command, never through a symbolic link; temporary files gone on every exit path (errors,
SIGINT, SIGTERM; after SIGKILL the next run removes them), no `dot` process left behind, and
byte-identical files from identical inputs."""
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cnnc.cli import main
from cnnc.diagnostics import CnncError
from cnnc.outfile import atomic_output
from cnnc_testlib import ROOT, TEST_SPECS

TINY = TEST_SPECS / "codegen_tiny.cnn"
RESIDUAL = TEST_SPECS / "render_residual.cnn"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ---- what may be written ----------------------------------------------------------------------
@pytest.mark.parametrize("command", [["build", str(TINY)], ["render", str(RESIDUAL), "--dot"]])
@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory", "device"])
def test_only_regular_files_are_written(tmp_path, capsys, command, kind):
    target = tmp_path / "out.py"
    if kind == "fifo":
        os.mkfifo(target)
        expected = f"cnnc: error: output '{target}' is a FIFO; cnnc writes only regular files\n"
    elif kind == "symlink":
        (tmp_path / "real.py").write_text("keep")
        target.symlink_to(tmp_path / "real.py")
        expected = (f"cnnc: error: output '{target}' is a symbolic link; cnnc does not write through links: give the "
                    f"path of the file itself ({tmp_path / 'real.py'})\n")
    elif kind == "directory":
        target.mkdir()
        expected = f"cnnc: error: output '{target}' is a directory; give a file name such as {target / 'model.py'}\n"
        if command[0] == "render":
            expected = expected.replace("model.py", "net.dot")
    else:
        try:
            os.mknod(target, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
        except PermissionError:
            pytest.skip("making a device node needs root")
        expected = f"cnnc: error: output '{target}' is a device; cnnc writes only regular files\n"
    before = os.lstat(target)
    assert main(command + ["-o", str(target)]) == 1
    assert capsys.readouterr().err == expected
    after = os.lstat(target)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    if kind == "symlink":
        assert (tmp_path / "real.py").read_text() == "keep"
    assert not [n for n in _files(tmp_path) if ".tmp" in n]


@pytest.mark.parametrize("which", ["spec", "import", "hard-link", "weights"])
def test_an_input_is_never_overwritten(tmp_path, capsys, which):
    import torch

    import cnnc

    shutil.copytree(TEST_SPECS, tmp_path / "specs")
    spec, imported = tmp_path / "specs" / "tiny_resnet.cnn", tmp_path / "specs" / "blocks" / "tiny.cnn"
    weights = tmp_path / "w.pth"
    torch.save(cnnc.compile(spec).state_dict(), weights)
    argv = ["build", str(spec)] + (["--weights", str(weights)] if which == "weights" else [])
    out = {"spec": spec, "import": imported, "hard-link": tmp_path / "link.py", "weights": tmp_path / "w.py"}[which]
    if which == "hard-link":
        os.link(spec, out)
    saved = {p: p.read_bytes() for p in (spec, imported, weights)}
    assert main(argv + ["-o", str(out)]) == 1
    written = out.with_suffix(".pth") if which == "weights" else out
    what = {"spec": spec, "import": imported, "hard-link": spec, "weights": weights}[which]
    assert capsys.readouterr().err == (f"cnnc: error: output '{written}' is an input of this command "
                                       f"('{what}'); refusing to overwrite it\n")
    for p, data in saved.items():
        assert p.read_bytes() == data
    assert not [n for n in _files(tmp_path) + _files(spec.parent) if ".tmp" in n]


def test_render_never_overwrites_its_spec(tmp_path, capsys):
    spec = tmp_path / "net.dot"
    spec.write_text(RESIDUAL.read_text())
    assert main(["render", str(spec), "--dot", "-o", str(spec)]) == 1
    assert "is an input of this command" in capsys.readouterr().err
    assert spec.read_text() == RESIDUAL.read_text()


# ---- temporary files and interruptions ---------------------------------------------------------
def test_an_exception_inside_the_write_removes_the_temporary_file(tmp_path):
    for exc in (KeyboardInterrupt(), CnncError("x"), OSError(28, "No space left on device")):
        with pytest.raises(type(exc) if not isinstance(exc, OSError) else CnncError):
            with atomic_output(tmp_path / "out.py") as tmp:
                tmp.write_text("half")
                raise exc
        assert _files(tmp_path) == []


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    from cnnc.outfile import remove_stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".model.py.cnnc-{pid}-0123abcd.tmp"
    mine = tmp_path / f".model.py.cnnc-{os.getpid()}-0123abcd.tmp"
    other = tmp_path / ".model.py.other.tmp"
    for p in (stale, mine, other):
        p.write_text("x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert _files(tmp_path) == sorted([mine.name, other.name])


SLOW_FSYNC = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    real_fsync = os.fsync
    def slow_fsync(fd):  # the temporary file exists now: say so, then take a while
        Path(sys.argv[1]).write_text(str(os.getpid()))
        time.sleep(120)
    os.fsync = slow_fsync
    from cnnc.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def _start_blocked(tmp_path, argv, script=SLOW_FSYNC, env=ENV):
    """Run the command line in a child that blocks while its output is half written; return it
    once it blocks."""
    marker = tmp_path / "blocked"
    proc = subprocess.Popen([sys.executable, "-c", script, str(marker), *argv], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the command never got to writing"
        time.sleep(0.05)
    time.sleep(0.2)
    return proc, marker


@pytest.mark.slow
@pytest.mark.parametrize("sig,status,line", [(signal.SIGINT, 130, "cnnc: interrupted\n"),
                                             (signal.SIGTERM, 143, "cnnc: terminated\n")], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_writing_leaves_no_temporary_file(tmp_path, sig, status, line):
    out = tmp_path / "out" / "model.py"
    proc, _ = _start_blocked(tmp_path, ["build", str(TINY), "-o", str(out)])
    assert [n for n in _files(out.parent) if n.startswith(".model.py.")]  # the temporary file is there
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (status, line)
    assert _files(out.parent) == []


@pytest.mark.slow
def test_after_sigkill_a_hidden_temporary_remains_and_the_next_run_removes_it(tmp_path):
    out = tmp_path / "out" / "model.py"
    proc, _ = _start_blocked(tmp_path, ["build", str(TINY), "-o", str(out)])
    proc.kill()
    proc.communicate(timeout=60)
    left = _files(out.parent)
    assert len(left) == 1 and left[0].startswith(".model.py.cnnc-") and left[0].endswith(".tmp")
    assert main(["build", str(TINY), "-o", str(out)]) == 0
    assert _files(out.parent) == ["model.py"]


FAKE_DOT = textwrap.dedent("""\
    #!{python}
    import os, sys, time
    with open(os.environ["FAKE_DOT_PIDFILE"], "w") as f:
        f.write(str(os.getpid()))
    time.sleep(120)
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
@pytest.mark.parametrize("sig,status,line", [(signal.SIGINT, 130, "cnnc: interrupted\n"),
                                             (signal.SIGTERM, 143, "cnnc: terminated\n")], ids=["SIGINT", "SIGTERM"])
def test_interrupted_render_kills_dot_and_leaves_nothing(tmp_path, sig, status, line):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dot = bin_dir / "dot"
    dot.write_text(FAKE_DOT.format(python=sys.executable))
    dot.chmod(0o755)
    pidfile = tmp_path / "dot.pid"
    out = tmp_path / "out" / "net.svg"
    env = {**ENV, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_DOT_PIDFILE": str(pidfile)}
    proc = subprocess.Popen([sys.executable, "-m", "cnnc", "render", str(RESIDUAL), "-o", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (pidfile.exists() and pidfile.read_text()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "dot never started"
        time.sleep(0.05)
    dot_pid = int(pidfile.read_text())
    assert _alive(dot_pid)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (status, line)
    assert not _alive(dot_pid), "dot outlived cnnc"
    assert _files(out.parent) == []


# ---- the same inputs, the same bytes --------------------------------------------------------------
def test_identical_builds_are_byte_identical(tmp_path, capsys):
    import torch

    import cnnc

    weights = tmp_path / "w.pth"
    torch.save(cnnc.compile(TINY).state_dict(), weights)
    for name in ("a", "b"):
        assert main(["build", str(TINY), "--weights", str(weights), "-o", str(tmp_path / name / "model.py")]) == 0
    for suffix in (".py", ".pth"):
        assert (tmp_path / "a" / f"model{suffix}").read_bytes() == (tmp_path / "b" / f"model{suffix}").read_bytes()
    assert main(["build", str(TINY), "--weights", str(weights), "-o", str(tmp_path / "a" / "other.py")]) == 0
    assert (tmp_path / "a" / "other.pth").read_bytes() == (tmp_path / "a" / "model.pth").read_bytes()


@needs_dot
@pytest.mark.parametrize("fmt", ["dot", "svg"])
def test_identical_renders_are_byte_identical(tmp_path, capsys, fmt):
    for name in ("a", "b"):
        assert main(["render", str(RESIDUAL), "-o", str(tmp_path / name / f"net.{fmt}")]) == 0
    assert (tmp_path / "a" / f"net.{fmt}").read_bytes() == (tmp_path / "b" / f"net.{fmt}").read_bytes()
