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
from cnnc.backends.render import DEFAULT_MAX_HEIGHT, choose_depth, estimate_extent, node_count, plan, to_dot
from cnnc_testlib import GOLDEN, ROOT, SPECS, TEST_SPECS, check_golden

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")

GOLDENS = [
    ("render_residual", []),
    ("render_residual", ["--no-merge", "--max-height", "4000"]),  # full detail: unmerged, it is taller
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
    """Labels of the block and group clusters ([0] is the picture's title; the legend is left out)."""
    return [lab for lab in re.findall(r'graph \[[^\]]*label="([^"]*)"\];', dot)[1:] if lab != "legend"]


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
    merged = _dot(capsys, TEST_SPECS / "render_residual.cnn", "--depth", "9")
    full = _dot(capsys, TEST_SPECS / "render_residual.cnn", "--no-merge", "--depth", "9")
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
    assert dot.count("rank=same") - dot.count("rank=same; legend;") == 2


def test_depth_collapses_and_repeats(capsys):
    dot = _dot(capsys, TEST_SPECS / "render_repeat.cnn", "--depth", "2")
    labels = list(_labels(dot).values())
    assert "unit1 .. unit3\\nunit x3\\n1.78K params" in labels
    assert "unit1 .. unit2\\nunit x2\\n4.67K params" in labels
    plain = _dot(capsys, TEST_SPECS / "render_repeat.cnn", "--depth", "2", "--no-collapse-repeats")
    assert " x3" not in plain and plain.count("box3d") == 7
    top = _dot(capsys, TEST_SPECS / "render_repeat.cnn", "--depth", "1", "--no-legend")
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
    assert choose_depth(g) == (None, estimate_extent(plan(g)))
    budget = estimate_extent(plan(g, 2)) + 1
    depth, px = choose_depth(g, max_height=budget)
    assert depth == 2 and px < budget < estimate_extent(plan(g, 3))
    assert choose_depth(g, max_height=1)[0] == 1  # nothing fits: the coarsest picture
    assert main(["render", "--dot", "--max-height", str(budget), str(TEST_SPECS / "render_repeat.cnn")]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"cnnc render: render_repeat at full detail would be about {estimate_extent(plan(g)):,} px tall; "
        f"drawing to depth 2 (about {px:,} px); choose with --depth N"]
    assert "(drawn to depth 2)" in captured.out


# ---- the real specs ---------------------------------------------------------------


def _spec(name):
    path = SPECS / f"{name}.cnn"
    if not path.exists():
        pytest.skip(f"{path.name} not written yet")
    return path


def test_densenet121_clusters_and_edge_labels(capsys):
    dot = _dot(capsys, _spec("densenet121"), "--depth", "3")
    clusters = _cluster_labels(dot)
    assert sorted(c for c in clusters if c.startswith("denseblock")) == [
        f"denseblock{i} (dense_block)" for i in range(1, 5)]
    assert sorted(c for c in clusters if c.startswith("transition")) == [
        f"transition{i} (transition)" for i in range(1, 4)]
    edges = _edges(dot)
    assert edges and all(re.search(r'label="\d+(x\d+)*(, \d+(x\d+)*)*"', attrs) for _, _, attrs in edges)


def test_inception_v1_modules_and_branches(capsys):
    dot = _dot(capsys, _spec("inception_v1"), "--max-height", "10000")
    assert "cnnc render:" not in capsys.readouterr().err  # full detail fits: no note
    clusters = _cluster_labels(dot)
    modules = [c for c in clusters if c.endswith("(inception)")]
    assert len(modules) == 9
    assert sum(c.startswith("branch") for c in clusters) == 36


@pytest.mark.parametrize("name", ["densenet201", "inception_v4"])
def test_big_specs_get_a_legible_default_depth(capsys, name):
    g = front_end(_spec(name)).graph
    depth, px = choose_depth(g)
    assert depth is not None and px <= DEFAULT_MAX_HEIGHT < estimate_extent(plan(g, depth + 1))
    assert main(["render", "--dot", str(_spec(name))]) == 0
    captured = capsys.readouterr()
    assert f"drawing to depth {depth} (about {px:,} px)" in captured.err
    assert node_count(plan(g, depth)) == len(_labels(captured.out))


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


# ---- pictures that fit, repeats, legend, labels ------------------------------------------------


def _png_size(path) -> tuple:
    """(width, height) from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _layout_px(dot_text: str, rankdir: str = "TB") -> int:
    """dot's own layout size along the rank axis, in pixels at 96 dpi (`dot -Tplain`: inches)."""
    r = subprocess.run(["dot", "-Tplain"], input=dot_text.encode(), capture_output=True, check=True)
    _, _, width, height = r.stdout.decode().split("\n", 1)[0].split()[:4]
    return round(float(height if rankdir == "TB" else width) * 96)


@needs_dot
@pytest.mark.slow
@pytest.mark.parametrize("name", ["densenet121", "resnet50", "efficientnet_b0", "convnext_tiny"])
def test_default_pngs_fit_2500_px(tmp_path, name):
    out = tmp_path / f"{name}.png"
    start = time.perf_counter()
    assert main(["render", str(_spec(name)), "-o", str(out)]) == 0
    assert time.perf_counter() - start < 10
    width, height = _png_size(out)
    assert height <= 2500 and width < 1500, (width, height)


@needs_dot
@pytest.mark.slow
@pytest.mark.parametrize("rankdir", ["TB", "LR"])
def test_the_estimate_errs_large_and_the_chosen_depth_fits(rankdir):
    """For every spec, the default picture's real layout fits the budget (unless even depth 1 is
    estimated too big), and the estimate is above dot's layout but not far above."""
    names = sorted(p.stem for p in SPECS.glob("*.cnn"))
    if rankdir == "LR":
        names = ["densenet121", "inception_v1", "resnet50", "efficientnet_b0", "vgg16", "convnext_tiny"]
    for name in names:
        g = front_end(SPECS / f"{name}.cnn").graph
        depth, px = choose_depth(g, rankdir=rankdir)
        actual = _layout_px(to_dot(g, depth, rankdir=rankdir), rankdir)
        assert actual <= px <= 1.3 * actual, (name, depth, px, actual)
        if px <= DEFAULT_MAX_HEIGHT:
            assert actual <= DEFAULT_MAX_HEIGHT, (name, actual)


def test_repeats_collapse_although_drop_rates_differ(capsys):
    # convnext_tiny: rate = 0.1 * k / 17 for blocks k = 0..17; stage 3 (features.5) holds k = 6..14
    dot = _dot(capsys, _spec("convnext_tiny"), "--depth", "3")
    lo, hi = 0.1 * 6 / 17, 0.1 * 14 / 17
    assert f'"0 .. 8\\ncnblock x9, drop {lo:.2f}–{hi:.2f}\\n' in dot and '"features.5.0 .. features.5.8: ' in dot
    # efficientnet_b0: rate = 0.2 * k / 16; the 192-channel stage (features.6) repeats k = 12..14
    # after its first block
    dot = _dot(capsys, _spec("efficientnet_b0"), "--depth", "3")
    lo, hi = 0.2 * 12 / 16, 0.2 * 14 / 16
    assert f'"1 .. 3\\nmbconv x3, drop {lo:.2f}–{hi:.2f}\\n' in dot and '"features.6.1 .. features.6.3: ' in dot
    # a different structure never collapses: the first block of each stage stays apart
    assert '"0\\nmbconv\\n' in dot and 'tooltip="features.6.0 (' in dot


def test_the_fused_view_collapses_too(capsys):
    plain = _labels(_dot(capsys, _spec("resnet50"), "--depth", "2"))
    fused = _labels(_dot(capsys, _spec("resnet50"), "--depth", "2", "--fused"))
    repeats = [lab for lab in fused.values() if " x" in lab]
    assert [r.split("\\n")[1] for r in repeats] == ["bottleneck x2", "bottleneck x3", "bottleneck x5", "bottleneck x2"]
    assert len(fused) == len(plain)


def test_legend_lists_what_the_picture_uses(capsys):
    dot = _dot(capsys, TEST_SPECS / "render_residual.cnn")
    legend = re.search(r"subgraph cluster_legend \{(.*?)\n  \}", dot, re.S).group(1)
    assert "skip: shortcut into add/mul" in legend and "concat input" not in legend
    assert ">conv<" in legend and ">norm<" not in legend  # bn merged into its conv: no norm node
    dot = _dot(capsys, TEST_SPECS / "render_concat.cnn")
    legend = re.search(r"subgraph cluster_legend \{(.*?)\n  \}", dot, re.S).group(1)
    assert "concat input" in legend and "train output" in legend
    assert "cluster_legend" not in _dot(capsys, TEST_SPECS / "render_concat.cnn", "--no-legend")
    lr = _dot(capsys, TEST_SPECS / "render_concat.cnn", "--rankdir", "LR")
    table = re.search(r"label=<(<TABLE.*</TABLE>)>", lr).group(1)
    assert all(row.count("<TD") == 1 for row in table.split("<TR>")[1:])  # one column left to right


def test_zeropad_labels():
    from cnnc.backends.dot_style import OP_STYLES

    def label(l, r, t, b):
        g = front_end(f"network z() {{\n x = input(1, 8, 8)\n output y = x -> zeropad({l}, {r}, {t}, {b})\n}}\n").graph
        return OP_STYLES["zeropad"].label(g.nodes[1], [g.nodes[0].shape])

    assert label(1, 1, 2, 2) == "pad 1 1 2 2"
    assert label(-1, 0, -2, 0) == "crop 1 0 2 0"
    assert label(-1, 1, -1, 1) == "shift left 1, up 1"
    assert label(2, -2, 0, 0) == "shift right 2"
    assert label(-1, 2, 0, 0) == "crop left 1 · pad right 2"


@needs_dot
def test_dpi(tmp_path):
    spec = str(TEST_SPECS / "render_concat.cnn")
    assert main(["render", spec, "-o", str(tmp_path / "a.png")]) == 0
    assert main(["render", spec, "--dpi", "192", "-o", str(tmp_path / "b.png")]) == 0
    (w1, h1), (w2, h2) = _png_size(tmp_path / "a.png"), _png_size(tmp_path / "b.png")
    assert abs(w2 / w1 - 2) < 0.05 and abs(h2 / h1 - 2) < 0.05


@needs_dot
def test_labels_stay_inside_collapsed_boxes(tmp_path):
    """In the SVG, every text line of a box3d node lies inside its front face: below the face's top
    edge (the first horizontal line Graphviz draws under the 3-D top) and above its bottom."""
    assert main(["render", str(_spec("resnet50")), "--depth", "2", "-o", str(tmp_path / "r.svg")]) == 0
    ns = {"s": "http://www.w3.org/2000/svg"}
    boxes = 0
    for node in ET.parse(tmp_path / "r.svg").getroot().iter("{http://www.w3.org/2000/svg}g"):
        if node.get("class") != "node" or not node.findall(".//s:polyline", ns):
            continue
        polygon = node.find(".//s:polygon", ns)
        bottom = max(float(p.split(",")[1]) for p in polygon.get("points").split())
        face_top = float(node.find(".//s:polyline", ns).get("points").split()[0].split(",")[1])
        for text in node.findall(".//s:text", ns):
            baseline, size = float(text.get("y")), float(text.get("font-size"))
            assert baseline - 0.75 * size >= face_top, (text.text, baseline, face_top)
            assert baseline + 0.25 * size <= bottom, (text.text, baseline, bottom)
        boxes += 1
    assert boxes >= 8
