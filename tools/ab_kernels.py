"""A/B of the depthwise kernels' alternative paths, side by side in one process, on a GPU.

The paths are chosen by environment variables read at every call, so one process times each
setting in turn on the same tensors; each variant is checked against eager first (forward, or
all gradients for training). Times: do_bench median (host + device, as bench_kernels reports)
and the replay of a CUDA graph of the same call (device time alone).

  forward      CNNC_KERNELS_DW_FORWARD  taps | rows          (the per-tap loop, or row reuse)
               CNNC_KERNELS_DW_WEIGHTS  tap-major | as-is    (the filter copy, or torch's layout)
  training     CNNC_KERNELS_DW_FORWARD + CNNC_KERNELS_DW_INPUT_GRAD  taps+gather | rows+flipped
               CNNC_KERNELS_DW_WGRAD    per-tap | tap-blocks | auto (the autotuner picks among both)
  both         CNNC_KERNELS_REMEMBER=0  every launch through Autotuner.run (host time; `launch`)

    python tools/ab_kernels.py [--layers ConvNeXt EfficientNet] [--batch 64] [--out DIR]
    python tools/ab_kernels.py --smoke --out DIR     # CPU + interpreter, tiny shapes (the harness only)

Prints one table (ms; the first variant of each group is the reference for the ratios) and
writes the rows as JSON under --out.
"""

import argparse
import dataclasses
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_kernels  # noqa: E402
from benchlib import cuda_graph_ms, environment, make_timer  # noqa: E402

FORWARD_VARIANTS = [
    ("taps", {"CNNC_KERNELS_DW_FORWARD": "taps"}),
    ("rows", {"CNNC_KERNELS_DW_FORWARD": "rows"}),
    ("rows, as-is filter", {"CNNC_KERNELS_DW_FORWARD": "rows", "CNNC_KERNELS_DW_WEIGHTS": "as-is"}),
    ("rows, autotuner route", {"CNNC_KERNELS_DW_FORWARD": "rows", "CNNC_KERNELS_REMEMBER": "0"}),
]
TRAINING_VARIANTS = [
    ("taps+gather, per-tap wgrad", {"CNNC_KERNELS_DW_FORWARD": "taps", "CNNC_KERNELS_DW_INPUT_GRAD": "gather",
                                    "CNNC_KERNELS_DW_WGRAD": "per-tap"}),
    ("taps+gather, tap-block wgrad", {"CNNC_KERNELS_DW_FORWARD": "taps", "CNNC_KERNELS_DW_INPUT_GRAD": "gather",
                                      "CNNC_KERNELS_DW_WGRAD": "tap-blocks"}),
    ("rows+flipped, per-tap wgrad", {"CNNC_KERNELS_DW_FORWARD": "rows", "CNNC_KERNELS_DW_INPUT_GRAD": "flipped",
                                     "CNNC_KERNELS_DW_WGRAD": "per-tap"}),
    ("rows+flipped, tap-block wgrad", {"CNNC_KERNELS_DW_FORWARD": "rows", "CNNC_KERNELS_DW_INPUT_GRAD": "flipped",
                                       "CNNC_KERNELS_DW_WGRAD": "tap-blocks"}),
    ("rows+flipped, wgrad tiles tuned", {"CNNC_KERNELS_DW_FORWARD": "rows", "CNNC_KERNELS_DW_INPUT_GRAD": "flipped",
                                         "CNNC_KERNELS_DW_WGRAD": "auto"}),
    ("the same, autotuner route", {"CNNC_KERNELS_DW_FORWARD": "rows", "CNNC_KERNELS_DW_INPUT_GRAD": "flipped",
                                   "CNNC_KERNELS_DW_WGRAD": "auto", "CNNC_KERNELS_REMEMBER": "0"}),
]
KNOBS = sorted({k for _, env in FORWARD_VARIANTS + TRAINING_VARIANTS for k in env})


def with_env(env, fn):
    """fn() with exactly `env` of the knobs set (the others at their defaults).
    CNNC_KERNELS_REMEMBER, read by `kernels` at import, is applied to its flag here."""
    from cnnc.kernels import _runtime

    saved = {k: os.environ.pop(k, None) for k in KNOBS}
    os.environ.update(env)
    remember = _runtime.REMEMBER_CONFIGS
    _runtime.REMEMBER_CONFIGS = env.get("CNNC_KERNELS_REMEMBER", "1") != "0"
    try:
        return fn()
    finally:
        _runtime.REMEMBER_CONFIGS = remember
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


def time_variant(m, env, training, timer, graphs):
    leaves = [m["x"], m["w"], m["scale"], m["shift"]]
    if training:
        ins = [t.detach().requires_grad_() for t in leaves]
        grad_y = torch.randn_like(m["fused"](*leaves))

        def call():
            return torch.autograd.grad(m["fused"](*ins), ins, grad_y)
        check = lambda: bench_kernels.check_backward(m)  # noqa: E731
    else:
        def call():
            with torch.no_grad():
                return m["fused"](*leaves)
        check = lambda: bench_kernels.check_forward(m)  # noqa: E731
    err = with_env(env, check)
    ms = with_env(env, lambda: timer(call))
    graph = with_env(env, lambda: cuda_graph_ms(call, timer)) if graphs else None
    return dict(err=err, ms=ms, graph_ms=graph)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", nargs="+", default=["ConvNeXt", "EfficientNet"],
                   help="substrings of bench_kernels' layer names (depthwise layers only)")
    p.add_argument("--batch", type=int, nargs="+", default=[64])
    p.add_argument("--out", default=None)
    p.add_argument("--smoke", action="store_true", help="CPU + Triton interpreter, tiny shapes")
    args = p.parse_args(argv)

    if args.smoke:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    device = "cpu" if args.smoke else "cuda"
    dtype = torch.float32 if args.smoke else torch.float16
    timer = make_timer(device)
    layers = [layer for layer in bench_kernels.LAYERS if layer.groups == layer.channels
              and any(s.lower() in layer.name.lower() for s in args.layers)]
    if args.smoke:
        layers = [dataclasses.replace(layer, channels=8, groups=8, hw=6) for layer in layers[:1]]
        args.batch = [1]
    rows = []
    t0 = time.time()
    for batch in args.batch:
        for layer in layers:
            m = bench_kernels.build(layer, batch, dtype, True, device)
            for training, variants in ((False, FORWARD_VARIANTS), (True, TRAINING_VARIANTS)):
                for name, env in variants:
                    r = time_variant(m, env, training, timer, graphs=not args.smoke)
                    rows.append(dict(layer=layer.name, batch=batch, mode="fwd+bwd" if training else "fwd",
                                     variant=name, env=env, **r))
                    graph = "-" if r["graph_ms"] is None else f"{r['graph_ms'] * 1e3:.1f}"
                    print(f"{layer.name:32s} N={batch:<3d} {rows[-1]['mode']:8s} {name:30s} "
                          f"{r['ms'] * 1e3:9.1f} us  graph {graph}  err {r['err']:.1e}", flush=True)
            if args.out:
                os.makedirs(args.out, exist_ok=True)
                with open(os.path.join(args.out, "ab_kernels.json"), "w") as f:
                    json.dump({"environment": environment(device), "rows": rows}, f, indent=1)
    print(f"\n{'layer':32s} {'N':>3s} {'mode':8s} {'variant':30s} {'us':>9s} {'graph us':>9s} {'vs first':>9s}")
    first = {}
    for r in rows:
        key = (r["layer"], r["batch"], r["mode"])
        base = first.setdefault(key, r)
        t, b = (r["graph_ms"], base["graph_ms"]) if r["graph_ms"] and base["graph_ms"] else (r["ms"], base["ms"])
        graph = "-" if r["graph_ms"] is None else f"{r['graph_ms'] * 1e3:9.1f}"
        print(f"{r['layer']:32s} {r['batch']:3d} {r['mode']:8s} {r['variant']:30s} {r['ms'] * 1e3:9.1f} "
              f"{graph:>9s} {b / t:8.2f}x")
    print(f"({time.time() - t0:.0f} s; 'vs first': the group's first variant's time / this one's, on device "
          f"time where there is one)")


if __name__ == "__main__":
    main()
