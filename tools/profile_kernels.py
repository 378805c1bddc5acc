"""Where the time of one kernels.conv2d call goes, on a GPU: host against device.

For each chosen (layer, batch) of bench_kernels' list, side by side in one process:
  host us    wall-clock per call of 200 back-to-back calls, then one synchronize (what the CPU
             spends issuing a call; when it exceeds the device time, the GPU idles)
  bench us   triton.testing.do_bench median (what bench_kernels reports)
  graph us   do_bench of a CUDA graph replay of the same call: device time alone, no host work
  cudnn      the same two numbers for F.conv2d alone
and the device time of every kernel the call launches (torch.profiler), plus a cProfile of the
host side, written under --out. Output is checked against eager first (bench_kernels.check_forward).

    python tools/profile_kernels.py --out /tmp/prof [--layers ConvNeXt] [--batch 1 64] [--backward]
"""

import argparse
import cProfile
import io
import os
import pstats
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_kernels  # noqa: E402
from benchlib import cuda_graph_ms, make_timer  # noqa: E402

DEFAULT_LAYERS = ["MobileNetV1 dw 32,112,k3,s1", "MobileNetV1 dw 512,14,k3,s1", "MobileNetV1 dw 512,14,k3,s2",
                  "MobileNetV2 dw 96,112,k3,s2", "ConvNeXtT dw 96,56,k7,s1", "ConvNeXtT dw 768,7,k7,s1",
                  "ResNeXt50 g32 128,56,k3,s1"]


def host_us(fn, calls=200):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / calls * 1e6


def graph_us(fn, timer):
    ms = cuda_graph_ms(fn, timer)
    return float("nan") if ms is None else ms * 1e3


def device_kernels(fn, calls=10):
    """{kernel name: device us per call} from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    out = {}
    for e in prof.key_averages():
        t = getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
        if t > 0:
            out[e.key[:70]] = t / calls
    return out


def host_profile(fn, calls=200):
    fn()
    torch.cuda.synchronize()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    torch.cuda.synchronize()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(25)
    return s.getvalue()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", nargs="+", default=DEFAULT_LAYERS, help="exact layer names of bench_kernels")
    p.add_argument("--batch", nargs="+", type=int, default=[1, 64])
    p.add_argument("--backward", action="store_true", help="also a training step (and its gradient check)")
    p.add_argument("--out", default="/tmp/cnnc_profile")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    sys.path.insert(0, bench_kernels.REPO_ROOT)
    timer = make_timer("cuda")
    by_name = {l.name: l for l in bench_kernels.LAYERS}
    rows, report = [], open(os.path.join(args.out, "profile_kernels.txt"), "w")
    for batch in args.batch:
        for name in args.layers:
            layer = by_name[name]
            m = bench_kernels.build(layer, batch, torch.float16, True, "cuda")
            err = bench_kernels.check_forward(m)
            x, w, scale, shift = m["x"], m["w"], m["scale"], m["shift"]
            steps = {"fwd": (lambda: m["fused"](x, w, scale, shift),
                             lambda: F.conv2d(x, w, None, **m["conv_args"]))}
            if args.backward:
                bwd_err = bench_kernels.check_backward(m)
                leaves = [t.detach().requires_grad_() for t in (x, w, scale, shift)]
                g = torch.randn_like(m["fused"](*leaves).detach())
                steps["fwd+bwd"] = (lambda: torch.autograd.grad(m["fused"](*leaves), leaves, g),
                                    lambda: torch.autograd.grad(F.conv2d(leaves[0], leaves[1], None,
                                                                         **m["conv_args"]), leaves[:2], g))
                err = max(err, bwd_err)
            for mode, (ours, cudnn) in steps.items():
                with torch.no_grad() if mode == "fwd" else torch.enable_grad():
                    row = dict(layer=name, N=batch, mode=mode, err=err,
                               host=host_us(ours), bench=timer(ours) * 1e3,
                               graph=graph_us(ours, timer) if mode == "fwd" else float("nan"),
                               cudnn_host=host_us(cudnn), cudnn_bench=timer(cudnn) * 1e3,
                               cudnn_graph=graph_us(cudnn, timer) if mode == "fwd" else float("nan"))
                    kern = device_kernels(ours)
                    rows.append(row)
                    print(f"{name:<30} N={batch:<3} {mode:<7} " + " ".join(
                        f"{k}={v:.1f}" for k, v in row.items() if isinstance(v, float) and k != "err"), flush=True)
                    report.write(f"\n===== {name} N={batch} {mode}: {row}\n-- device us per call, by kernel:\n")
                    for k, v in sorted(kern.items(), key=lambda kv: -kv[1]):
                        report.write(f"  {v:9.1f}  {k}\n")
                    if batch == args.batch[0]:
                        report.write("-- host cProfile (200 calls, by own time):\n" + host_profile(ours))
                    report.flush()
    head = f"{'layer':<30} {'N':>3} {'mode':<7} {'host':>7} {'bench':>7} {'graph':>7} | {'cudnn host':>10} {'bench':>7} {'graph':>7}  (us)"
    print("\n" + head)
    for r in rows:
        print(f"{r['layer']:<30} {r['N']:>3} {r['mode']:<7} {r['host']:7.1f} {r['bench']:7.1f} {r['graph']:7.1f} | "
              f"{r['cudnn_host']:10.1f} {r['cudnn_bench']:7.1f} {r['cudnn_graph']:7.1f}")


if __name__ == "__main__":
    main()
