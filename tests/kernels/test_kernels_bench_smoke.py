"""tools/bench_kernels.py --smoke runs end to end on CPU (interpreter), so it cannot rot."""

import glob
import json
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bench_smoke(tmp_path):
    env = dict(os.environ, TRITON_INTERPRET="1", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tools", "bench_kernels.py"),
                             "--smoke", "--out", str(tmp_path)],
                            env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    (json_path,) = glob.glob(str(tmp_path / "bench_kernels_*.json"))
    report = json.load(open(json_path))
    assert report["smoke"] is True and len(report["results"]) == 2
    for row in report["results"]:
        assert row["backend"] != "torch", row  # the smoke run really exercises the Triton kernels
        for mode in ("forward", "forward_backward"):
            assert set(row[mode]["ms"]) >= {"cudnn", "eager", "compile", "kernels"}
            assert row[mode]["ms"]["kernels"] > 0
    (md_path,) = glob.glob(str(tmp_path / "kernels_*.md"))
    assert "| layer |" in open(md_path).read()
