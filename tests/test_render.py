"""cnnc render: DOT goldens of small specs, the drawing rules, running Graphviz, and the CLI's errors.

Goldens live in tests/golden/render/; CNNC_UPDATE_GOLDEN=1 rewrites them.
"""
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from cnnc.cli import main
from cnnc.ir.ops import OPS
from cnnc.pipeline import front_end
from cnnc.backends.render import DEFAULT_MAX_NODES, choose_depth, node_count, plan, to_dot
from cnnc_testlib import GOLDEN, ROOT, SPECS, TEST_SPECS, check_golden

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")

GOLDENS = [
    ("render_residual", []),
    ("render_residual", ["--no-merge"]),
    ("render_residual", ["--fused"]),
    ("render_concat", []),
    ("render_repeat", []),
    ("render_repeat", ["--depth", "2"]),
    ("render_repeat", ["--depth", "2", "--no-collapse-repeats"]),
    ("render_repeat", ["--depth", "1"]),
]


def _golden_name(spec, flags):
    suffix = "".join("." + f.lstrip("-").replace("collapse-repeats", "repeats") for f in flags)
    return f"{spec}{suffix}.dot"


def _dot(capsys, *argv) -> str:
    assert main(["render", "--dot", *map(str, argv)]) == 0
    return capsys.readouterr().out


def _edges(dot: str) -> list:
    """(src, dst, attribute text) of every drawn edge (layout-only invisible edges left out)."""
    out = []
    for line in dot.splitlines():
        m = re.match(r"\s*(\w+) -> (\w+) \[(.*)\];$", line)
        if m and 'style="invis"' not in m.group(3):
            out.append(m.groups())
    return out


def _labels(dot: str) -> dict:
    """node id -> label."""
    return dict(re.findall(r'^\s*(\w+) \[label="([^"]*)"', dot, re.M))


def _cluster_labels(dot: str) -> list:
    return re.findall(r'graph \[[^\]]*label="([^"]*)"\];', dot)[1:]  # [0] is the picture's title


@pytest.mark.parametrize("spec,flags", GOLDENS, ids=[_golden_name(s, f) for s, f in GOLDENS])
def test_golden_dot(capsys, spec, flags):
    text = _dot(capsys, TEST_SPECS / f"{spec}.cnn", *flags)
    check_golden(GOLDEN / "render" / _golden_name(spec, flags), text)


# ---- what the picture says --------------------------------------------------------


def test_every_op_has_a_style():
    from cnnc.backends.dot_style import OP_STYLES

    assert set(OPS) <= set(OP_STYLES)


def test_op_labels():
    spec = """
    network labels(size=16) {
        x = input(32, size, size)
        x = x -> conv(64, 3, stride=2, padding=1) -> conv(64, 3, padding=1, groups=64)
              -> conv(64, 3, padding=1, groups=32) -> conv(64, [1, 7], padding=[0, 3])
              -> conv(64, 3, padding=2, dilation=2) -> maxpool(3, stride=2, padding=1)
              -> avgpool(2) -> bn -> relu6 -> global_avgpool -> flatten -> linear(1000)
        output y = x
    }
    """
    labels = set(_labels(to_dot(front_end(spec).graph, merge=False)).values())
    for want in ["conv 3x3/2, 64", "conv 3x3, 64 dw", "conv 3x3, 64 g32", "conv 1x7, 64", "conv 3x3, 64 d2",
                 "maxpool 3x3/2", "avgpool 2x2/2", "bn", "relu6", "global avgpool", "linear 1000",
                 "input 32x16x16", "output y"]:
        assert want in labels, (want, sorted(labels))


def test_labels_of_the_decoder_ops():
    spec = """
    network labels(size=16) {
        x = input(32, size, size)
        a, b = split(x, [8, 24])
        x = concat(b, a) -> conv_transpose(16, 4, stride=2, padding=1) -> groupnorm(4) -> leaky_relu(0.2)
              -> upsample(scale=[2, 1.5], mode="bilinear") -> upsample(size=[8, 8]) -> pixel_shuffle(2)
              -> zeropad(1, 1, 0, 0, 2, 2) -> maxpool(3, dilation=2)
        output y = x
    }
    """
    labels = set(_labels(to_dot(front_end(spec).graph, merge=False)).values())
    for want in ["slice 0:8", "slice 8:32", "convT 4x4 s2, 16", "gn 4", "leaky_relu 0.2", "upsample x2x1.5 bilinear",
                 "upsample to 8x8 nearest", "pixel shuffle x2", "pad 1 1 0 0 2 2", "maxpool 3x3/3 d2"]:
        assert want in labels, (want, sorted(labels))


def test_merging_keeps_every_op_and_shape(capsys):
    merged = _dot(capsys, TEST_SPECS / "render_residual.cnn")
    full = _dot(capsys, TEST_SPECS / "render_residual.cnn", "--no-merge")
    assert "conv 3x3, 16\\nbn · relu" in merged
    assert len(_labels(merged)) < len(_labels(full))
    # every op still named in some label, and only same-shape edges disappear
    count = lambda text, op: sum(lab.count(op) for lab in _labels(text).values())  # noqa: E731
    for op in ("conv", "bn", "relu", "add", "mul", "sigmoid", "dropout"):
        assert count(merged, op) == count(full, op), op
    assert {a[2] for a in _edges(merged)} <= {a[2] for a in _edges(full)}


def test_skip_edges_are_the_shortcuts(capsys):
    dot = _dot(capsys, TEST_SPECS / "render_residual.cnn")
    labels = _labels(dot)
    skips = [(labels[s], labels[d]) for s, d, attrs in _edges(dot) if 'style="dashed"' in attrs]
    # block1: the stem output bypasses two convs; block2: the projection, not the main path;
    # se: the gated tensor bypasses the squeeze path.
    assert skips == [("conv 3x3, 16\\nbn · relu", "add\\nrelu"), ("conv 1x1/2, 32\\nbn", "add\\nrelu"),
                     ("conv 3x3, 32 dw\\nbn · relu6", "mul")]


def test_concat_inputs_are_join_edges(capsys):
    dot = _dot(capsys, TEST_SPECS / "render_concat.cnn")
    labels = _labels(dot)
    joins = [d for s, d, attrs in _edges(dot) if 'color="#e69138"' in attrs]
    assert len(joins) == 6 and all(labels[d] == "concat" for d in joins)


def test_inputs_and_outputs_stand_out(capsys):
    dot = _dot(capsys, TEST_SPECS / "render_concat.cnn")
    assert re.search(r'n0 \[label="input 3x24x24", shape="invhouse"', dot)
    assert re.search(r'out0 \[label="output logits", shape="house", style="filled,bold"', dot)
    assert re.search(r'out1 \[label="train output aux1", shape="house", style="filled,dashed"', dot)


def test_clusters_name_instance_and_block(capsys):
    dot = _dot(capsys, TEST_SPECS / "render_concat.cnn")
    assert _cluster_labels(dot) == ["mixed_a (module)", "branch1", "branch2", "branch3",
                                    "mixed_b (module)", "branch1", "branch2", "branch3"]
    # the branches of a module start on one rank, in spec order
    assert dot.count("rank=same") == 2


def test_depth_collapses_and_repeats(capsys):
    dot = _dot(capsys, TEST_SPECS / "render_repeat.cnn", "--depth", "2")
    labels = list(_labels(dot).values())
    assert "unit1 .. unit3\\nunit x3\\n1.78K params" in labels
    assert "unit1 .. unit2\\nunit x2\\n4.67K params" in labels
    plain = _dot(capsys, TEST_SPECS / "render_repeat.cnn", "--depth", "2", "--no-collapse-repeats")
    assert " x3" not in plain and plain.count("box3d") == 7
    top = _dot(capsys, TEST_SPECS / "render_repeat.cnn", "--depth", "1")
    assert "stage1\\nstage\\n2.08K params" in top and "cluster" not in top


def test_repeats_need_identical_shapes():
    # densenet's dense layers share a block name but not their input width: never collapsed
    g = front_end(SPECS / "densenet121.cnn").graph
    p = plan(g, 3, collapse_repeats=True)
    assert not [u for u in p.units.values() if u.kind == "repeat"]


def test_depth_beyond_the_deepest_path_is_full_detail():
    g = front_end(TEST_SPECS / "render_repeat.cnn").graph
    assert to_dot(g, depth=9) == to_dot(g)


def test_default_depth_rule(capsys):
    g = front_end(TEST_SPECS / "render_repeat.cnn").graph
    assert choose_depth(g) == (None, node_count(plan(g)))
    depth, count = choose_depth(g, max_nodes=12)
    assert depth == 2 and count <= 12 and node_count(plan(g, 3)) > 12
    assert choose_depth(g, max_nodes=1)[0] == 1  # nothing fits: the coarsest picture
    assert main(["render", "--dot", "--max-nodes", "12", str(TEST_SPECS / "render_repeat.cnn")]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"cnnc render: render_repeat has {node_count(plan(g))} nodes at full detail; drawing to depth 2 "
        f"({count} nodes); choose with --depth N"]
    assert "(drawn to depth 2)" in captured.out


# ---- the real specs ---------------------------------------------------------------


def _spec(name):
    path = SPECS / f"{name}.cnn"
    if not path.exists():
        pytest.skip(f"{path.name} not written yet")
    return path


def test_densenet121_clusters_and_edge_labels(capsys):
    dot = _dot(capsys, _spec("densenet121"))
    clusters = _cluster_labels(dot)
    assert sorted(c for c in clusters if c.startswith("denseblock")) == [
        f"denseblock{i} (dense_block)" for i in range(1, 5)]
    assert sorted(c for c in clusters if c.startswith("transition")) == [
        f"transition{i} (transition)" for i in range(1, 4)]
    edges = _edges(dot)
    assert edges and all(re.search(r'label="\d+(x\d+)*(, \d+(x\d+)*)*"', attrs) for _, _, attrs in edges)


def test_inception_v1_modules_and_branches(capsys):
    dot = _dot(capsys, _spec("inception_v1"))
    assert "cnnc render:" not in capsys.readouterr().err  # full detail fits: no note
    clusters = _cluster_labels(dot)
    modules = [c for c in clusters if c.endswith("(inception)")]
    assert len(modules) == 9
    assert sum(c.startswith("branch") for c in clusters) == 36


@pytest.mark.parametrize("name", ["densenet201", "inception_v4"])
def test_big_specs_get_a_legible_default_depth(capsys, name):
    g = front_end(_spec(name)).graph
    depth, count = choose_depth(g)
    assert depth is not None and count <= DEFAULT_MAX_NODES
    assert main(["render", "--dot", str(_spec(name))]) == 0
    captured = capsys.readouterr()
    assert f"drawing to depth {depth} ({count} nodes)" in captured.err
    assert node_count(plan(g, depth)) == count == len(_labels(captured.out))


@needs_dot
@pytest.mark.parametrize("name", sorted(p.stem for p in SPECS.glob("*.cnn")))
def test_dot_accepts_every_spec(name):
    g = front_end(SPECS / f"{name}.cnn").graph
    text = to_dot(g, choose_depth(g)[0])
    r = subprocess.run(["dot", "-Tsvg", "-o", os.devnull], input=text.encode(), capture_output=True)
    assert r.returncode == 0 and not r.stderr, r.stderr.decode()


@needs_dot
@pytest.mark.parametrize("name", ["densenet201", "inception_v4"])
def test_big_specs_render_to_svg_quickly(tmp_path, name):
    spec = _spec(name)
    start = time.perf_counter()
    assert main(["render", str(spec), "-o", str(tmp_path / f"{name}.svg")]) == 0
    assert time.perf_counter() - start < 10
    assert ET.parse(tmp_path / f"{name}.svg").getroot().tag.endswith("svg")


# ---- running Graphviz and the command line ---------------------------------------


@needs_dot
def test_svg_png_pdf_are_valid(tmp_path):
    spec = str(TEST_SPECS / "render_concat.cnn")
    out = tmp_path / "new" / "dir"  # created on demand
    assert main(["render", spec, "-o", str(out / "net.svg")]) == 0
    assert main(["render", spec, "--format", "png", "-o", str(out / "net.image")]) == 0
    assert main(["render", spec, "-o", str(out / "net.pdf")]) == 0
    root = ET.parse(out / "net.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    png = (out / "net.image").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert (out / "net.pdf").read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in out.iterdir()) == ["net.image", "net.pdf", "net.svg"]  # no temporaries left


def test_dot_file_output(tmp_path, capsys):
    spec = str(TEST_SPECS / "render_residual.cnn")
    assert main(["render", spec, "-o", str(tmp_path / "net.dot")]) == 0
    assert (tmp_path / "net.dot").read_text() == _dot(capsys, spec)


def test_output_directory_that_cannot_be_created(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    assert main(["render", str(TEST_SPECS / "render_residual.cnn"), "-o",
                 str(tmp_path / "file" / "sub" / "net.dot")]) == 1
    assert "error: cannot create the output directory" in capsys.readouterr().err


@needs_dot
def test_failed_dot_leaves_nothing(tmp_path):
    from cnnc.diagnostics import CnncError
    from cnnc.backends.render import render_file

    with pytest.raises(CnncError, match="Graphviz's `dot` failed"):
        render_file("digraph { this is not dot", "svg", str(tmp_path / "x.svg"))
    assert list(tmp_path.iterdir()) == []


def test_missing_dot(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    spec = str(TEST_SPECS / "render_residual.cnn")
    out = tmp_path / "pics" / "net.svg"
    assert main(["render", spec, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "`dot` program was not found" in err
    assert "apt-get install graphviz" in err and "brew install graphviz" in err and "--dot" in err
    assert not out.parent.exists()
    assert main(["render", "--dot", spec]) == 0  # DOT text needs no Graphviz
    assert capsys.readouterr().out.startswith('digraph "render_residual"')


def test_fused_draws_the_fused_graph(capsys):
    dot = _dot(capsys, TEST_SPECS / "render_residual.cnn", "--fused")
    labels = _labels(dot)
    assert "fused conv 3x3, 16 g4\\n+ bn · add · relu" in labels.values()
    assert not [lab for lab in labels.values() if lab.startswith("conv ") or lab.startswith("add")]
    # the projection absorbed block2's add: the tensor that skips is the block input, into the projection
    skips = [(labels[s], labels[d]) for s, d, attrs in _edges(dot) if 'style="dashed"' in attrs]
    assert skips == [("fused conv 3x3, 16\\n+ bn · relu", "fused conv 3x3, 16 g4\\n+ bn · add · relu"),
                     ("fused conv 3x3, 16 g4\\n+ bn · add · relu", "fused conv 1x1/2, 32\\n+ bn · add · relu"),
                     ("fused conv 3x3, 32 dw\\n+ bn · relu6", "mul")]


@pytest.mark.parametrize("argv", [[], ["--format", "svg"], ["-o", "net.jpeg"], ["--dot", "--format", "png"],
                                  ["--depth", "0", "--dot"]])
def test_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(["render", str(TEST_SPECS / "render_residual.cnn"), *argv])
    assert e.value.code == 2


def test_spec_errors_exit_1(tmp_path, capsys):
    bad = tmp_path / "bad.cnn"
    bad.write_text("network bad() {\n    x = input(3, 8, 8)\n    output y = x -> conv(4, 9)\n}\n")
    assert main(["render", "--dot", str(bad)]) == 1
    assert "bad.cnn:3:" in capsys.readouterr().err


def test_render_imports_no_torch():
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "cnnc", "render", "--dot", "specs/resnet18.cnn"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith('digraph "resnet18"')
    modules = [line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line]
    assert modules and not [m for m in modules if m.split(".")[0] in ("torch", "triton", "numpy")]
