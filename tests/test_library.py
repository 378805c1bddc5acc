"""The spec library as users reach it: the catalog (`cnnc list`), catalog names in place of files
(`cnnc check resnet50`, `cnnc.compile("resnet50")`) from any directory, imports that fall back to
the library, presets and their mistakes, and (slow) the library installed from the wheel.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cnnc.frontend.catalog as catalog
import cnnc.frontend.loader as loader
from cnnc.cli import main
from cnnc.diagnostics import CnncError
from cnnc.pipeline import front_end
from cnnc_testlib import ROOT, SPECS


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# ---- the catalog -------------------------------------------------------------------------------


def test_the_library_is_the_checkouts_specs():
    assert loader.library_root() == SPECS
    assert catalog.library_files() == sorted(SPECS.glob("*.cnn"))


def test_the_name_index_agrees_with_the_parsed_catalog():
    """Looking up one name reads `preset NAME` lines without parsing: it must find every entry."""
    parsed = {e.name: e.spec for _, items in catalog.entries() for e in items}
    assert catalog.declared_names() == parsed


def test_list_json_rows(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, out, err = _run(capsys, "list", "--format", "json")
    assert code == 0 and err == ""
    rows = json.loads(out)
    assert all(list(r) == ["name", "spec", "overrides", "reference", "params", "macs"] for r in rows)
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names)) >= 40
    r50 = rows[names.index("resnet50")]
    assert r50 == {"name": "resnet50", "spec": "specs/resnet.cnn", "overrides": {"layers": [3, 4, 6, 3]},
                   "reference": "torchvision:resnet50", "params": 25_557_032, "macs": 4_089_184_256}
    large = rows[names.index("nasnet_a_large")]
    assert large["overrides"] == {"size": 331, "cells": 6, "penultimate": 4032, "stem": 96,
                                  "skip_reduction_input": True}
    assert large["spec"] == "specs/nasnet_a_mobile.cnn" and large["reference"] == "timm:nasnetalarge"
    # the row is what `cnnc summary` reports for the entry
    code, out, _ = _run(capsys, "summary", "resnext50_32x4d", "--format", "json")
    summary = json.loads(out)
    row = rows[names.index("resnext50_32x4d")]
    assert (row["params"], row["macs"]) == (summary["params"], summary["macs"])


def test_list_text(capsys):
    code, out, _ = _run(capsys, "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["name", "reference", "params", "MACs", "spec"]
    row = next(line for line in lines if line.startswith("cifar_resnet110 "))
    assert row.split()[1:4] == ["paper:He", "et", "al."] and "1,727,962" in row
    assert lines[-1].startswith(f"{len(json.loads(_run(capsys, 'list', '--format', 'json')[1]))} entries in ")


def test_list_is_torch_free_and_fast():
    script = ("import sys, time; t = time.perf_counter(); from cnnc.cli import main; import io, contextlib\n"
              "with contextlib.redirect_stdout(io.StringIO()): assert main(['list']) == 0\n"
              "assert 'torch' not in sys.modules, 'cnnc list imported torch'\n"
              "print(time.perf_counter() - t)")
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr[-2000:]
    # about 3 s for 41 entries on 2 busy cores; the bound only catches a pathological regression
    assert time.perf_counter() - start < 30, r.stdout


# ---- names in place of files ---------------------------------------------------------------------


def test_catalog_names_work_from_any_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _run(capsys, "check", "resnet50") == (
        0, "resnet50: 176 layers, 25,557,032 parameters, 4.09 GMACs (4,089,184,256)\n", "")
    code, out, _ = _run(capsys, "check", "wide_resnet50_2", "--set", "classes=10")
    assert code == 0 and out.startswith("wide_resnet50_2: ")
    g = front_end("resnext50_32x4d", {"classes": 10}).graph  # the preset's values, then --set's
    assert g.name == "resnext50_32x4d" and dict(g.params)["groups"] == 32 and dict(g.params)["classes"] == 10


@pytest.mark.parametrize("name,message", [
    ("resnt50", "cnnc: error: 'resnt50' is neither a spec file nor a catalog entry; did you mean 'resnet50'?"),
    ("qwerty", "cnnc: error: 'qwerty' is neither a spec file nor a catalog entry; `cnnc list` shows the catalog"),
])
def test_unknown_names(tmp_path, capsys, monkeypatch, name, message):
    monkeypatch.chdir(tmp_path)
    assert _run(capsys, "check", name) == (1, "", message + "\n")


def test_a_missing_file_named_like_an_entry_gets_a_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _run(capsys, "check", "specs/resnet101.cnn") == (
        1, "", "cnnc: error: no such file: 'specs/resnet101.cnn'\n"
               "note: 'resnet101' is a catalog entry: give its name alone to use it\n")


def test_a_file_of_that_name_wins(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resnet50").write_text("network mine(size=8) {\n x = input(3, size, size)\n output o = x\n}\n")
    code, out, _ = _run(capsys, "check", "resnet50")
    assert code == 0 and out.startswith("mine: ")


def test_a_user_spec_imports_the_library_from_anywhere(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.cnn").write_text(
        'import "blocks/resnet.cnn"\n'
        "network net(classes=10) {\n"
        "    x = input(3, 64, 64)\n"
        "    output logits = x -> resnet(false, [1, 1], classes) as _\n"
        "}\n")
    code, out, _ = _run(capsys, "check", "net.cnn")
    assert code == 0 and out.startswith("net: ")
    # the importing file's directory comes first
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "resnet.cnn").write_text("block resnet(x, b, l, c) {\n return x -> conv(c, 1)\n}\n")
    code, out, _ = _run(capsys, "check", "net.cnn")
    assert code == 0 and out.startswith("net: 2 layers")


def test_build_names_the_file_after_the_entry(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run(capsys, "build", "cifar_resnet20")
    assert code == 0 and (tmp_path / "build" / "cifar_resnet20.py").exists()
    assert "class CifarResnet20(nn.Module):" in (tmp_path / "build" / "cifar_resnet20.py").read_text()


def test_compile_takes_a_catalog_name(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import cnnc

    monkeypatch.chdir(tmp_path)
    model = cnnc.compile("resnet50", classes=10)
    assert type(model).__name__ == "Resnet50" and model.fc.out_features == 10


# ---- presets and their mistakes ------------------------------------------------------------------

NET = "network n(classes=10, width=8, sizes=[1, 2]) {\n    x = input(3, 8, 8)\n    output o = x -> conv(width, 1)\n}\n"


@pytest.mark.parametrize("preset,message,line,col", [
    ('preset a(widht=4) reference "paper:x 1999"',
     "preset 'a': network 'n' has no parameter 'widht'; did you mean 'width'?", 5, 10),
    ('preset a(4) reference "paper:x 1999"', "a preset gives network parameters by name", 5, 10),
    ('preset a(width=2 * 4) reference "paper:x 1999"', "a preset's values are literals", 5, 18),
    ('preset a(sizes=[1, width]) reference "paper:x 1999"', "a preset's values are literals", 5, 20),
    ('preset a() reference "torchvision"', "reference \"torchvision\" should read", 5, 8),
    ('preset a() reference "keras:resnet50"', "reference \"keras:resnet50\" should read", 5, 8),
    ('preset a() reference "paper:x"\npreset a() reference "paper:y"', "preset 'a' is declared twice", 6, 8),
])
def test_preset_mistakes_are_located(tmp_path, preset, message, line, col):
    spec = tmp_path / "f.cnn"
    spec.write_text(NET + preset + "\n")
    with pytest.raises(CnncError) as e:
        front_end(spec)
    assert message in e.value.message and (e.value.loc.line, e.value.loc.col) == (line, col), e.value.render()


def test_preset_syntax_and_placement(tmp_path):
    (tmp_path / "lib.cnn").write_text('preset p() reference "paper:x 1"\n')
    (tmp_path / "f.cnn").write_text('import "lib.cnn"\n' + NET)
    with pytest.raises(CnncError, match="imported file declares a preset"):
        front_end(tmp_path / "f.cnn")
    (tmp_path / "g.cnn").write_text(NET + "preset p(width=4)\n")
    with pytest.raises(CnncError, match="expected 'reference'"):
        front_end(tmp_path / "g.cnn")


@pytest.fixture
def library(tmp_path, monkeypatch):
    """A library of our own: tmp_path/lib with a blocks/ directory."""
    lib = tmp_path / "lib"
    (lib / "blocks").mkdir(parents=True)
    monkeypatch.setattr(loader, "library_root", lambda: lib)
    monkeypatch.setattr(catalog, "library_root", lambda: lib)
    return lib


def test_a_name_declared_twice_in_the_library(library, capsys):
    (library / "a.cnn").write_text(NET + 'preset same(width=4) reference "paper:x 1"\n')
    (library / "b.cnn").write_text(NET + 'preset same(width=6) reference "paper:y 2"\n')
    code, _, err = _run(capsys, "list")
    assert code == 1 and err.splitlines()[0] == f"{library / 'b.cnn'}:5:8: error: catalog: preset 'same' is declared twice"
    assert f"{library / 'a.cnn'}:5:8: note: first declared here" in err
    code, _, err = _run(capsys, "check", "same")
    assert code == 1 and "preset 'same' is declared in both" in err


def test_a_bad_value_names_the_preset(library, capsys):
    (library / "a.cnn").write_text(NET + 'preset bad(width=0) reference "paper:x 1"\n')
    code, out, err = _run(capsys, "list")
    assert code == 1 and out == ""  # nothing printed before the error
    assert "error: 'out' of conv must be at least 1, got 0" in err.splitlines()[0]
    assert f"{library / 'a.cnn'}:5:8: note: while building preset 'bad'" in err


# ---- the installed library (slow) --------------------------------------------------------------


@pytest.mark.slow
def test_the_wheel_installs_the_library(tmp_path):
    """Build the wheel, install it into a fresh venv (system site-packages for torch), and use the
    library by name from /: cnnc check, cnnc list, cnnc.compile, and a spec importing its blocks."""
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(wheels), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = wheels.glob("cnnc-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=600)
    py, cli = venv / "bin" / "python", venv / "bin" / "cnnc"
    r = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*argv):
        r = subprocess.run([str(a) for a in argv], cwd="/", env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-1000:] + r.stderr[-3000:]
        return r.stdout

    assert run(cli, "check", "resnet50") == "resnet50: 176 layers, 25,557,032 parameters, 4.09 GMACs (4,089,184,256)\n"
    listing = run(cli, "list", "--format", "json")
    assert {"resnet50", "cifar_resnet110", "preact_resnet50"} <= {r["name"] for r in json.loads(listing)}
    # paths as the rest of cnnc shows them: relative to the working directory, here /
    assert all((Path("/") / r["spec"]).resolve().is_relative_to(venv.resolve()) for r in json.loads(listing))
    user = tmp_path / "user.cnn"
    user.write_text('import "blocks/resnet.cnn"\nnetwork user(classes=4) {\n    x = input(3, 32, 32)\n'
                    "    output logits = x -> resnet(false, [1, 1], classes) as _\n}\n")
    assert run(cli, "check", user).startswith("user: ")
    out = run(py, "-c", "import cnnc; m = cnnc.compile('resnet50', classes=10); "
                        "print(m.fc.out_features, cnnc.__file__)")
    count, where = out.split()
    assert count == "10" and where.startswith(str(venv)), out
