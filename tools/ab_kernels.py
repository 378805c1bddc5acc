"""A/B of the depthwise kernels' alternative paths, side by side in one process, on a GPU.

Each variant is a kernel policy (`cnnc.kernels.Policy`, written as its key string) passed to
`kernels.conv2d`, so one process times each in turn on the same tensors; each is checked
against eager first (forward, or all gradients for training). Every policy is tuned on its
own (the policy is part of every autotune key). Times: do_bench median (host + device, as
bench_kernels reports) and the replay of a CUDA graph of the same call (device time alone).

  forward      dw_forward     taps | rows              (the per-tap loop, or row reuse)
               dw_weights     tap-major | as-is        (the filter copy, or torch's layout)
  training     dw_forward + dw_input_grad   taps+gather | rows+flipped
               dw_wgrad       per-tap | tap-blocks | auto (the autotuner picks among both)

    python tools/ab_kernels.py [--layers ConvNeXt EfficientNet] [--batch 64] [--out DIR]
    python tools/ab_kernels.py --forward dw_forward=taps dw_forward=rows --training   # these policies
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

# (name, policy key): the kernel policies timed side by side; the first of each group is the reference
FORWARD_VARIANTS = [
    ("taps", "dw_forward=taps"),
    ("rows", "dw_forward=rows"),
    ("rows, as-is filter", "dw_forward=rows,dw_weights=as-is"),
]
TRAINING_VARIANTS = [
    ("taps+gather, per-tap wgrad", "dw_forward=taps,dw_input_grad=gather,dw_wgrad=per-tap"),
    ("taps+gather, tap-block wgrad", "dw_forward=taps,dw_input_grad=gather,dw_wgrad=tap-blocks"),
    ("rows+flipped, per-tap wgrad", "dw_forward=rows,dw_input_grad=flipped,dw_wgrad=per-tap"),
    ("rows+flipped, tap-block wgrad", "dw_forward=rows,dw_input_grad=flipped,dw_wgrad=tap-blocks"),
    ("rows+flipped, wgrad tiles tuned", "dw_forward=rows,dw_input_grad=flipped,dw_wgrad=auto"),
]


def policies(variants, keys):
    """[(name, Policy)]: `variants` ((name, key) pairs), or the policy keys given on the command line
    instead (each its own name) when `keys` is not None."""
    from cnnc.kernels import Policy

    if keys is not None:
        variants = [(key or "default", key) for key in keys]
    return [(name, Policy.parse(key)) for name, key in variants]


def time_variant(m, policy, training, timer, graphs):
    """Check, then time, layer `m` (bench_kernels.build) under the kernel policy `policy`."""
    fused = m["fused"]
    m = dict(m, fused=lambda x, w, scale, shift: fused(x, w, scale, shift, policy=policy))
    leaves = [m["x"], m["w"], m["scale"], m["shift"]]
    if training:
        ins = [t.detach().requires_grad_() for t in leaves]
        grad_y = torch.randn_like(m["fused"](*leaves))

        def call():
            return torch.autograd.grad(m["fused"](*ins), ins, grad_y)
        err = bench_kernels.check_backward(m)
    else:
        def call():
            with torch.no_grad():
                return m["fused"](*leaves)
        err = bench_kernels.check_forward(m)
    ms = timer(call)
    graph = cuda_graph_ms(call, timer) if graphs else None
    return dict(err=err, ms=ms, graph_ms=graph)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", nargs="+", default=["ConvNeXt", "EfficientNet"],
                   help="substrings of bench_kernels' layer names (depthwise layers only)")
    p.add_argument("--batch", type=int, nargs="+", default=[64])
    p.add_argument("--out", default=None)
    p.add_argument("--smoke", action="store_true", help="CPU + Triton interpreter, tiny shapes")
    p.add_argument("--forward", nargs="*", metavar="POLICY",
                   help="time these kernel policies (key strings, e.g. dw_forward=rows) forward instead of the "
                        "built-in forward group; with no value, no forward group")
    p.add_argument("--training", nargs="*", metavar="POLICY",
                   help="the same for the training group (forward + backward)")
    args = p.parse_args(argv)

    if args.smoke:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before cnnc.kernels (and triton.jit) is imported
    sys.path.insert(0, bench_kernels.REPO_ROOT)
    try:
        groups = [(False, policies(FORWARD_VARIANTS, args.forward)), (True, policies(TRAINING_VARIANTS, args.training))]
    except ValueError as e:
        p.error(str(e))
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
            for training, group in groups:
                for name, policy in group:
                    r = time_variant(m, policy, training, timer, graphs=not args.smoke)
                    rows.append(dict(layer=layer.name, batch=batch, mode="fwd+bwd" if training else "fwd",
                                     variant=name, policy=policy.key, **r))
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
