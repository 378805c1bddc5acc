"""cnnc compare: the table's figures against independent references (the depths in the networks'
names, torchvision's metadata), the chart, and the errors."""
import json
import re
import sys
import xml.etree.ElementTree as ET

import pytest

from cnnc.backends.compare import compare_row
from cnnc.backends.reference_metrics import METRICS
from cnnc.cli import main
from cnnc.pipeline import front_end
from cnnc_testlib import ROOT, SPECS, imported_modules

def _row(name, **params):
    """The row of a catalog entry, as `cnnc compare NAME` makes it."""
    result = front_end(name, params)
    preset = result.program.preset
    return compare_row(result.graph, name, preset.name, preset.reference)


@pytest.mark.parametrize("name", ["vgg16", "vgg19", "resnet18", "resnet34", "resnet50", "densenet121"])
def test_depth_is_the_number_in_the_name(name):
    # the weighted layers on the longest path: convs and fcs (a projection shortcut is a shorter path)
    assert _row(name)["depth"] == int(re.search(r"\d+$", name).group())


def test_googlenet_is_22_layers_deep():
    # Szegedy et al. 2015: "22 layers deep when counting only layers with parameters"; the aux heads are off the path
    assert _row("inception_v1")["depth"] == _row("googlenet")["depth"] == 22


def test_rows_are_at_inference_with_published_accuracy():
    row = _row("googlenet")
    assert row["params"] == 6_624_904  # torchvision's pretrained layout, without the aux heads
    assert (row["reference"], row["weights"], row["acc1"], row["acc5"]) == (
        "torchvision:googlenet", "IMAGENET1K_V1", 69.778, 89.53)  # torchvision's docs
    assert _row("resnet50")["acc1"] == 76.13  # V1, the original recipe (DEFAULT is V2's 80.858)
    assert _row("inception_v1")["acc1"] is None  # the paper's version has no torchvision weights


def test_receptive_field_at_the_last_feature_map():
    vgg = _row("vgg16")
    assert vgg["last_feature_map"] == "avgpool" and vgg["receptive_field"] == [212, 212]
    r18 = _row("resnet18")
    assert r18["last_feature_map"].startswith("layer4.") and r18["receptive_field"] == [435, 435]


def test_formats(capsys):
    files = [str(SPECS / "resnet18.cnn"), str(SPECS / "lenet5.cnn")]
    assert main(["compare", *files, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["network"] for r in rows] == ["resnet18", "lenet5"] and rows[1]["acc1"] is None
    assert main(["compare", *files, "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("network,file,params,macs,depth,") and lines[1].startswith("resnet18,")
    assert main(["compare", *files, "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| network") and "| resnet18" in out and "69.76" in out
    assert main(["compare", *files]) == 0
    assert "resnet18" in capsys.readouterr().out


@pytest.mark.slow
def test_compare_over_the_spec_library_writes_table_and_chart(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    chart = tmp_path / "charts" / "compare.svg"
    assert main(["compare", "--library", "--chart", str(chart), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert main(["list", "--format", "json"]) == 0
    catalog = json.loads(capsys.readouterr().out)
    assert [r["network"] for r in rows] == sorted(e["name"] for e in catalog)
    for r, e in zip(rows, sorted(catalog, key=lambda e: e["name"])):  # compare: at inference (no aux heads)
        assert r["params"] <= e["params"] and r["macs"] <= e["macs"], r["network"]
    svg = ET.parse(chart).getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    text = chart.read_text()
    assert all(r["network"] in text for r in rows)  # every point is labelled
    assert sorted(p.name for p in chart.parent.iterdir()) == ["compare.svg"]  # no temporaries
    # every network torchvision has: the same parameters, MACs within 1% of its published GFLOPS
    known = [r for r in rows if r["weights"]]
    assert len(known) >= 15
    everything = {e["name"]: e["params"] for e in catalog}  # the catalog counts training-only heads too
    for r in known:
        ref = METRICS[r["reference"].partition(":")[2]]["weights"][r["weights"]]
        # torchvision's published count includes auxiliary heads (Inception v3's AuxLogits), which
        # compare leaves out at inference
        assert ref["params"] in (r["params"], everything[r["network"]]), r["network"]
        # within 1%, or the published figure's rounding to three decimals (shufflenet_v2_x0_5: 0.04)
        assert abs(r["macs"] / 1e9 - ref["gflops"]) <= max(0.01 * ref["gflops"], 0.0005), r["network"]
    png = tmp_path / "compare.png"
    assert main(["compare", str(SPECS / "resnet18.cnn"), "--chart", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_matplotlib_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    out = tmp_path / "chart.svg"
    assert main(["compare", str(SPECS / "resnet18.cnn"), "--chart", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("cnnc: error: a chart needs matplotlib")
    assert "pip install 'cnnc[plot]'" in captured.err
    assert captured.out == "" and not out.exists()


@pytest.mark.parametrize("argv", [[], ["--chart", "x.jpeg"], ["--format", "xml"]])
def test_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(["compare", *([str(SPECS / "resnet18.cnn")] if argv else []), *argv])
    assert e.value.code == 2


def test_spec_error_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.cnn"
    bad.write_text("network bad() {\n    x = input(3, 8, 8)\n    output y = x -> conv(4, 9)\n}\n")
    out = tmp_path / "chart.svg"
    assert main(["compare", str(SPECS / "lenet5.cnn"), str(bad), "--chart", str(out)]) == 1
    captured = capsys.readouterr()
    assert "bad.cnn:3:" in captured.err and captured.out == "" and not out.exists()


def test_compare_imports_no_torch():
    modules = imported_modules("compare", "specs/resnet18.cnn")
    assert not [m for m in modules if m.split(".")[0] in ("torch", "triton", "torchvision", "matplotlib")]


@pytest.mark.slow
def test_reference_metrics_match_torchvision():
    """The committed table is what tools/reference_metrics.py reads from the installed torchvision."""
    pytest.importorskip("torchvision")
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import reference_metrics
    finally:
        sys.path.remove(str(ROOT / "tools"))
    _, metrics = reference_metrics.collect()
    assert metrics == METRICS
