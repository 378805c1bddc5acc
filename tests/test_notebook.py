"""Notebook display: cnnc.render's Picture, cnnc.summary's table, a compiled module that knows its spec."""
import pickle
import shutil
import sys
import xml.etree.ElementTree as ET

import pytest

import cnnc
from cnnc.cli import main
from cnnc.diagnostics import CnncError
from cnnc_testlib import ROOT, SPECS, TEST_SPECS

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def test_render_gives_the_cli_picture(capsys):
    spec = str(TEST_SPECS / "render_repeat.cnn")
    pic = cnnc.render(spec, depth=2, rankdir="LR")
    assert main(["render", "--dot", spec, "--depth", "2", "--rankdir", "LR"]) == 0
    assert pic.dot == capsys.readouterr().out
    assert pic.depth == 2 and "render_repeat" in repr(pic)
    # without a depth: the CLI's choice
    assert main(["render", "--dot", str(SPECS / "resnet50.cnn")]) == 0
    assert cnnc.render(SPECS / "resnet50.cnn").dot == capsys.readouterr().out


def test_the_svg_is_drawn_lazily(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no Graphviz: the picture still exists
    pic = cnnc.render(TEST_SPECS / "render_concat.cnn")
    assert pic.dot.startswith('digraph "render_concat"')
    with pytest.raises(CnncError, match="`dot` program was not found"):
        pic._repr_svg_()
    pic.save(tmp_path / "net.dot")  # DOT text needs no Graphviz
    assert (tmp_path / "net.dot").read_text() == pic.dot


@needs_dot
def test_svg_and_save(tmp_path):
    pic = cnnc.render(TEST_SPECS / "render_concat.cnn")
    svg = pic._repr_svg_()
    assert ET.fromstring(svg.encode()).tag == "{http://www.w3.org/2000/svg}svg"
    assert pic._repr_svg_() is svg  # dot runs once
    pic.save(tmp_path / "a" / "net.png")
    assert (tmp_path / "a" / "net.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pic.save(tmp_path / "net.image", format="pdf")
    assert (tmp_path / "net.image").read_bytes()[:4] == b"%PDF"
    with pytest.raises(CnncError, match="cannot tell the picture format"):
        pic.save(tmp_path / "net.jpeg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "net.image"]


def test_summary_is_a_dict_shown_as_a_table():
    s = cnnc.summary(TEST_SPECS / "tiny_resnet.cnn")
    assert isinstance(s, dict) and s["params"] == sum(r["params"] for r in s["layers"])
    assert "<table>" in s._repr_html_() and s._repr_markdown_().startswith("## tiny_resnet")


TINY = """
network tiny(classes=4) {
    x = input(3, 16, 16)
    x = x -> conv(8, 3, padding=1, bias=false) -> bn -> relu
    output logits = x -> global_avgpool -> flatten -> linear(classes)
}
"""


def test_a_compiled_module_knows_its_spec(tmp_path):
    pytest.importorskip("torch")
    model = cnnc.compile(TINY, classes=7)
    assert model.cnnc_spec.spec == TINY and dict(model.cnnc_spec.params) == {"classes": 7}
    assert cnnc.render(model).dot == cnnc.render(TINY, classes=7).dot
    assert "linear 7" in model.cnnc_spec.render().dot
    assert model.cnnc_spec.summary()["params"] == sum(p.numel() for p in model.parameters())
    assert cnnc.summary(model) == model.cnnc_spec.summary()
    fused = cnnc.compile(TINY, fused=True)
    assert "after fusion" in cnnc.render(fused).dot
    # a path is kept absolute, and the reference survives pickling
    by_path = cnnc.compile(str(SPECS / "lenet5.cnn"))
    assert by_path.cnnc_spec.spec == str(SPECS / "lenet5.cnn")
    again = pickle.loads(pickle.dumps(by_path))
    assert again.cnnc_spec == by_path.cnnc_spec and "lenet5" in cnnc.render(again).dot


def test_declared_dependencies():
    """graphviz (the Python package) and numpy are not needed: cnnc writes DOT and runs dot itself;
    matplotlib is the optional `plot` extra, and the test extra installs it."""
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is Python 3.11+")
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [d.split(">")[0].split("=")[0].split(";")[0].strip() for d in project["dependencies"]]
    assert "graphviz" not in names and "numpy" not in names
    assert project["optional-dependencies"]["plot"] == ["matplotlib"]
    assert "matplotlib" in project["optional-dependencies"]["test"]
