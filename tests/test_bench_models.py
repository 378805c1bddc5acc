"""tools/bench_models.py --smoke (its --cpu mode, tiny) runs end to end, so the whole-model
benchmark cannot rot: every variant is built, checked against torchvision, timed interleaved, and
the table with its ratios and targets is written."""
import glob
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("torchvision")

from cnnc_testlib import ROOT  # noqa: E402


@pytest.mark.slow
def test_bench_models_smoke(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_models.py"), "--smoke", "--models",
                          "mobilenet_v2", "resnext50_32x4d", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    (path,) = glob.glob(str(tmp_path / "bench_models_cpu_*.json"))
    report = json.load(open(path))
    assert [r["model"] for r in report["results"]] == ["mobilenet_v2", "resnext50_32x4d"]
    for row in report["results"]:
        assert set(row["ms"]) == {"tv", "tv_cl", "cnnc", "cnnc_fused"}  # --smoke: no torch.compile, no ONNX
        assert all(v > 0 for v in row["ms"].values())
        assert all(len(times) == report["repeats"] for times in row["ms_all"].values())
        # fp32 on CPU: the cnnc modules (plain and fused) compute what torchvision computes
        assert max(row["rel_err"].values()) < 1e-4, row["rel_err"]
    (md,) = glob.glob(str(tmp_path / "models_cpu_*.md"))
    table = open(md).read()
    assert "| mobilenet_v2 | 1 |" in table and "eager / fused median" in table and "CPU: " in table
