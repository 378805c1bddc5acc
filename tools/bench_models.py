"""Whole-model speed: torchvision (eager, torch.compile) against cnnc's generated modules.

For each model (ANCHORS.md §2; default: mobilenet_v2 efficientnet_b0 resnext50_32x4d
convnext_tiny), in eval mode, fp16, channels_last, at each --batch (default 64):

  tv                  the torchvision model, eager
  tv_compile          torch.compile(tv), default mode
  cnnc                cnnc.compile("<model>") (the catalog entry) with tv's weights imported: depthwise and
                      grouped convs call kernels.conv2d (Triton on CUDA)
  cnnc_fused          cnnc.compile(spec, fused=True): conv + BatchNorm (+ residual add)
                      (+ activation) as one kernels.conv2d call, same weights
  cnnc_fused_compile  torch.compile(cnnc_fused): kernels.conv2d stays one opaque custom op,
                      Inductor fuses what lies between

BatchNorm statistics and affine parameters (and ConvNeXt's layer scales) are re-randomized so
folding them matters. Before timing, every variant's output is compared with tv's in fp32 on
the same input (relative error ||a - b|| / ||b||, reported; above 3e-2 or non-finite fails).
Times are medians of triton.testing.do_bench under torch.inference_mode.

    python tools/bench_models.py [--models convnext_tiny ...] [--batch 64 1] [--no-compile] [--out DIR]
    python tools/bench_models.py --policy dw_forward=taps ...   # the cnnc modules' kernel policy
    python tools/bench_models.py --smoke --out DIR    # CPU, fp32, 64x64, batch 1: checks the harness

Writes full JSON to --out and a markdown table to benchmarks/ (and --out); --smoke writes only to
--out. Needs torchvision; cnnc importable from the repository root.
"""

import argparse
import dataclasses
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import environment, make_timer, randomize_normalization, write_table  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODELS = ["mobilenet_v2", "efficientnet_b0", "resnext50_32x4d", "convnext_tiny"]
VARIANTS = ["tv", "tv_compile", "cnnc", "cnnc_fused", "cnnc_fused_compile"]
MAX_REL_ERR = 3e-2


def build_variants(name, size, args):
    import warnings

    import torchvision

    import cnnc

    torch.manual_seed(0)
    kwargs = {"init_weights": False} if name == "googlenet" else {}
    tv = randomize_normalization(getattr(torchvision.models, name)(weights=None, **kwargs))
    spec = name  # the catalog entry (`cnnc list`)
    models = {"tv": tv}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cnnc.ReorderedWeights)  # ConvNeXt's layer_scale: expected
        for variant, fused in (("cnnc", False), ("cnnc_fused", True)):
            net = cnnc.compile(spec, fused=fused, size=size, kernel_policy=args.policy)
            models[variant] = cnnc.import_weights(net, tv.state_dict()).eval()
    fmt = torch.contiguous_format if args.nchw else torch.channels_last
    for key in models:
        models[key] = models[key].to(device=args.device, dtype=args.dtype, memory_format=fmt)
    return models


def outputs(y):
    """The main output of a model call (cnnc returns a NamedTuple for several outputs)."""
    return y if isinstance(y, torch.Tensor) else y[0]


def bench_model(name, batch, args, timer):
    size = args.size
    models = build_variants(name, size, args)
    fmt = torch.contiguous_format if args.nchw else torch.channels_last
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    x = x.to(device=args.device, dtype=args.dtype).contiguous(memory_format=fmt)
    calls = {key: models[key] for key in ("tv", "cnnc", "cnnc_fused")}
    if not args.no_compile:
        torch._dynamo.reset()
        calls["tv_compile"] = torch.compile(models["tv"])
        calls["cnnc_fused_compile"] = torch.compile(models["cnnc_fused"])
    row = dict(model=name, batch=batch, size=size, rel_err={}, ms={})
    with torch.inference_mode():
        reference = outputs(models["tv"].float()(x.float())).float()
        models["tv"].to(args.dtype)
        for key in VARIANTS:
            if key not in calls:
                continue
            t0 = time.perf_counter()
            got = outputs(calls[key](x)).float()  # first call: compiles where it must
            row.setdefault("first_call_s", {})[key] = time.perf_counter() - t0
            err = ((got - reference).norm() / reference.norm()).item()
            row["rel_err"][key] = err
            if not (torch.isfinite(got).all() and err < MAX_REL_ERR):
                raise SystemExit(f"bench_models: {name} {key}: relative error {err:.2e} against torchvision fp32")
        for key in VARIANTS:
            if key in calls:
                fn = calls[key]
                row["ms"][key] = timer(lambda: fn(x))
    return row


def markdown(env, rows, args):
    lines = [f"# whole-model benchmark, {env['date'][:10]}", "",
             f"device: {env['device']}; torch {env['torch']}, triton {env['triton']}, CUDA {env['cuda']}; "
             f"dtype {str(args.dtype).replace('torch.', '')}, {'NCHW' if args.nchw else 'channels_last'}, eval.",
             "Times: median ms of triton.testing.do_bench" + (" (--smoke: CPU wall clock, meaningless)" if args.smoke
                                                                else "")
             + "; rel err: against the torchvision model in fp32 on the same input.", "",
             "| model | N | " + " | ".join(f"{v} ms" for v in VARIANTS)
             + " | tv_compile / cnnc_fused_compile | tv_compile / cnnc_fused | max rel err |",
             "|" + "---|" * (len(VARIANTS) + 5)]
    for r in rows:
        ms = r["ms"]
        cells = [f"{ms[v]:.3f}" if v in ms else "-" for v in VARIANTS]

        def ratio(a, b):
            return f"{ms[a] / ms[b]:.2f}x" if a in ms and b in ms else "-"

        lines.append(f"| {r['model']} | {r['batch']} | " + " | ".join(cells)
                     + f" | {ratio('tv_compile', 'cnnc_fused_compile')} | {ratio('tv_compile', 'cnnc_fused')}"
                     + f" | {max(r['rel_err'].values()):.1e} |")
    return "\n".join(lines)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    p.add_argument("--batch", type=int, nargs="+", default=[64])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    p.add_argument("--nchw", action="store_true", help="NCHW instead of channels_last")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--out", default=os.path.join(REPO_ROOT, "benchmarks", "raw"))
    p.add_argument("--smoke", action="store_true", help="CPU, fp32, NCHW, 64x64, batch 1, no torch.compile")
    p.add_argument("--policy", default="", help="the cnnc modules' kernel policy, as its key string "
                                                "(cnnc.kernels.Policy; default: the default policy)")
    args = p.parse_args(argv)
    if args.smoke:
        args.dtype, args.nchw, args.size, args.batch, args.no_compile = "float32", True, 64, [1], True
    args.dtype = getattr(torch, args.dtype)
    return args


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, REPO_ROOT)
    from cnnc.kernels import Policy

    try:
        args.policy = Policy.parse(args.policy)
    except ValueError as e:
        sys.exit(f"bench_models: --policy: {e}")
    if args.smoke:
        # whole models under Triton's interpreter would take hours: the kernels' torch path on CPU
        args.policy = dataclasses.replace(args.policy, interpret_cpu=False)
        args.device = "cpu"
    else:
        if not torch.cuda.is_available():
            sys.exit("bench_models: no CUDA device; use --smoke to check the harness on CPU")
        args.device = "cuda"
    timer = make_timer(args.device, warmup_ms=50, rep_ms=200)
    env = environment(args.device)
    os.makedirs(args.out, exist_ok=True)
    stamp = env["date"].replace(":", "").replace("-", "")
    rows = []
    for batch in args.batch:
        for name in args.models:
            row = bench_model(name, batch, args, timer)
            rows.append(row)
            print(f"{name:<18} N={batch:<3} " + " ".join(f"{k}={v:.3f}" for k, v in row["ms"].items())
                  + " ms | first call s: " + " ".join(f"{k}={v:.1f}" for k, v in row["first_call_s"].items()),
                  flush=True)
            with open(os.path.join(args.out, f"bench_models_{stamp}.json"), "w") as f:
                json.dump(dict(environment=env, smoke=args.smoke, dtype=str(args.dtype), channels_last=not args.nchw,
                               kernel_policy=args.policy.key, results=rows), f, indent=1)
    table = markdown(env, rows, args)
    write_table(table, "models", env, [args.out] + ([] if args.smoke else [os.path.join(REPO_ROOT, "benchmarks")]))
    print(table)
    return rows


if __name__ == "__main__":
    main()
