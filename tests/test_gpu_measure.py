"""`bash tools/gpu_session.sh measure --dry-run`: issue 14's one GPU run, checked on the CPU. The
plan covers what the run must measure (every depthwise and grouped shape class of the five models
at batch 64 and 1, each model under every variant, five profiled layers), its essential part fits
the 8 minutes, the commands are what a lent device will run, and the outputs have their shape.
Imports no torch (the dry run needs none): fast."""
import json
import os
import subprocess
import sys

import pytest

from cnnc_testlib import ROOT

pytest.importorskip("lark")
sys.path.insert(0, str(ROOT / "tools"))
import gpu_measure  # noqa: E402

MODELS = ["mobilenet_v2", "efficientnet_b0", "resnext50_32x4d", "convnext_tiny", "resnet50"]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("measure")
    run = subprocess.run(["bash", str(ROOT / "tools" / "gpu_session.sh"), "measure", "--dry-run"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, OUT=str(out)))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run.stdout, json.loads((out / "measure.json").read_text()), (out / "measure.md").read_text()


def test_the_commands(dry_run):
    stdout, _, _ = dry_run
    warm, timed = stdout.splitlines()[:2]
    assert "for W in 1..8 in parallel: TORCHINDUCTOR_COMPILE_THREADS=2 timeout 150 python3 tools/gpu_measure.py " \
           "--warm-only --shard W/8" in warm
    assert "then: timeout $(( 450 + 20 - elapsed )) python3 tools/gpu_measure.py --out $OUT --budget $(( 450 - " \
           "elapsed ))" in timed
    assert "--dry-run" not in warm + timed


def test_the_plan_covers_the_issue(dry_run):
    _, result, _ = dry_run
    plan = result["plan"]
    kinds = [t["kind"] for t in plan]
    assert kinds[0] == "env" and kinds.count("env") == 1
    # priority order: what decides first comes first, so a cut-off run keeps it
    order = ["env", "dispatch", "eager", "profile", "compiled", "autotune"]
    assert [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k] == order
    runs = {(t["model"], t["batch"], t["variant"]) for t in plan if "variant" in t}
    variants = gpu_measure.EAGER_VARIANTS + gpu_measure.COMPILED_VARIANTS + gpu_measure.AUTOTUNE_VARIANTS
    assert runs == {(m, b, v) for m in MODELS for b in (64, 1) for v in variants}
    assert set(variants) == {"tv", "cnnc_fused", "cnnc_fused_triton", "tv_compile", "cnnc_fused_compile",
                             "cnnc_fused_compile_triton", "tv_max_autotune"}
    assert len([t for t in plan if t["kind"] == "profile"]) == 5
    classes = [t["cls"] for t in plan if t["kind"] == "dispatch"]
    assert len(classes) == len(set(classes)) > 40  # one task per shape class


@pytest.mark.slow
def test_every_depthwise_and_grouped_conv_has_its_class_measured(dry_run):
    """Every depthwise or grouped conv of the models, at batch 64 and 1, has its shape class among
    the dispatch tasks: counted from `cnnc summary`'s rows, not from the plan's own code."""
    from cnnc.display import summary

    classes = {t["cls"] for t in dry_run[1]["plan"] if t["kind"] == "dispatch"}
    dispatch = gpu_measure._dispatch_module()
    for model in MODELS:
        rows = [r for r in summary(model)["layers"] if r["op"] == "conv" and r["groups"] > 1]
        assert bool(rows) == (model != "resnet50"), model  # (resnet50: dense convs only)
        for batch in (64, 1):
            for r in rows:
                c, h, w = r["in_shape"]
                out_c, oh, ow = r["shape"]
                k = r["kernel"]
                # the class from the output size the summary reports: padding chosen to give it
                pad = tuple(((o - 1) * s + (kk - 1) + 1 - i + 1) // 2 for o, s, kk, i in
                            zip((oh, ow), r["stride"], k, (h, w)))
                cls = dispatch.shape_class((batch, c, h, w), (out_c, c // r["groups"]) + tuple(k), r["groups"],
                                           tuple(r["stride"]), pad, (1, 1))
                assert cls in classes, (model, batch, r["path"], cls)


def test_the_essentials_fit_eight_minutes(dry_run):
    _, result, _ = dry_run
    essential = sum(t["estimate_s"] for t in result["plan"] if t["kind"] in ("env", "dispatch", "eager", "profile"))
    assert essential + 150 < 480  # + the parallel warm-up's limit
    assert result["budget_s"] == 450 and result["estimate_s"] == sum(t["estimate_s"] for t in result["plan"])


def test_the_outputs(dry_run):
    _, result, md = dry_run
    assert result["dry_run"] is True
    assert set(result) >= {"environment", "plan", "dispatch", "models", "profile", "skipped", "errors"}
    assert result["environment"]["device"] == "(dry run: no GPU)" and result["environment"]["torch"]
    assert result["dispatch"] == [] and result["models"] == [] and result["profile"] == []
    for heading in ("## Whole models (ms per forward)", "## Dispatch: Triton against the torch route per shape class",
                    "## Per-kernel device time"):
        assert heading in md
    assert "**Dry run: no measurement.**" in md


def test_markdown_and_table_of_a_result():
    """What a GPU run writes, from a made-up result: the model rows, dispatch cells, profile lines."""
    result = {"environment": {"date": "2026-12-01", "device": "NVIDIA H200"}, "dry_run": False,
              "started": "2026-12-01", "skipped": ["x"], "errors": [],
              "models": [{"model": "mobilenet_v2", "batch": 64, "variant": "tv", "host_ms": 3.5, "graphed_ms": 2.0,
                          "rel_err": 1e-3, "first_call_s": 0.5}],
              "dispatch": [{"class": "dw k3 s1 c<=256 px<=2^18", "layer": "l", "us": {
                  "triton": {"host": 40.0, "device": 30.0}, "ops": {"host": 60.0, "device": 31.0}, "fused": None}}],
              "profile": [{"layer": "L", "batch": 64, "host_ms": {"triton": 0.05}, "kernels": {"triton": {"k": 30.0}}}]}
    md = gpu_measure.markdown(result)
    assert "| mobilenet_v2 | 64 | tv | 3.500 | 2.000 | 1.0e-03 | 0.5 |" in md
    assert "| dw k3 s1 c<=256 px<=2^18 | l | 40.0 | 60.0 | - | 30.0 | 31.0 | - |" in md
    assert "- L N=64: **triton** host 50 us: k 30.0" in md
    table = gpu_measure.short_table(result)
    assert "mobilenet_v2      64    3.500/2.000" in table and "1 with a Triton time" in table
