"""Honest dispatch (`cnnc.kernels.dispatch`): a depthwise or grouped conv of a generated module
runs a Triton kernel only where a committed measurement for the device shows it faster than the
torch route (cuDNN), by the policy's timing; the decision is made once per layer; the torch route
(`folded_conv2d`) computes what the kernels compute; `tools/dispatch_table.py` writes what
`choose` reads; `cnnc build --explain` shows it."""

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cnnc import kernels
from cnnc.backends import runtime
from cnnc.kernels import Policy, dispatch, using_policy
from kernels_testlib import DEVICE, assert_close_to_reference, reference_conv2d

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tools"))
import dispatch_table  # noqa: E402

H200 = "NVIDIA H200"
DW = dict(x_shape=(64, 144, 56, 56), weight_shape=(144, 1, 3, 3), groups=144, stride=(1, 1), padding=(1, 1),
          dilation=(1, 1))


def choose(device=H200, policy=Policy(), timing="host", dtype="float16", layout="channels_last", **conv):
    conv = dict(DW, **conv)
    return dispatch.choose(device, dtype, layout, conv["x_shape"], conv["weight_shape"], conv["groups"],
                           conv["stride"], conv["padding"], conv["dilation"], policy, timing)


@pytest.fixture
def table_dir(tmp_path, monkeypatch):
    """An empty directory as the package's dispatch tables; `write(table)` puts one there."""
    monkeypatch.setattr(dispatch, "TABLE_DIR", tmp_path)
    for cached in (dispatch.tables, dispatch.choose):
        cached.cache_clear()
    yield tmp_path
    for cached in (dispatch.tables, dispatch.choose):
        cached.cache_clear()


def measured(cls, triton, ops, fused=None, dtype="float16", layout="channels_last"):
    """A table entry: (host, device) us per variant."""
    us = {"triton": dict(zip(("host", "device"), triton)), "ops": dict(zip(("host", "device"), ops))}
    if fused:
        us["fused"] = dict(zip(("host", "device"), fused))
    return {"dtype": dtype, "layout": layout, "class": cls, "layer": "test", "epilogue": "relu", "us": us}


def write(table_dir, *entries, device=H200):
    table = {"format": 1, "device": device, "measured": {"date": "2026-12-01T00:00:00"}, "entries": list(entries)}
    (table_dir / f"{dispatch_table.slug(device)}.json").write_text(json.dumps(table))


def test_shape_classes():
    assert dispatch.shape_class(**DW) == "dw k3 s1 c<=256 px<=2^18"  # 64*56*56 = 200704 pixels
    assert dispatch.shape_class((1, 960, 7, 7), (960, 1, 3, 3), 960, (1, 1), (1, 1), (1, 1)) == "dw k3 s1 c<=1024 px<=2^6"
    assert dispatch.shape_class((64, 96, 112, 112), (96, 1, 3, 3), 96, (2, 2), (1, 1), (1, 1)) == "dw k3 s2 c<=128 px<=2^18"
    assert dispatch.shape_class((8, 16, 9, 9), (32, 1, 5, 5), 16, (2, 1), (2, 2), (1, 1)) == "dw m2 k5 s2x1 c<=32 px<=2^10"
    assert dispatch.shape_class((64, 128, 56, 56), (128, 4, 3, 3), 32, (1, 1), (1, 1), (1, 1)) == "g4x4 k3 s1 c<=128 px<=2^18"
    assert dispatch.shape_class((64, 128, 56, 56), (256, 128, 1, 1), 1, (1, 1), (0, 0), (1, 1)) is None  # dense


def test_no_table_means_cudnn(table_dir):
    c = choose()
    assert c == dispatch.Choice("torch", "depthwise", "dw k3 s1 c<=256 px<=2^18", "cuDNN: no dispatch table for NVIDIA H200")
    assert choose(device=dispatch.NO_DEVICE).backend == "torch"


def test_measured_faster_by_the_margin_wins(table_dir):
    cls = "dw k3 s1 c<=256 px<=2^18"
    write(table_dir, measured(cls, triton=(40.0, 30.0), ops=(60.0, 31.0), fused=(50.0, 29.0)))
    host = choose()
    assert host.backend == "triton" and "Triton 40 us, cuDNN (ops) 60 us per call, host time, 1.50x" in host.reason
    # device time: 30 against 31 is within MARGIN, so cuDNN
    device = choose(timing="device")
    assert device.backend == "torch" and device.reason.startswith("cuDNN: measured on NVIDIA H200 (2026-12-01)")
    # against the fused cuDNN route instead (the policy's cudnn_epilogue)
    assert choose(policy=Policy(cudnn_epilogue="fused")).backend == "triton"  # 40 * 1.05 < 50
    assert choose(policy=Policy(cudnn_epilogue="fused"), timing="device").backend == "torch"
    # other keys of the same table: dtype, layout, class
    for other in (dict(dtype="float32"), dict(layout="nchw"), dict(x_shape=(1, 144, 56, 56))):
        c = choose(**other)
        assert c.backend == "torch" and "has no measurement of" in c.reason, c


def test_missing_or_failed_variants_mean_cudnn(table_dir):
    cls = "dw k3 s1 c<=256 px<=2^18"
    entry = measured(cls, triton=(40.0, 30.0), ops=(60.0, 60.0))
    del entry["us"]["triton"]["device"]
    write(table_dir, entry)
    assert choose().backend == "triton"
    c = choose(timing="device")
    assert c.backend == "torch" and "lacks a device time for Triton" in c.reason
    assert "lacks a host time for fused" in choose(policy=Policy(cudnn_epilogue="fused")).reason


def test_policy_overrides_and_where_no_kernel_runs(table_dir):
    write(table_dir, measured("dw k3 s1 c<=256 px<=2^18", triton=(1.0, 1.0), ops=(100.0, 100.0)))
    assert choose(policy=Policy(dispatch="torch")).backend == "torch"
    assert choose(device="NVIDIA H100 80GB HBM3", policy=Policy(dispatch="triton")).backend == "triton"
    assert choose(device="cpu") == dispatch.Choice("torch", "depthwise", "dw k3 s1 c<=256 px<=2^18",
                                                   "torch (CPU): the Triton kernels run on a GPU")
    assert choose(device="cpu-interpreter").backend == "triton"
    dense = choose(weight_shape=(144, 144, 1, 1), groups=1, padding=(0, 0))
    assert dense.kernel == "dense" and dense.reason == "cuDNN: dense conv: cnnc has no dense kernel"
    big = choose(weight_shape=(144, 1, 13, 13), padding=(6, 6))
    assert big.backend == "torch" and "the kernels take up to 11x11" in big.reason
    assert choose(dtype="int8").backend == "torch"
    with pytest.raises(ValueError, match="timing"):
        choose(timing="wall")


def test_committed_tables_load():
    """Every table in the package parses, and names a device once; every entry's class is a class."""
    dispatch.tables.cache_clear()
    found = dispatch.tables()
    assert len(found) == len(list(dispatch.TABLE_DIR.glob("*.json")))
    for device, table in found.items():
        for entry in table["entries"]:
            assert entry["class"].split()[0] == "dw" or entry["class"].startswith("g"), entry
            assert set(entry["us"]) <= {"triton", "ops", "fused"} and "ops" in entry["us"]


def test_dispatch_table_tool(tmp_path_factory, table_dir):
    """tools/dispatch_table.py: rows whose check failed lose that variant; the entry per class is
    the least favourable to Triton; the result is what `choose` reads."""
    cls = "dw k3 s1 c<=256 px<=2^18"

    def row(layer, triton, ops, err=1e-3, cls=cls):
        return {"dtype": "float16", "layout": "channels_last", "class": cls, "layer": layer, "epilogue": "relu",
                "us": {"triton": {"host": triton, "device": triton}, "ops": {"host": ops, "device": ops},
                       "fused": None},
                "rel_err": {"triton": err, "ops": 1e-3, "fused": None}}

    measure = {"environment": {"device": H200, "date": "2026-12-01T10:00:00", "torch": "2.11", "triton": "3.6"},
               "dispatch": [row("a", 10.0, 30.0), row("b", 20.0, 30.0),
                            row("c", 5.0, 30.0, err=float("nan"), cls="dw k5 s1 c<=256 px<=2^18")]}
    work = tmp_path_factory.mktemp("measure")
    path = work / "measure.json"
    path.write_text(json.dumps(measure))
    out = work / "tables"
    assert dispatch_table.main([str(path), "--out", str(out)]) == 0
    written = json.loads((out / "nvidia-h200.json").read_text())
    assert [e["layer"] for e in written["entries"]] == ["b", "c"]  # b: 20/30 is worse for Triton than a: 10/30
    assert "triton" not in written["entries"][1]["us"]  # c failed its check
    (table_dir / "nvidia-h200.json").write_text((out / "nvidia-h200.json").read_text())
    assert choose().backend == "triton"  # 20 us against 30
    c = choose(weight_shape=(144, 1, 5, 5), padding=(2, 2))
    assert c.backend == "torch" and "lacks a host time for Triton" in c.reason


# ---------------------------------------------------------------------------
# The runtime: decided once per layer; the torch route computes what the kernel computes
# ---------------------------------------------------------------------------
def fused_layer(channels=8, groups=8, activation="relu6"):
    torch.manual_seed(0)
    layer = runtime.FusedConv2d(channels, channels, 3, padding=1, groups=groups, bias=False, bn=True,
                                activation=activation)
    with torch.no_grad():
        layer.bn.running_mean.uniform_(-0.5, 0.5)
        layer.bn.running_var.uniform_(0.5, 2.0)
        layer.bn.weight.uniform_(0.5, 1.5)
        layer.bn.bias.uniform_(-0.5, 0.5)
    return layer.to(DEVICE).eval()


@pytest.mark.parametrize("groups", [8, 2])
def test_fused_layer_routes_agree(groups):
    """The same FusedConv2d through the kernel (the interpreter here) and through the torch route."""
    layer = fused_layer(groups=groups)
    x = torch.randn(2, 8, 7, 7, device=DEVICE)
    residual = torch.randn(2, 8, 7, 7, device=DEVICE)
    with torch.no_grad():
        ref = layer(x, residual)
        assert layer.__dict__["_kernel_choice"][1].backend == ("triton" if kernels.INTERPRET or DEVICE == "cuda"
                                                               else "torch")
        with using_policy(dataclasses.replace(kernels.default_policy(), dispatch="torch")):
            got = layer(x, residual)
            assert layer.__dict__["_kernel_choice"][1].backend == "torch"
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_choice_is_made_once_per_layer(monkeypatch):
    calls = []
    real = kernels.choose_for
    monkeypatch.setattr(kernels, "choose_for", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    layer = fused_layer()
    conv = runtime.Conv2d(8, 8, 3, padding=1, groups=8).to(DEVICE).eval()
    for m in (layer, conv):  # the torch route: fast (the decision is counted, whatever it is)
        runtime.set_kernel_policy(m, dataclasses.replace(kernels.default_policy(), dispatch="torch"))
    x = torch.randn(2, 8, 7, 7, device=DEVICE)
    with torch.no_grad():
        for _ in range(3):
            layer(x)
            conv(x)
        assert len(calls) == 2
        layer(torch.randn(1, 8, 7, 7, device=DEVICE))  # another shape: another decision
        assert len(calls) == 3
        layer(x.contiguous(memory_format=torch.channels_last))  # another layout too
        assert len(calls) == 4
    assert "_kernel_choice" not in layer.state_dict()


@pytest.mark.parametrize("activation", [None, "relu", "relu6", "silu", "gelu", "hardswish", "sigmoid"])
@pytest.mark.parametrize("with_residual", [False, True])
def test_folded_conv2d(activation, with_residual):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 6, 9, 8, generator=g, dtype=torch.float64)
    w = torch.randn(6, 3, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    residual = torch.randn(2, 6, 5, 4, generator=g, dtype=torch.float64) if with_residual else None
    ref = reference_conv2d(x, w, (2, 2), (1, 1), (1, 1), 2, None, b, activation, residual)
    with torch.no_grad():
        got = kernels.folded_conv2d(x, w, b, stride=2, padding=1, groups=2, activation=activation, residual=residual)
    assert_close_to_reference(got, ref, torch.float64)
    # with gradients wanted, nothing in place: autograd gives the reference's gradients
    w.requires_grad_()
    y = kernels.folded_conv2d(x, w, b, stride=2, padding=1, groups=2, activation=activation, residual=residual)
    (got_grad,) = torch.autograd.grad(y.sum(), w)
    (ref_grad,) = torch.autograd.grad(reference_conv2d(x, w, (2, 2), (1, 1), (1, 1), 2, None, b, activation,
                                                       residual).sum(), w)
    torch.testing.assert_close(got_grad, ref_grad)


def test_folded_conv2d_fused_cudnn_form_only_where_it_applies():
    """cudnn_epilogue=fused asks for cudnn_convolution_relu, a CUDA-only op without a fake
    implementation: CPU tensors, other activations and traces take F.conv2d + ops."""
    x, w, b = torch.randn(1, 4, 5, 5), torch.randn(4, 1, 3, 3), torch.randn(4)
    got = kernels.folded_conv2d(x, w, b, padding=1, groups=4, activation="relu", policy="cudnn_epilogue=fused")
    torch.testing.assert_close(got, F.relu(F.conv2d(x, w, b, padding=1, groups=4)))


def test_build_explain(capsys, tmp_path):
    """`cnnc build --explain`: a row per conv; without a device every one takes cuDNN; with a
    device that has no table, cuDNN and the reason says so."""
    from cnnc.cli import main

    def run(*extra):
        assert main(["build", "mobilenet_v2", "--fused", "-o", str(tmp_path / "m.py"), "--explain", *extra]) == 0
        return capsys.readouterr().out

    text = run()
    assert "kernel dispatch for device 'none', float16, channels_last, batch 1:" in text
    assert "features.2.conv.1.0   96->96 k3x3 s2 g96" in text
    assert "no device named, so no measurement applies" in text
    assert text.rstrip().endswith("52 convolutions: 0 on Triton kernels, 52 on cuDNN")
    text = run("--device", "Some GPU", "--batch", "64", "--dtype", "bfloat16")
    assert "dw k3 s2 c<=128 px<=2^18" in text and "no dispatch table for Some GPU" in text
