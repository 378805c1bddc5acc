"""Host time of one kernels.conv2d call, up to the Triton launch, measured on the CPU alone.

A call is host work (argument checks, picking a kernel, allocating outputs, the filter's
tap-major copy, the autotuner's lookup, Triton's binder and launcher) plus device work. When
the host part is the longer one, the GPU idles and a timed loop measures the host
(tools/profile_kernels.py shows this on a GPU). This script measures the host part that is
cnnc's own, without a GPU: Triton's interpreter is on, and the JIT function's `run` (where
Triton would bind arguments, compile or look up the binary and launch) is replaced by a
no-op. What runs is everything before it: kernels.conv2d, the launchers, torch's allocation
and copy ops on CPU tensors, and cnnc's remembered config (`kernels._runtime.launch`). Each
kernel gets a six-config tuning space (as on a GPU; the interpreter has one config), tuned once
with fixed fake timings.

Routes, per layer, forward (no grad) and training step (forward + backward, all grads):
  operator    the `torch.library` operators (what torch.compile/export trace)
  eager       the eager path (`_EagerConv2d`), what generated modules take outside a tracer
and the aten ops each call issues (torch.profiler on CPU; `aten_copies`: the `contiguous` calls,
the depthwise filter's tap-major copy among them). Every launch after the first takes the
remembered config; the route through `Autotuner.run` that it replaced (a switch until the
2026-11-23 measurement settled it: 47.6 -> 28.7 us per forward here) is gone. An eager forward
after the first with the same signature runs `conv2d`'s prepared path: the checks' result kept
per signature, the filter's re-layout kept per weight version, the launch's arguments and config
kept (`_runtime.Prepared`): an output allocation, a lookup and the call into Triton.

    python tools/host_overhead.py [--calls 2000] [--policy KEY] [--out results.json] [--profile LAYER]

Each call is timed on its own (perf_counter_ns); the table gives the median and, in brackets, the
minimum, since this machine is shared: the minimum is the call without the load.

CPU figures: a GPU host adds Triton's own launch path and CUDA's per-op cost on top.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ["TRITON_INTERPRET"] = "1"  # before kernels / triton.jit are imported

import torch  # noqa: E402
import triton  # noqa: E402
from triton.runtime.autotuner import Autotuner  # noqa: E402
from triton.runtime.interpreter import InterpretedFunction  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cnnc import kernels  # noqa: E402
from cnnc.kernels import depthwise, grouped  # noqa: E402

LAYERS = {  # name: (C, H=W, k, stride, groups)
    "dw 512,14,k3,s1": (512, 14, 3, 1, 512),
    "dw 96,56,k7,s1": (96, 56, 7, 1, 96),
    "g32 128,56,k3,s1": (128, 56, 3, 1, 32),
}
ROUTES = ("operator", "eager")


def autotuners():
    mods = (depthwise, grouped)
    return [obj for m in mods for obj in vars(m).values() if isinstance(obj, Autotuner)]


def six_config_spaces():
    """Give every kernel six configs (copies of its own with other num_stages: the autotuner's
    per-call cost depends on the count, not on the contents) and fake timings favouring the
    first, so that tuning picks it without running anything."""
    for kernel in autotuners():
        first = kernel.configs[0]
        kernel.configs = [first] + [triton.Config(dict(first.kwargs), num_warps=first.num_warps, num_stages=s)
                                    for s in range(2, 7)]
        kernel.cache = {}
        kernel._bench = lambda *a, config, _first=first, **k: [0.0 if config is _first else 1.0] * 3


def make_call(layer, mode, route, policy):
    C, hw, k, stride, groups = LAYERS[layer]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, C, hw, hw, generator=g).contiguous(memory_format=torch.channels_last)
    w = torch.randn(C, C // groups, k, k, generator=g)
    scale, shift = torch.rand(C, generator=g) + 0.5, torch.randn(C, generator=g)
    conv = dict(stride=stride, padding=k // 2, groups=groups)
    if mode == "train":
        for t in (x, w, scale, shift):
            t.requires_grad_()
    grad_y = None

    def forward():
        if route == "operator":
            return torch.ops.cnnc_kernels.conv2d(x, w, [stride] * 2, [k // 2] * 2, [1, 1], groups, scale, shift,
                                                 "relu", None, policy.key)
        return kernels.conv2d(x, w, scale=scale, shift=shift, activation="relu", policy=policy, **conv)

    def call():
        nonlocal grad_y
        if mode == "fwd":  # (inside the caller's no_grad: a model's forward enters it once, not per conv)
            return forward()
        y = forward()
        if grad_y is None:
            grad_y = torch.ones_like(y)
        return torch.autograd.grad(y, [x, w, scale, shift], grad_y)

    return call


def per_call_us(call, calls, grad):
    """(median, minimum) microseconds of `calls` calls, each timed on its own, after 20 untimed ones
    (the first tunes and prepares): on a loaded machine the median says what a call costs with the
    load, the minimum what it costs without."""
    times = []
    with torch.set_grad_enabled(grad):
        for _ in range(20):
            call()
        clock = time.perf_counter_ns
        for _ in range(calls):
            t0 = clock()
            call()
            times.append(clock() - t0)
    return statistics.median(times) / 1e3, min(times) / 1e3


def aten_ops(call, grad):
    from torch.profiler import ProfilerActivity, profile

    with torch.set_grad_enabled(grad):
        call()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            call()
    names = [e.name for e in prof.events() if e.name.startswith("aten::")]
    return len(names), sorted(set(names)), names.count("aten::contiguous")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--policy", default="", help="the kernel policy, as its key string (default: the default)")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--profile", metavar="LAYER", help="also cProfile the eager forward of this layer "
                                                           "(one of LAYERS) and print where its time goes")
    args = parser.parse_args(argv)
    try:
        policy = kernels.Policy.parse(args.policy)
    except ValueError as e:
        parser.error(f"--policy: {e}")
    if not policy.interpret_cpu:  # the CPU tensors are the point
        parser.error("--policy: interpret_cpu=false would measure the torch path, not the kernels' launchers")

    torch.set_num_threads(1)
    six_config_spaces()
    InterpretedFunction.run = lambda self, *a, grid, warmup, **k: None  # no launch
    rows = []
    for layer in LAYERS:
        for mode in ("fwd", "train"):
            row = {"layer": layer, "mode": mode}
            grad = mode == "train"
            for route in ROUTES:
                call = make_call(layer, mode, route, policy)
                row[route], row[f"{route}_min"] = per_call_us(call, args.calls if mode == "fwd" else args.calls // 4,
                                                              grad)
                if route == "eager":
                    row["aten_ops"], row["aten_op_names"], row["aten_copies"] = aten_ops(call, grad)
            rows.append(row)
    print(f"host us per call on this CPU ({torch.get_num_threads()} thread), Triton's JIT run stubbed out, "
          f"policy {policy.key or 'default'!r}; median (minimum) of {args.calls} calls timed one by one "
          f"({args.calls // 4} for a training step)")
    print(f"{'layer':20s} {'mode':5s} " + " ".join(f"{r:>17s}" for r in ROUTES) + "  eager/operator  aten ops")
    for r in rows:
        print(f"{r['layer']:20s} {r['mode']:5s} " + " ".join(f"{r[k]:8.1f} ({r[k + '_min']:6.1f})" for k in ROUTES)
              + f"  {r['eager'] / r['operator']:13.2f}x  {r['aten_ops']:8d}")
    for r in rows:
        print(f"  {r['layer']} {r['mode']}: {', '.join(n[6:] for n in r['aten_op_names'])}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"torch": torch.__version__, "triton": triton.__version__, "policy": policy.key, "rows": rows},
                      f, indent=1)
    print("median eager/operator:", round(statistics.median(r["eager"] / r["operator"] for r in rows), 2))
    if args.profile:
        profile_forward(args.profile, policy)


def profile_forward(layer, policy, calls=3000):
    """cProfile of `calls` eager forwards of `layer` (prepared): the functions by own time."""
    import cProfile
    import pstats

    call = make_call(layer, "fwd", "eager", policy)
    with torch.no_grad():
        per_call_us(call, 1, False)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(calls):
            call()
        profiler.disable()
    print(f"cProfile, {calls} eager forwards of {layer} (profiler overhead included):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
