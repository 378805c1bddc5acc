"""Write a committed dispatch table (cnnc/kernels/dispatch_tables/<device>.json) from a GPU run.

`tools/gpu_measure.py` (`bash tools/gpu_session.sh measure`) times, per shape class of the depthwise
and grouped convs of the measured models, the Triton kernel (`kernels.conv2d`) against the torch
route (`kernels.folded_conv2d`: cuDNN, then the epilogue as torch ops, "ops"; or one
cudnn_convolution_relu call, "fused"), each per call in an eager loop (host time included, "host")
and as CUDA-graph replays (the device's time alone, "device"), after checking each against an fp32
reference. This script turns its JSON into the table `cnnc.kernels.dispatch.choose` reads:

    python tools/dispatch_table.py OUT/measure.json [--out cnnc/kernels/dispatch_tables]

A variant whose output check failed (relative error above TOLERANCE, or not finite) or that has no
time is left out of its entry, so `choose` takes cuDNN there. Where several measured layers share a
class, the entry keeps the one least favourable to Triton (largest Triton / ops host-time ratio).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO_ROOT, "cnnc", "kernels", "dispatch_tables")
TOLERANCE = {"float16": 1e-2, "bfloat16": 5e-2, "float32": 1e-4, "float64": 1e-10}
VARIANTS = ("triton", "ops", "fused")


def slug(device: str) -> str:
    """A device name as a file name: 'NVIDIA H200' -> 'nvidia-h200' (as benchlib.write_table names tables)."""
    return "".join(ch if ch.isalnum() else "-" for ch in device).strip("-").lower()


def entry_of(row: dict) -> dict | None:
    """A measured row as a table entry: only the variants whose output check passed, with both times."""
    tolerance = TOLERANCE[row["dtype"]]
    us = {}
    for variant in VARIANTS:
        times, err = (row.get("us") or {}).get(variant), (row.get("rel_err") or {}).get(variant)
        if not times or err is None or not err <= tolerance:  # (`not <=`: NaN fails too)
            continue
        kept = {t: times[t] for t in ("host", "device") if times.get(t) is not None}
        if kept:
            us[variant] = kept
    if "ops" not in us:
        return None  # no sound torch-route time: nothing to compare against
    return {"dtype": row["dtype"], "layout": row["layout"], "class": row["class"], "layer": row["layer"],
            "epilogue": row.get("epilogue"), "us": us}


def _triton_ratio(entry: dict) -> float:
    triton, ops = entry["us"].get("triton", {}).get("host"), entry["us"]["ops"].get("host")
    return float("inf") if triton is None or not ops else triton / ops


def table_of(measure: dict) -> dict:
    """The dispatch table (cnnc.kernels.dispatch, format 1) of a gpu_measure.py result."""
    env = measure["environment"]
    entries: dict = {}
    for row in measure.get("dispatch", []):
        entry = entry_of(row)
        if entry is None:
            continue
        key = (entry["dtype"], entry["layout"], entry["class"])
        if key not in entries or _triton_ratio(entry) > _triton_ratio(entries[key]):
            entries[key] = entry
    return {
        "format": 1,
        "device": env["device"],
        "measured": {k: env.get(k) for k in ("date", "commit", "torch", "triton", "cuda", "cudnn")}
        | {"command": "bash tools/gpu_session.sh measure; python tools/dispatch_table.py"},
        "method": "per call, fp16 unless noted; host: an eager loop of back-to-back calls (host work included); "
                  "device: CUDA-graph replays of many calls; each variant checked against fp32 first",
        "entries": [entries[k] for k in sorted(entries)],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("measure", help="the JSON tools/gpu_measure.py wrote")
    p.add_argument("--out", default=DEFAULT_OUT, help="directory of the tables (default: the package's)")
    args = p.parse_args(argv)
    with open(args.measure) as f:
        measure = json.load(f)
    if measure.get("dry_run"):
        sys.exit("dispatch_table: a --dry-run result holds no measurements")
    table = table_of(measure)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, slug(table["device"]) + ".json")
    with open(path, "w") as f:
        json.dump(table, f, indent=1)
        f.write("\n")
    triton = sum(1 for e in table["entries"] if "triton" in e["us"])
    print(f"wrote {path}: {len(table['entries'])} classes, {triton} with a sound Triton time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
