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
    python tools/bench_models.py --smoke --out DIR    # --cpu at 64x64, batch 1, 2 rounds, no compile or ONNX

CPU mode (--cpu): fp32, eval, torch.no_grad(), --threads threads (default 2), batch 1 and 8,
models resnet50 mobilenet_v2 efficientnet_b0 densenet121 convnext_tiny resnext50_32x4d, one
process. Columns (CPU_VARIANTS): torchvision eager (NCHW, as a user runs it: the baseline), eager
channels_last, torch.compile default and with `torch._inductor.config.freezing = True`, ONNX Runtime
on the torchvision ONNX export (the `bench` extra), cnnc plain, cnnc fused, cnnc fused +
torch.compile (freezing). Every column is first checked against eager torchvision on the same
input (relative error, reported; above 1e-3 fails), then timed: --repeats rounds, each calling
every column once in a new (seeded) random order (interleaved, so load drifts hit all alike, and
no column always runs right after the same one; ONNX Runtime's threads do not spin after a run,
which took the cores from the next column), medians reported, with the
ratios and the issue's targets evaluated in the markdown table (date, CPU model, versions, the
load average before and after):

    python tools/bench_models.py --cpu --out benchmarks           # the committed table
    python tools/bench_models.py --cpu --models mobilenet_v2 --batch 1 --repeats 5 --no-compile

Writes full JSON to --out and a markdown table to benchmarks/ (and --out); --smoke and --cpu write
only to --out. Needs torchvision; cnnc importable from the repository root.
"""

import argparse
import dataclasses
import json
import os
import random
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

# ---- the CPU comparison (--cpu) -------------------------------------------------------------

CPU_MODELS = ["resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121", "convnext_tiny", "resnext50_32x4d"]
CPU_VARIANTS = ["tv", "tv_cl", "tv_compile", "tv_compile_freezing", "onnxruntime", "cnnc", "cnnc_fused",
                "cnnc_fused_compile"]
CPU_HEADERS = {"tv": "eager", "tv_cl": "eager channels_last", "tv_compile": "torch.compile",
               "tv_compile_freezing": "compile (freezing)", "onnxruntime": "ONNX Runtime", "cnnc": "cnnc plain",
               "cnnc_fused": "cnnc fused", "cnnc_fused_compile": "fused + compile (freezing)"}
CPU_MAX_REL_ERR = 1e-3


def _compiled(model, freezing):
    """torch.compile(model), static shapes; with `freezing`, Inductor's freezing (parameters as
    constants: conv-BN folding and oneDNN weight prepacking) for the compile the first call makes."""
    import torch._inductor.config as inductor_config

    compiled = torch.compile(model, dynamic=False)
    first = [True]

    def call(x):
        if first[0]:
            first[0] = False
            with inductor_config.patch(freezing=freezing):
                return compiled(x)
        return compiled(x)

    return call


def _onnxruntime(model, x, threads, workdir):
    """An ONNX Runtime session on the torchvision model's ONNX export (static shapes, all graph
    optimizations, `threads` intra-op threads), as a callable on torch tensors."""
    import onnxruntime

    path = os.path.join(workdir, "model.onnx")
    try:
        torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    except Exception:  # noqa: BLE001 - the TorchScript exporter is gone: the dynamo one
        torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["y"], dynamo=True)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ONNX Runtime's pool threads otherwise spin after each run, taking the cores from whichever
    # column runs next (cnnc plain ran 2.8x slower than eager right after it at batch 1)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda t: torch.from_numpy(session.run(None, {"x": t.numpy()})[0])


def cpu_calls(name, models, x, args, workdir):
    """variant -> a callable of no arguments, for one model at one batch."""
    import copy

    tv = models["tv"]
    tv_cl = copy.deepcopy(tv).to(memory_format=torch.channels_last)
    calls = {"tv": lambda: tv(x), "tv_cl": lambda: tv_cl(x.contiguous(memory_format=torch.channels_last)),
             "cnnc": lambda: models["cnnc"](x), "cnnc_fused": lambda: models["cnnc_fused"](x)}
    if not args.no_compile:
        torch._dynamo.reset()
        tv_compile = _compiled(copy.deepcopy(tv), freezing=False)
        tv_freezing = _compiled(copy.deepcopy(tv), freezing=True)
        fused_compile = _compiled(copy.deepcopy(models["cnnc_fused"]), freezing=True)
        calls.update(tv_compile=lambda: tv_compile(x), tv_compile_freezing=lambda: tv_freezing(x),
                     cnnc_fused_compile=lambda: fused_compile(x))
    if not args.no_onnx:
        ort = _onnxruntime(tv, x, args.threads, workdir)
        calls["onnxruntime"] = lambda: ort(x)
    return {k: calls[k] for k in CPU_VARIANTS if k in calls}


def bench_cpu_model(name, batches, args, workdir):
    """Rows (one per batch) for one model: every variant checked, then timed interleaved."""
    import statistics

    models = build_variants(name, args.size, args)
    rows = []
    for batch in batches:
        x = torch.randn(batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
        row = dict(model=name, batch=batch, size=args.size, rel_err={}, ms={}, first_call_s={},
                   load_before=os.getloadavg()[0])
        with torch.no_grad():
            reference = outputs(models["tv"](x)).clone()
            calls = cpu_calls(name, models, x, args, workdir)
            for key, fn in calls.items():
                t0 = time.perf_counter()
                got = outputs(fn()).float()  # the first call: compiles where it must
                row["first_call_s"][key] = time.perf_counter() - t0
                err = ((got - reference).norm() / reference.norm()).item()
                row["rel_err"][key] = err
                if not (torch.isfinite(got).all() and err < CPU_MAX_REL_ERR):
                    raise SystemExit(f"bench_models: {name} N={batch} {key}: relative error {err:.2e} "
                                     "against eager torchvision")
                fn()  # a second call before timing (lazy plans, allocator warm-up)
            times = {key: [] for key in calls}
            keys = list(calls)
            order = random.Random(0)
            for r in range(args.repeats):
                order.shuffle(keys)  # a new order each round: no column always follows the same one
                for key in keys:
                    t0 = time.perf_counter()
                    calls[key]()
                    times[key].append((time.perf_counter() - t0) * 1e3)
        row["ms"] = {key: statistics.median(v) for key, v in times.items()}
        row["ms_all"] = times
        row["load_after"] = os.getloadavg()[0]
        rows.append(row)
        print(f"{name:<16} N={batch:<2} " + " ".join(f"{k}={v:.1f}" for k, v in row["ms"].items())
              + f" ms | load {row['load_before']:.1f}->{row['load_after']:.1f}", flush=True)
    return rows


def cpu_environment(args) -> dict:
    import platform

    env = environment("cpu")
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor() or "unknown")
    env["device"] = f"cpu ({model})"
    env["cpu_model"], env["cpus"], env["threads"] = model, os.cpu_count(), args.threads
    import torchvision

    env["torchvision"] = torchvision.__version__
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        env["onnxruntime"] = None
    env["onednn"] = torch.backends.mkldnn.is_available()
    return env


def _ratio(ms, a, b):
    return ms[a] / ms[b] if a in ms and b in ms else None


def cpu_markdown(env, rows, args):
    import statistics

    keys = [k for k in CPU_VARIANTS if any(k in r["ms"] for r in rows)]
    loads = [r["load_before"] for r in rows] + [r["load_after"] for r in rows]
    lines = [f"# CPU whole-model benchmark, {env['date'][:10]}", "",
             f"CPU: {env['cpu_model']} ({env['cpus']} logical CPUs); {args.threads} threads (torch and ONNX Runtime); "
             f"torch {env['torch']}, torchvision {env['torchvision']}, onnxruntime {env['onnxruntime']}, "
             f"python {env['python']}; oneDNN {'available' if env['onednn'] else 'absent'}.",
             f"fp32, eval, torch.no_grad(), NCHW input ({args.size}x{args.size}; the channels_last column converts it "
             "inside the call); one process; every column checked against eager torchvision first (max rel err).",
             f"Times: median ms of {args.repeats} interleaved rounds (each round calls every column once, in a new "
             f"seeded random order; ONNX Runtime's threads do not spin between runs). Load average (1 min) during the run: {min(loads):.1f} to {max(loads):.1f}.", "",
             "| model | N | " + " | ".join(CPU_HEADERS[k] for k in keys)
             + " | eager / fused | plain / fused | ORT / fused | max rel err |",
             "|" + "---|" * (len(keys) + 6)]

    def fmt(v):
        return "-" if v is None else f"{v:.2f}x"

    for r in sorted(rows, key=lambda r: (-r["batch"], CPU_MODELS.index(r["model"]) if r["model"] in CPU_MODELS else 0)):
        ms = r["ms"]
        cells = [f"{ms[k]:.1f}" if k in ms else "-" for k in keys]
        lines.append(f"| {r['model']} | {r['batch']} | " + " | ".join(cells)
                     + f" | {fmt(_ratio(ms, 'tv', 'cnnc_fused'))} | {fmt(_ratio(ms, 'cnnc', 'cnnc_fused'))}"
                     + f" | {fmt(_ratio(ms, 'onnxruntime', 'cnnc_fused'))} | {max(r['rel_err'].values()):.1e} |")
    lines += ["", "Targets (issue 14), per batch: cnnc fused >= 1.3x eager on the median model and >= 1.15x on every "
              "model; never slower than cnnc plain; ONNX Runtime / fused reported (stretch: >= 1.0x on the median).", ""]
    for batch in sorted({r["batch"] for r in rows}, reverse=True):
        rs = [r for r in rows if r["batch"] == batch]
        vs_eager = [_ratio(r["ms"], "tv", "cnnc_fused") for r in rs]
        vs_plain = [_ratio(r["ms"], "cnnc", "cnnc_fused") for r in rs]
        vs_ort = [v for v in (_ratio(r["ms"], "onnxruntime", "cnnc_fused") for r in rs) if v is not None]
        worst = min(zip(vs_eager, (r["model"] for r in rs)))
        slowest_plain = min(zip(vs_plain, (r["model"] for r in rs)))
        line = (f"- N={batch}: eager / fused median {statistics.median(vs_eager):.2f}x "
                f"({'met' if statistics.median(vs_eager) >= 1.3 else 'MISSED'}), worst {worst[0]:.2f}x on {worst[1]} "
                f"({'met' if worst[0] >= 1.15 else 'MISSED'}); plain / fused worst {slowest_plain[0]:.2f}x on "
                f"{slowest_plain[1]} ({'met' if slowest_plain[0] >= 1.0 else 'MISSED'})")
        if vs_ort:
            line += (f"; ONNX Runtime / fused median {statistics.median(vs_ort):.2f}x "
                     f"({'met' if statistics.median(vs_ort) >= 1.0 else 'missed'} the stretch)")
        lines.append(line)
    return "\n".join(lines)


def run_cpu(args):
    import tempfile

    torch.set_num_threads(args.threads)
    env = cpu_environment(args)
    os.makedirs(args.out, exist_ok=True)
    stamp = env["date"].replace(":", "").replace("-", "")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models:
            rows += bench_cpu_model(name, args.batch, args, workdir)
            with open(os.path.join(args.out, f"bench_models_cpu_{stamp}.json"), "w") as f:
                json.dump(dict(environment=env, smoke=args.smoke, threads=args.threads, repeats=args.repeats,
                               kernel_policy=args.policy.key, results=rows), f, indent=1)
    table = cpu_markdown(env, rows, args)
    write_table(table, "models_cpu", env, [args.out])
    print(table)
    return rows


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    p.add_argument("--batch", type=int, nargs="+", default=[64])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    p.add_argument("--nchw", action="store_true", help="NCHW instead of channels_last")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--out", default=os.path.join(REPO_ROOT, "benchmarks", "raw"))
    p.add_argument("--smoke", action="store_true", help="--cpu at 64x64, batch 1, 2 rounds, no torch.compile or ONNX")
    p.add_argument("--cpu", action="store_true", help="the CPU comparison (see the module docstring)")
    p.add_argument("--threads", type=int, default=2, help="--cpu: torch and ONNX Runtime threads")
    p.add_argument("--repeats", type=int, default=9, help="--cpu: interleaved timing rounds")
    p.add_argument("--no-onnx", action="store_true", help="--cpu: leave out ONNX Runtime")
    p.add_argument("--table", metavar="JSON", help="--cpu: write the markdown table of a run's JSON (also of a "
                                                   "run cut off after some models) to --out, and nothing else")
    p.add_argument("--policy", default="", help="the cnnc modules' kernel policy, as its key string "
                                                "(cnnc.kernels.Policy; default: the default policy)")
    args = p.parse_args(argv)
    if args.smoke:
        args.cpu, args.size, args.batch, args.no_compile, args.no_onnx, args.repeats = True, 64, [1], True, True, 2
    if args.cpu:
        args.dtype, args.nchw = "float32", True
        if args.models == DEFAULT_MODELS:
            args.models = CPU_MODELS
        if args.batch == [64]:
            args.batch = [8, 1]
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
    if args.table:
        with open(args.table) as f:
            report = json.load(f)
        args.threads, args.repeats = report["threads"], report["repeats"]
        args.size = report["results"][0]["size"]
        table = cpu_markdown(report["environment"], report["results"], args)
        write_table(table, "models_cpu", report["environment"], [args.out])
        print(table)
        return report["results"]
    if args.cpu:
        # whole models under Triton's interpreter would take hours: the kernels' torch path on CPU
        args.policy = dataclasses.replace(args.policy, interpret_cpu=False)
        args.device = "cpu"
        return run_cpu(args)
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
