"""The one GPU measurement that decides the next step (issue 14): `bash tools/gpu_session.sh measure`.

Everything is fp16, channels_last, eval, on one GPU, each result checked against an fp32
reference before it is timed. In priority order, so that a run cut off by its budget still
returns what decides most (the JSON and the markdown are rewritten after every measurement):

1. dispatch  per shape class (`cnnc.kernels.dispatch`) of the depthwise and grouped convs of the
             models, at each batch: the Triton kernel (`kernels.conv2d`, BatchNorm as its
             scale/shift, the layer's activation) against the torch route with the BatchNorm folded
             into weight and bias (`kernels.folded_conv2d`: "ops", cuDNN then torch ops; "fused",
             one cudnn_convolution_relu call, relu layers only). Per call: "host", back-to-back
             calls timed with events (host work included: what an eager forward pays), and
             "device", replays of a CUDA graph of 20 calls. `tools/dispatch_table.py` turns the
             rows into the committed table (the run writes it too, dispatch_<device>.json).
2. models    whole models (mobilenet_v2, efficientnet_b0, resnext50_32x4d, convnext_tiny,
             resnet50), batch 64 then 1: torchvision eager ("tv"); cnnc fused eager under the
             default policy ("cnnc_fused": the dispatch above decides, cuDNN where no table says
             otherwise) and with every depthwise and grouped conv on Triton ("cnnc_fused_triton",
             dispatch=triton). Each "host" (back-to-back forwards) and "graphed" (replays of a CUDA
             graph of one forward: device time alone; `backends.cuda_graphs.CUDAGraphed`).
3. profile   per-kernel device time from torch.profiler for five layers, each route: Triton
             eager, cuDNN ops, cuDNN fused (relu layers), and torch.compile (freezing) of the
             layer with the Triton route (Inductor launching the triton_op) and with cuDNN.
4. compiled  torch.compile with freezing, default mode: torchvision ("tv_compile"), cnnc fused
             ("cnnc_fused_compile") and cnnc fused with Triton ("cnnc_fused_compile_triton": the
             kernels launched by Inductor); batch 64 then 1; host and graphed.
5. autotune  torch.compile mode max-autotune-no-cudagraphs (freezing) of torchvision, batch 64
             then 1 (the slowest compiles: last).

    python tools/gpu_measure.py --out DIR [--budget 420] [--models ...] [--batches 64 1]
    python tools/gpu_measure.py --warm-only --shard 3/8   # compile only (Triton, Inductor caches)
    python tools/gpu_measure.py --dry-run --out DIR       # no GPU: the plan, estimates, empty outputs
    python tools/gpu_measure.py --kinds compiled autotune --batches 1 ...   # what a first call skipped

--budget is the seconds this process may spend: a task whose estimate no longer fits is skipped
and recorded as such. --dry-run builds the plan from the specs alone (no torch model, no GPU),
writes measure.json and measure.md with every result empty, and prints the table.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import traceback

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

MODELS = ["mobilenet_v2", "efficientnet_b0", "resnext50_32x4d", "convnext_tiny", "resnet50"]
BATCHES = [64, 1]
EAGER_VARIANTS = ["tv", "cnnc_fused", "cnnc_fused_triton"]
COMPILED_VARIANTS = ["tv_compile", "cnnc_fused_compile_triton", "cnnc_fused_compile"]
AUTOTUNE_VARIANTS = ["tv_max_autotune"]
ROUTES = ["triton", "ops", "fused"]  # dispatch: the Triton kernel, the torch route's two epilogues
# The five profiled layers: (name, model, layer path in cnnc's fused module, batch)
PROFILED = [
    ("MobileNetV2 dw 144,56,k3,s1", "mobilenet_v2", "inverted_residual3.conv2", 64),
    ("EfficientNetB0 dw 240,28,k5,s1", "efficientnet_b0", None, 64),  # (found by shape: see profile_layers)
    ("ConvNeXtT dw 96,56,k7,s1", "convnext_tiny", None, 64),
    ("ResNeXt50 g32 128,56,k3,s1", "resnext50_32x4d", None, 64),
    ("MobileNetV2 dw 960,7,k3,s1", "mobilenet_v2", None, 1),
]
PROFILED_SHAPES = {  # name -> (C_in, H, kernel, stride, groups) of the layer's input, to find it
    "MobileNetV2 dw 144,56,k3,s1": (144, 56, 3, 1, 144),
    "EfficientNetB0 dw 240,28,k5,s1": (240, 28, 5, 1, 240),
    "ConvNeXtT dw 96,56,k7,s1": (96, 56, 7, 1, 96),
    "ResNeXt50 g32 128,56,k3,s1": (128, 56, 3, 1, 32),
    "MobileNetV2 dw 960,7,k3,s1": (960, 7, 3, 1, 960),
}
# Seconds each task is expected to take on the device machine once the caches are warm (the warm-up
# stage compiles everything first): what the budget is planned with. Conservative guesses; the JSON
# records what each took, to correct them.
ESTIMATE_S = {"env": 10, "dispatch": 1.2, "eager": 3, "profile": 6, "compiled": 10, "autotune": 25}
BUILD_S = 8  # building a model's variants (torchvision, cnnc fused, weights imported), its first task's extra
MAX_REL_ERR = 3e-2  # whole models, fp16 against fp32 (bench_models.py's bound)
LAYER_TOLERANCE = 1e-2  # one layer, fp16 against fp32


# ---------------------------------------------------------------------------
# The plan: built from the specs alone (no torch), so --dry-run needs no GPU
# ---------------------------------------------------------------------------
def conv_layers(model: str) -> list[dict]:
    """The depthwise and grouped convs of a catalog model's fused graph: geometry (without batch),
    activation and whether a residual is added, from the IR."""
    from cnnc.ir.ops import conv_padding
    from cnnc.pipeline import front_end, fuse

    graph = fuse(front_end(model).graph)
    layers = []
    for node in graph.nodes:
        if node.op not in ("conv", "fused:conv") or node.attr("groups") == 1 or not node.inputs:
            continue
        c, h, w = graph.in_shapes(node)[0]
        groups, kernel = node.attr("groups"), node.attr("kernel")
        layers.append(dict(model=model, path=node.path, in_shape=(c, h, w),
                           weight_shape=(node.attr("out"), c // groups) + tuple(kernel), groups=groups,
                           stride=tuple(node.attr("stride")), padding=tuple(conv_padding(node.attrs)),
                           dilation=tuple(node.attr("dilation")), activation=node.attr("act"),
                           residual=len(node.inputs) > 1, bn=bool(node.attr("bn"))))
    return layers


def _dispatch_module():
    """cnnc.kernels.dispatch, which imports no torch, without the package (which does): a dry run
    then needs no torch at all."""
    if "cnnc.kernels" in sys.modules:
        return sys.modules["cnnc.kernels"].dispatch
    import importlib.util

    spec = importlib.util.spec_from_file_location("cnnc_dispatch", os.path.join(REPO_ROOT, "cnnc", "kernels",
                                                                                 "dispatch.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_plan(models, batches) -> list[dict]:
    """Every task, in the order they run (module docstring), each with its kind and estimate."""
    dispatch = _dispatch_module()
    tasks = [dict(kind="env", name="versions and copy bandwidth")]
    seen = set()
    for batch in batches:
        for model in models:
            for layer in conv_layers(model):
                x_shape = (batch,) + layer["in_shape"]
                cls = dispatch.shape_class(x_shape, layer["weight_shape"], layer["groups"], layer["stride"],
                                           layer["padding"], layer["dilation"])
                if cls in seen:
                    continue
                seen.add(cls)
                tasks.append(dict(kind="dispatch", name=f"{cls} ({model} {layer['path']}, N={batch})", cls=cls,
                                  batch=batch, layer=layer))
    for batch in batches:
        for model in models:
            tasks += [dict(kind="eager", name=f"{model} N={batch} {v}", model=model, batch=batch, variant=v)
                      for v in EAGER_VARIANTS]
    tasks += [dict(kind="profile", name=name, model=model, batch=batch, path=path)
              for name, model, path, batch in PROFILED]
    for batch in batches:  # compiled: the comparison that decides first (Inductor with cuDNN or with cnnc's kernels)
        for variant in COMPILED_VARIANTS:
            tasks += [dict(kind="compiled", name=f"{model} N={batch} {variant}", model=model, batch=batch,
                           variant=variant) for model in models]
    for batch in batches:
        tasks += [dict(kind="autotune", name=f"{model} N={batch} {v}", model=model, batch=batch, variant=v)
                  for model in models for v in AUTOTUNE_VARIANTS]
    built = set()
    for task in tasks:
        task["estimate_s"] = ESTIMATE_S[task["kind"]]
        if "model" in task and task["model"] not in built:
            built.add(task["model"])
            task["estimate_s"] += BUILD_S
    return tasks


# ---------------------------------------------------------------------------
# Timing (CUDA events; see /work/.library/device/METHOD.md)
# ---------------------------------------------------------------------------
def host_ms(fn, target_ms=60.0, repeats=3):
    """Per call, back-to-back calls between two events: host work included (if the host is
    slower than the device, the device waits, and this shows it). Median of `repeats` loops."""
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    calls = int(min(200, max(5, target_ms / max((time.perf_counter() - t0) * 1e3, 1e-3))))
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / calls)
    return sorted(times)[len(times) // 2]


def graph_ms(fn, calls_per_graph=1, replays=20):
    """Per call, replays of a CUDA graph holding `calls_per_graph` calls: the device's time alone
    (one call per graph adds the replay's fixed cost, so layers use 20). None if not capturable."""
    import torch
    from benchlib import capture_cuda_graph

    try:
        graph = capture_cuda_graph(fn, calls_per_graph)
        graph.replay()
        torch.cuda.synchronize()
        times = []
        for _ in range(3):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(replays):
                graph.replay()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / replays / calls_per_graph)
        return sorted(times)[1]
    except Exception as e:  # noqa: BLE001 - a capture failure is a missing figure, recorded
        print(f"graph_ms: not captured ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})", flush=True)
        return None


def rel_err(got, ref) -> float:
    got, ref = got.float(), ref.float()
    if not bool(got.isfinite().all()):
        return float("nan")
    return ((got - ref).norm() / ref.norm().clamp_min(1e-30)).item()


# ---------------------------------------------------------------------------
# The measurements
# ---------------------------------------------------------------------------
class Session:
    """The run's state: results (written out after every task), models built once."""

    def __init__(self, args, tasks):
        self.args, self.tasks = args, tasks
        self.t0 = time.perf_counter()
        self.result = dict(environment=None, dry_run=args.dry_run, budget_s=args.budget, plan=[
            {k: v for k, v in t.items() if k != "layer"} for t in tasks], dispatch=[], models=[], profile=[],
            skipped=[], errors=[], started=datetime.datetime.now().isoformat(timespec="seconds"))
        self.models = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def write(self):
        os.makedirs(self.args.out, exist_ok=True)
        with open(os.path.join(self.args.out, "measure.json"), "w") as f:
            json.dump(self.result, f, indent=1, default=str)
        with open(os.path.join(self.args.out, "measure.md"), "w") as f:
            f.write(markdown(self.result))

    # -- environment -------------------------------------------------------------------------------
    def env(self, task):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True).stdout.strip() or None
        env = dict(date=datetime.datetime.now().isoformat(timespec="seconds"), commit=commit,
                   python=platform.python_version())
        if self.args.dry_run:  # (no torch import: versions from the installed packages' metadata)
            from importlib import metadata

            env.update({name: metadata.version(name) for name in ("torch", "triton")})
            env.update(device="(dry run: no GPU)", cuda=None, cudnn=None, copy_gb_s=None)
        else:
            import torch
            import triton

            env.update(torch=torch.__version__, triton=triton.__version__, cuda=torch.version.cuda)
            n = 1 << 28  # 512 MiB of fp16 each way
            src, dst = torch.randn(n, device="cuda", dtype=torch.float16), torch.empty(n, device="cuda",
                                                                                       dtype=torch.float16)
            ms = graph_ms(lambda: dst.copy_(src), calls_per_graph=5, replays=5)
            env.update(device=torch.cuda.get_device_name(), cudnn=torch.backends.cudnn.version(),
                       copy_gb_s=None if ms is None else round(2 * n * 2 / (ms * 1e-3) / 1e9))
            del src, dst
        self.result["environment"] = env

    # -- dispatch ----------------------------------------------------------------------------------
    def dispatch(self, task):
        import torch
        import torch.nn.functional as F

        from cnnc import kernels
        from cnnc.kernels.epilogue import TORCH_ACTIVATIONS

        layer, batch = task["layer"], task["batch"]
        g = torch.Generator().manual_seed(len(self.result["dispatch"]))
        cuda = dict(device="cuda")
        C = layer["in_shape"][0]
        x = torch.randn((batch,) + layer["in_shape"], generator=g).to(**cuda, dtype=torch.float16)
        x = x.contiguous(memory_format=torch.channels_last)
        w = (torch.randn(layer["weight_shape"], generator=g) / (layer["weight_shape"][1] * 9) ** 0.5).to(
            **cuda, dtype=torch.float16)
        C_out = layer["weight_shape"][0]
        scale = (torch.rand(C_out, generator=g) + 0.5).to(**cuda)
        shift = torch.randn(C_out, generator=g).to(**cuda)
        conv = dict(stride=layer["stride"], padding=layer["padding"], dilation=layer["dilation"], groups=layer["groups"])
        act = layer["activation"]
        y_shape = F.conv2d(x[:1], w, None, **conv).shape[1:]
        residual = (torch.randn((batch,) + tuple(y_shape), generator=g).to(**cuda, dtype=torch.float16)
                    .contiguous(memory_format=torch.channels_last) if layer["residual"] else None)
        w_folded = (w.float() * scale.view(-1, 1, 1, 1)).half()
        b_folded = shift.half()
        ref = F.conv2d(x.float(), w.float(), None, **conv) * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
        if residual is not None:
            ref = ref + residual.float()
        ref = TORCH_ACTIVATIONS[act](ref)
        calls = {
            "triton": lambda: kernels.conv2d(x, w, scale=scale, shift=shift, activation=act, residual=residual,
                                             policy="dispatch=triton", **conv),
            "ops": lambda: kernels.folded_conv2d(x, w_folded, b_folded, activation=act, residual=residual,
                                                 policy="cudnn_epilogue=ops", **conv),
        }
        if act == "relu":
            calls["fused"] = lambda: kernels.folded_conv2d(x, w_folded, b_folded, activation=act, residual=residual,
                                                           policy="cudnn_epilogue=fused", **conv)
        row = dict(dtype="float16", layout="channels_last", **{"class": task["cls"]},
                   layer=f"{layer['model']} {layer['path']} N={batch} {C}->{C_out} g{layer['groups']}",
                   epilogue=act, residual=layer["residual"], us={}, rel_err={})
        self.result["dispatch"].append(row)
        with torch.no_grad():
            for route, fn in calls.items():
                try:
                    row["rel_err"][route] = rel_err(fn(), ref)
                    if self.args.warm_only:  # compiled and tuned: that is all a warm-up wants
                        continue
                    if not row["rel_err"][route] <= LAYER_TOLERANCE:
                        row["us"][route] = None
                        continue
                    host = host_ms(fn)
                    device = graph_ms(fn, calls_per_graph=20, replays=10)
                    row["us"][route] = dict(host=host * 1e3, device=None if device is None else device * 1e3)
                except Exception as e:  # noqa: BLE001 - e.g. no fused cuDNN engine for this conv
                    row["us"][route] = None
                    row.setdefault("failed", {})[route] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                    torch.cuda.synchronize()

    # -- models ------------------------------------------------------------------------------------
    def build(self, model):
        """tv (torchvision, re-randomized BatchNorm) and cnnc fused (its weights), fp16 channels_last,
        plus cnnc fused with dispatch=triton (a copy); built once per model."""
        if model in self.models:
            return self.models[model]
        import torch
        from bench_models import build_variants

        from cnnc.backends import runtime

        t0 = time.perf_counter()
        ns = argparse.Namespace(policy=None, device="cuda", dtype=torch.float16, nchw=False)
        built = build_variants(model, 224, ns)
        built.pop("cnnc")
        built["cnnc_fused_triton"] = runtime.set_kernel_policy(copy.deepcopy(built["cnnc_fused"]), "dispatch=triton")
        self.models[model] = built
        self.result.setdefault("build_s", {})[model] = round(time.perf_counter() - t0, 1)
        return built

    def callable_of(self, models, variant):
        """The module a variant runs: a built model, or torch.compile of one (freezing on), made once."""
        import torch

        if variant in ("tv", "cnnc_fused", "cnnc_fused_triton"):
            return models[variant]
        base = {"tv_compile": "tv", "tv_max_autotune": "tv", "cnnc_fused_compile": "cnnc_fused",
                "cnnc_fused_compile_triton": "cnnc_fused_triton"}[variant]
        key = f"_compiled_{variant}"
        if key not in models:
            torch._inductor.config.freezing = True
            mode = "max-autotune-no-cudagraphs" if variant == "tv_max_autotune" else None
            models[key] = torch.compile(models[base], mode=mode, dynamic=False)
        return models[key]

    def model_task(self, task):
        import torch

        from cnnc.backends.cuda_graphs import CUDAGraphed

        models = self.build(task["model"])
        batch, variant = task["batch"], task["variant"]
        x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch))
        x = x.to("cuda", torch.float16).contiguous(memory_format=torch.channels_last)
        refs = models.setdefault("_refs", {})
        with torch.no_grad():
            if batch not in refs:
                refs[batch] = _first(models["tv"].float()(x.float())).float()
                models["tv"].half()
            fn = self.callable_of(models, variant)
            row = dict(model=task["model"], batch=batch, variant=variant)
            self.result["models"].append(row)
            t0 = time.perf_counter()
            out = fn(x)
            torch.cuda.synchronize()
            row["first_call_s"] = round(time.perf_counter() - t0, 2)
            row["rel_err"] = rel_err(_first(out), refs[batch])
            if not row["rel_err"] <= MAX_REL_ERR:
                row["error"] = f"relative error {row['rel_err']:.2e} against torchvision fp32: not timed"
                return
            row["host_ms"] = host_ms(lambda: fn(x))
            # as a user runs it: CUDAGraphed (warm-up, capture), then back-to-back forwards, each an
            # input copy and a replay
            graphed = CUDAGraphed(fn).eval()
            row["graphed_rel_err"] = rel_err(_first(graphed(x)), refs[batch])
            row["graphed_ms"] = host_ms(lambda: graphed(x))

    # -- per-kernel profile ------------------------------------------------------------------------
    def profile(self, task):
        import torch
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        from cnnc.backends import runtime

        models = self.build(task["model"])
        c, h, k, s, groups = PROFILED_SHAPES[task["name"]]
        layer = next(m for m in models["cnnc_fused"].modules() if isinstance(m, runtime.FusedConv2d)
                     and m.in_channels == c and m.kernel_size == (k, k) and m.stride == (s, s) and m.groups == groups)
        x = torch.randn(task["batch"], c, h, h, generator=torch.Generator().manual_seed(1))
        x = x.to("cuda", torch.float16).contiguous(memory_format=torch.channels_last)
        routes = {"triton": "dispatch=triton", "ops": "dispatch=torch", "fused": "dispatch=torch,cudnn_epilogue=fused"}
        row = dict(layer=task["name"], batch=task["batch"], kernels={}, host_ms={})
        self.result["profile"].append(row)
        with torch.no_grad():
            ref = None
            for route, policy in routes.items():
                if route == "fused" and layer.activation != "relu":
                    continue
                for compiled in ((False, True) if route != "fused" else (False,)):
                    probe = runtime.set_kernel_policy(copy.deepcopy(layer), policy)
                    fn = torch.compile(probe, dynamic=False) if compiled else probe
                    name = f"{route}{' compile' if compiled else ''}"
                    try:
                        y = fn(x)
                        ref = y if ref is None else ref
                        row.setdefault("rel_err", {})[name] = rel_err(y, ref)
                        if self.args.warm_only:
                            continue
                        row["host_ms"][name] = host_ms(lambda: fn(x))
                        calls = 20
                        with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
                            for _ in range(calls):
                                fn(x)
                            torch.cuda.synchronize()
                        row["kernels"][name] = device_kernels(prof, calls)
                    except Exception as e:  # noqa: BLE001
                        row.setdefault("failed", {})[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"

    def run_task(self, task):
        if task["kind"] == "env":
            return self.env(task)
        if task["kind"] == "dispatch":
            return self.dispatch(task)
        if task["kind"] in ("eager", "compiled", "autotune"):
            return self.model_task(task)
        if task["kind"] == "profile":
            return self.profile(task)
        raise ValueError(task["kind"])


def _first(out):
    """A model's main output (cnnc returns a NamedTuple where a network has several outputs)."""
    return out if hasattr(out, "float") else out[0]


def device_kernels(prof, calls) -> dict:
    """Device microseconds per call of each kernel the profiled calls launched, by name."""
    out = {}
    for event in prof.key_averages():
        device_us = getattr(event, "self_device_time_total", None)
        if device_us is None:
            device_us = getattr(event, "self_cuda_time_total", 0)
        if device_us and event.count:
            out[event.key[:90]] = round(device_us / calls, 2)
    return dict(sorted(out.items(), key=lambda kv: -kv[1])[:8])


# ---------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------
def _ms(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def markdown(result) -> str:
    env = result.get("environment") or {}
    lines = [f"# GPU measurement, {(env.get('date') or result['started'])[:10]}", "",
             f"device: {env.get('device')}; commit {env.get('commit')}; torch {env.get('torch')}, triton "
             f"{env.get('triton')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}; copy {env.get('copy_gb_s')} GB/s; "
             "fp16, channels_last, eval." + (" **Dry run: no measurement.**" if result["dry_run"] else ""),
             "", "## Whole models (ms per forward)", "",
             "host: back-to-back forwards, host work included; graphed: CUDA-graph replays (device time).", "",
             "| model | N | variant | host ms | graphed ms | rel err | first call s |", "|---|---|---|---|---|---|---|"]
    for r in result["models"]:
        err = r.get("rel_err")
        lines.append(f"| {r['model']} | {r['batch']} | {r['variant']} | {_ms(r.get('host_ms'))} | "
                     f"{_ms(r.get('graphed_ms'))} | {'-' if err is None else f'{err:.1e}'} | {r.get('first_call_s', '-')} |"
                     + (f" {r['error']}" if r.get("error") else ""))
    lines += ["", "## Dispatch: Triton against the torch route per shape class (us per call)", "",
              "| class | layer | triton host | ops host | fused host | triton device | ops device | fused device |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result["dispatch"]:
        us = r["us"]

        def cell(route, t):
            v = (us.get(route) or {}).get(t)
            return "-" if v is None else f"{v:.1f}"

        lines.append(f"| {r['class']} | {r['layer']} | " + " | ".join(cell(route, t) for t in ("host", "device")
                                                                       for route in ROUTES) + " |")
    lines += ["", "## Per-kernel device time (us per call, torch.profiler)", ""]
    for r in result["profile"]:
        lines.append(f"- {r['layer']} N={r['batch']}: " + "; ".join(
            f"**{name}** host {r['host_ms'].get(name, 0) * 1e3:.0f} us: " + ", ".join(f"{k} {v}" for k, v in ks.items())
            for name, ks in r["kernels"].items()))
    if result["skipped"]:
        lines += ["", f"Skipped (budget): {len(result['skipped'])} tasks: " + ", ".join(result["skipped"][:20])
                  + (" ..." if len(result["skipped"]) > 20 else "")]
    if result["errors"]:
        lines += ["", "Errors:"] + [f"- {e}" for e in result["errors"]]
    return "\n".join(lines) + "\n"


def short_table(result) -> str:
    """The end of the output: per model and batch, each variant's host and graphed ms."""
    rows = {}
    for r in result["models"]:
        rows.setdefault((r["model"], r["batch"]), {})[r["variant"]] = r
    variants = EAGER_VARIANTS + COMPILED_VARIANTS + AUTOTUNE_VARIANTS
    head = f"{'model':<16} {'N':>3} " + " ".join(f"{v[:18]:>18}" for v in variants)
    lines = ["host ms / graphed ms per forward", head]
    for (model, batch), by in rows.items():
        cells = []
        for v in variants:
            r = by.get(v, {})
            cells.append(f"{_ms(r.get('host_ms')):>8}/{_ms(r.get('graphed_ms')):<9}")
        lines.append(f"{model:<16} {batch:>3} " + " ".join(cells))
    triton = sum(1 for r in result["dispatch"] if (r["us"].get("triton") or {}).get("host"))
    lines.append(f"dispatch classes measured: {len(result['dispatch'])} ({triton} with a Triton time); "
                 f"skipped tasks: {len(result['skipped'])}; errors: {len(result['errors'])}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Warm-up (compile only) and the main loop
# ---------------------------------------------------------------------------
def warm(session, shard):
    """Compile what `shard` (i/n) of the tasks needs, timing nothing: Triton's and Inductor's
    on-disk caches are then warm for the timed run (the autotuners tune again there, alone)."""
    import torch

    i, n = shard
    mine = [t for k, t in enumerate(session.tasks) if k % n == i - 1 and t["kind"] in (
        "dispatch", "compiled", "autotune", "profile")]
    for task in mine:
        t0 = time.perf_counter()
        try:
            if task["kind"] == "dispatch":
                session.dispatch(task)
            elif task["kind"] == "profile":
                session.profile(task)
            else:
                models = session.build(task["model"])
                x = torch.randn(task["batch"], 3, 224, 224, device="cuda", dtype=torch.float16)
                with torch.no_grad():
                    session.callable_of(models, task["variant"])(x.contiguous(memory_format=torch.channels_last))
            print(f"warmed {task['name']} in {time.perf_counter() - t0:.0f} s", flush=True)
        except Exception as e:  # noqa: BLE001
            print(f"warm-up of {task['name']} failed: {type(e).__name__}: {e}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT", "/tmp/cnnc_gpu_out"))
    p.add_argument("--budget", type=float, default=420.0, help="seconds this process may spend (tasks that no "
                                                                "longer fit are skipped and recorded)")
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--batches", nargs="+", type=int, default=BATCHES)
    p.add_argument("--kinds", nargs="+", choices=sorted(ESTIMATE_S), help="only these kinds of task (the "
                   "environment is always measured), e.g. --kinds compiled autotune --batches 1 for a second call")
    p.add_argument("--dry-run", action="store_true", help="no GPU: the plan, its estimates and empty outputs")
    p.add_argument("--warm-only", action="store_true", help="compile only, nothing timed (with --shard)")
    p.add_argument("--shard", default="1/1", help="I/N: with --warm-only, the I-th of N slices of the tasks")
    args = p.parse_args(argv)
    tasks = build_plan(args.models, args.batches)
    if args.kinds:
        tasks = [t for t in tasks if t["kind"] == "env" or t["kind"] in args.kinds]
    session = Session(args, tasks)
    if args.dry_run:
        session.env(tasks[0])
        estimate = sum(t["estimate_s"] for t in tasks)
        fits = 0
        for t in tasks:
            fits += t["estimate_s"]
            if fits > args.budget:
                session.result["skipped"].append(t["name"])
        session.result["estimate_s"] = estimate
        session.write()
        print(f"dry run: {len(tasks)} tasks ({sum(t['kind'] == 'dispatch' for t in tasks)} dispatch classes), "
              f"estimated {estimate:.0f} s against a budget of {args.budget:.0f} s; "
              f"{len(session.result['skipped'])} would be skipped")
        print(short_table(session.result))
        return 0
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_measure: no CUDA device (use --dry-run to check the plan without one)")
    torch.backends.cudnn.benchmark = True
    if args.warm_only:
        i, n = (int(v) for v in args.shard.split("/"))
        warm(session, (i, n))
        return 0
    for task in tasks:
        if task["kind"] != "env" and session.elapsed() + task["estimate_s"] > args.budget:
            session.result["skipped"].append(task["name"])
            continue
        t0 = time.perf_counter()
        try:
            session.run_task(task)
        except Exception as e:  # noqa: BLE001 - one failure is a recorded result, not the end of the run
            session.result["errors"].append(f"{task['name']}: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
            traceback.print_exc(limit=4)
        task_s = round(time.perf_counter() - t0, 1)
        session.result.setdefault("task_s", {})[task["name"]] = task_s
        print(f"[{session.elapsed():5.0f} s] {task['name']}: {task_s} s", flush=True)
        session.write()
    write_dispatch_table(session)
    session.write()
    print(short_table(session.result))
    return 0


def write_dispatch_table(session):
    """The dispatch table of this run ($OUT/dispatch_<device>.json), for a later commit."""
    import dispatch_table

    if not session.result["dispatch"] or not session.result.get("environment"):
        return
    table = dispatch_table.table_of(session.result)
    path = os.path.join(session.args.out, f"dispatch_{dispatch_table.slug(table['device'])}.json")
    with open(path, "w") as f:
        json.dump(table, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
