"""Benchmark kernels.conv2d against cuDNN, eager PyTorch and torch.compile, side by side.

For every layer of ANCHORS.md §3, at batch 64 and 1 (fp16, channels_last by default):

forward (eval, no grad; block = conv (no bias) + BatchNorm (running stats) + ReLU):
  cudnn     F.conv2d alone (no BN, no activation): the conv's own cost
  eager     nn.Conv2d -> nn.BatchNorm2d.eval() -> nn.ReLU, three kernels
  compile   torch.compile of the eager block with torch._inductor.config.freezing = True
            (conv-BN folding on: its best inference case), under torch.no_grad
  kernels   kernels.conv2d(x, w, scale, shift, activation="relu"), BN folded into scale/shift

forward + backward (training; grads of input and all parameters, grad_out given):
  cudnn     F.conv2d forward + backward alone
  eager_bn  nn.Conv2d -> nn.BatchNorm2d.train() (batch statistics) -> nn.ReLU
  eager     conv -> * scale + shift (trainable per-channel affine, i.e. BN with frozen
            statistics) -> relu: exactly the math kernels.conv2d differentiates
  compile   torch.compile of that affine block (freezing does not apply in training)
  kernels   kernels.conv2d with trainable scale/shift, activation="relu"
BatchNorm with batch statistics cannot be fused into the conv epilogue (the statistics
depend on the whole conv output), so `eager_bn` is context, `eager`/`compile` the
like-for-like baselines.

Each kernels result is checked against eager before it is timed. Times are the median of
triton.testing.do_bench. "floor" bytes = input read once + output written once + weights
(forward); forward+backward adds reading grad_out and x once more and writing grad_x and
grad_w. GB/s = floor bytes / time, and "% copy" is that against the device-to-device copy
bandwidth measured once at start-up.

    python tools/bench_kernels.py [--batch 64 1] [--layers mobilenet resnext] [--out DIR]
    python tools/bench_kernels.py --smoke --out DIR   # CPU, interpreter, tiny shapes
    python tools/bench_kernels.py --shard 2/3 --out DIR  # every 3rd (batch, layer) pair, from the 2nd
    python tools/bench_kernels.py --merge DIR/*.json     # shards -> one table

Writes full JSON to --out (rewritten after every layer, so a run cut off keeps its rows) and
a markdown table, ending with the issue's targets evaluated on the batch-64 rows, to
benchmarks/ (and --out); --smoke and single shards write only to --out.
"""

import argparse
import dataclasses
import json
import os
import statistics
import sys

import torch

import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import cuda_graph_ms, environment, make_timer, randomize_normalization, write_table  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Layer:
    family: str
    channels: int
    hw: int
    kernel: int
    stride: int
    groups: int  # == channels for depthwise

    @property
    def name(self):
        kind = "dw" if self.groups == self.channels else f"g{self.groups}"
        return f"{self.family} {kind} {self.channels},{self.hw},k{self.kernel},s{self.stride}"


def _dw(family, k, rows):
    return [Layer(family, c, hw, k if len(r) < 4 else r[2], r[-1], c)
            for r in rows for c, hw in [r[:2]]]


# ANCHORS.md §3: (C, HxW of the input, k, stride); 224x224 input unless noted.
LAYERS = (
    _dw("MobileNetV1", 3, [(32, 112, 1), (64, 112, 2), (128, 56, 1), (128, 56, 2), (256, 28, 1),
                           (256, 28, 2), (512, 14, 1), (512, 14, 2), (1024, 7, 1)])
    + _dw("MobileNetV2", 3, [(96, 112, 2), (144, 56, 1), (192, 28, 1), (384, 14, 1), (576, 14, 2),
                             (960, 7, 1)])
    + _dw("EfficientNetB0", 0, [(144, 56, 5, 2), (240, 28, 5, 1), (480, 14, 3, 1), (672, 14, 5, 1),
                                (1152, 7, 5, 1)])
    + _dw("ConvNeXtT", 7, [(96, 56, 1), (192, 28, 1), (384, 14, 1), (768, 7, 1)])
    + _dw("Xception", 3, [(128, 74, 1), (256, 37, 1), (728, 19, 1), (1536, 10, 1)])  # 299 input
    + [Layer("ResNeXt50", c, hw, 3, s, 32)
       for c, hw, s in [(128, 56, 1), (256, 56, 2), (256, 28, 1), (512, 14, 1), (1024, 7, 1)]]
)

# --smoke: one depthwise and one grouped layer, shrunk so the interpreter runs them quickly.
SMOKE_LAYERS = (Layer("smoke", 8, 8, 3, 1, 8), Layer("smoke", 64, 6, 3, 2, 4))


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------
def warm_timer(fn):
    """--warm-only: run once (compiling what it needs), measure nothing."""
    fn()
    return 1.0


def copy_bandwidth_gbs(device, timer, nbytes):
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = timer(lambda: dst.copy_(src))
    return 2 * nbytes / (ms * 1e-3) / 1e9  # one read + one write


# ---------------------------------------------------------------------------
# One layer
# ---------------------------------------------------------------------------
def build(layer, batch, dtype, channels_last, device, policy=None):
    """The layer's tensors and calls; `policy`: the kernel policy of `fused` (None: the default)."""
    from cnnc import kernels

    torch.manual_seed(0)
    C, k = layer.channels, layer.kernel
    conv = torch.nn.Conv2d(C, C, k, layer.stride, k // 2, groups=layer.groups, bias=False)
    bn = randomize_normalization(torch.nn.BatchNorm2d(C))  # non-trivial running statistics and affine
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    block = torch.nn.Sequential(conv, bn, torch.nn.ReLU()).to(device=device, dtype=dtype, memory_format=fmt)
    x = torch.randn(batch, C, layer.hw, layer.hw, device=device, dtype=dtype).contiguous(memory_format=fmt)
    w = block[0].weight.detach()
    scale, shift = kernels.fold_batchnorm(bn.weight.float(), bn.bias.float(), bn.running_mean.float(),
                                          bn.running_var.float(), bn.eps)
    scale, shift = scale.to(device), shift.to(device)
    conv_args = dict(stride=layer.stride, padding=k // 2, groups=layer.groups)

    def fused(x, w, scale, shift, policy=policy):  # another policy: tools/ab_kernels.py
        return kernels.conv2d(x, w, scale=scale, shift=shift, activation="relu", policy=policy, **conv_args)

    def affine_block(x, w, scale, shift):
        z = F.conv2d(x, w, None, **conv_args)
        return torch.relu(z * scale.view(1, -1, 1, 1).to(z.dtype) + shift.view(1, -1, 1, 1).to(z.dtype))

    return dict(block=block, x=x, w=w, scale=scale, shift=shift, conv_args=conv_args,
                fused=fused, affine_block=affine_block, backend=kernels.kernel_for(x, w, layer.groups, policy=policy))


def floor_bytes(layer, batch, dtype, backward):
    e = torch.empty((), dtype=dtype).element_size()
    oh = (layer.hw + 2 * (layer.kernel // 2) - layer.kernel) // layer.stride + 1
    x_b = batch * layer.channels * layer.hw * layer.hw * e
    y_b = batch * layer.channels * oh * oh * e
    w_b = layer.channels * (layer.channels // layer.groups) * layer.kernel ** 2 * e
    fwd = x_b + y_b + w_b
    return fwd + (y_b + x_b + x_b + w_b) if backward else fwd


def rel_err(a, b):
    a, b = a.float(), b.float()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def check_forward(m, max_rel=1e-2):
    with torch.no_grad():
        got = m["fused"](m["x"], m["w"], m["scale"], m["shift"])
        ref = m["affine_block"](m["x"].float(), m["w"].float(), m["scale"], m["shift"])
        eager = m["block"].eval()(m["x"])
    assert torch.isfinite(got).all(), "kernels.conv2d produced non-finite values"
    err = rel_err(got, ref)
    assert err < max_rel, f"kernels.conv2d forward relative error {err:.2e} vs fp32 reference"
    assert rel_err(eager, ref) < max_rel, "eager block disagrees with its folded form"
    return err


def check_backward(m, max_rel=2e-2):
    leaves = [m["x"], m["w"], m["scale"], m["shift"]]
    g = torch.randn_like(m["fused"](*leaves).float()).to(m["x"].dtype)
    results = []
    for fn, cast in ((m["fused"], lambda t: t), (m["affine_block"], lambda t: t.float())):
        ins = [cast(t.detach()).requires_grad_() for t in leaves]
        results.append(torch.autograd.grad(fn(*ins), ins, g.to(ins[0].dtype)))
    errs = [rel_err(a, b) for a, b in zip(*results)]
    assert max(errs) < max_rel, f"kernels.conv2d gradients relative errors {errs} vs fp32 eager"
    return max(errs)


def bench_layer(layer, batch, args, timer, copy_gbs):
    import torch._inductor.config as inductor_config

    m = build(layer, batch, args.dtype, not args.nchw, args.device, args.policy)
    x, w, scale, shift = m["x"], m["w"], m["scale"], m["shift"]
    row = dict(layer=layer.name, batch=batch, backend=m["backend"], fwd=check_forward(m))
    fwd_floor = floor_bytes(layer, batch, args.dtype, backward=False)

    times = {}
    with torch.no_grad():
        block = m["block"].eval()
        times["cudnn"] = timer(lambda: F.conv2d(x, w, None, **m["conv_args"]))
        times["eager"] = timer(lambda: block(x))
        if not args.no_compile:
            torch._dynamo.reset()
            with inductor_config.patch(freezing=True):
                compiled = torch.compile(block)
                compiled(x)
                times["compile"] = timer(lambda: compiled(x))
        times["kernels"] = timer(lambda: m["fused"](x, w, scale, shift))
        graph = {}
        if args.device == "cuda" and timer is not warm_timer:
            # device time alone (CUDA graph replay): what is left when host overhead is gone
            fns = dict(cudnn=lambda: F.conv2d(x, w, None, **m["conv_args"]),
                       kernels=lambda: m["fused"](x, w, scale, shift))
            if "compile" in times:
                fns["compile"] = lambda: compiled(x)
            graph = {k: ms for k, fn in fns.items() if (ms := cuda_graph_ms(fn, timer)) is not None}
    row["forward"] = _summarize(times, fwd_floor, copy_gbs, graph)

    if not args.no_backward:
        row["bwd_max_rel_err"] = check_backward(m)
        leaves = [t.detach().requires_grad_() for t in (x, w, scale, shift)]
        g = torch.randn_like(m["fused"](*leaves).detach())
        times = {}

        def train_step(fn, inputs):
            return lambda: torch.autograd.grad(fn(*inputs), inputs, g)

        times["cudnn"] = timer(train_step(lambda x, w: F.conv2d(x, w, None, **m["conv_args"]), leaves[:2]))
        block = m["block"].train()
        params = [leaves[0]] + list(block.parameters())
        times["eager_bn"] = timer(train_step(lambda x, *p: block(x), params))
        times["eager"] = timer(train_step(m["affine_block"], leaves))
        if not args.no_compile:
            torch._dynamo.reset()
            compiled = torch.compile(m["affine_block"])
            train_step(compiled, leaves)()
            times["compile"] = timer(train_step(compiled, leaves))
        times["kernels"] = timer(train_step(m["fused"], leaves))
        row["forward_backward"] = _summarize(times, floor_bytes(layer, batch, args.dtype, True), copy_gbs)
    return row


def _summarize(times, floor, copy_gbs, graph=None):
    out = dict(floor_mb=floor / 1e6, ms=times)
    gbs = floor / (times["kernels"] * 1e-3) / 1e9
    out["kernels_gbs"] = gbs
    out["kernels_frac_copy_bw"] = gbs / copy_gbs
    if graph and "kernels" in graph:
        out["graph_ms"] = graph
        out["graph_kernels_frac_copy_bw"] = floor / (graph["kernels"] * 1e-3) / 1e9 / copy_gbs
    return out


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
def markdown(env, rows, copy_gbs, args):
    lines = [f"# kernels.conv2d benchmark, {env['date'][:10]}", "",
             f"device: {env['device']}; torch {env['torch']}, triton {env['triton']}, CUDA {env['cuda']}, "
             f"cuDNN {env['cudnn']}; dtype {str(args.dtype).replace('torch.', '')}, "
             f"{'NCHW' if args.nchw else 'channels_last'}; measured copy bandwidth {copy_gbs:.0f} GB/s.",
             "Times: median ms of triton.testing.do_bench" + (" (--smoke: CPU wall clock, meaningless)" if args.smoke else "")
             + ". GB/s and % copy are for kernels against the floor bytes.", ""]
    for mode, cols in (("forward", ("cudnn", "eager", "compile", "kernels")),
                       ("forward_backward", ("cudnn", "eager_bn", "eager", "compile", "kernels"))):
        mode_rows = [r for r in rows if mode in r]
        if not mode_rows:
            continue
        lines += [f"## {mode.replace('_', ' + ')}", "",
                  "| layer | N | kernel | floor MB | " + " | ".join(f"{c} ms" for c in cols)
                  + " | kernels GB/s | % copy | compile / kernels |",
                  "|" + "---|" * (len(cols) + 7)]
        for r in mode_rows:
            s = r[mode]
            ms = [f"{s['ms'][c]:.3f}" if c in s["ms"] else "-" for c in cols]
            speedup = f"{s['ms']['compile'] / s['ms']['kernels']:.2f}x" if "compile" in s["ms"] else "-"
            lines.append(f"| {r['layer']} | {r['batch']} | {r['backend']} | {s['floor_mb']:.1f} | "
                         + " | ".join(ms) + f" | {s['kernels_gbs']:.0f} | {100 * s['kernels_frac_copy_bw']:.0f}% | {speedup} |")
        lines.append("")
    graph_rows = [r for r in rows if "graph_ms" in r.get("forward", {})]
    if graph_rows:
        cols = ("cudnn", "compile", "kernels")
        lines += ["## forward, device time alone (CUDA graph replay)", "",
                  "The same calls captured in a CUDA graph and replayed: no Python, dispatch or launch "
                  "cost, which dominates the table above for small layers.", "",
                  "| layer | N | " + " | ".join(f"{c} ms" for c in cols) + " | % copy | cudnn / kernels | compile / kernels |",
                  "|" + "---|" * (len(cols) + 5)]
        for r in graph_rows:
            g = r["forward"]["graph_ms"]
            ratio = [f"{g[b] / g['kernels']:.2f}x" if b in g else "-" for b in ("cudnn", "compile")]
            lines.append(f"| {r['layer']} | {r['batch']} | " + " | ".join(f"{g[c]:.3f}" if c in g else "-" for c in cols)
                         + f" | {100 * r['forward']['graph_kernels_frac_copy_bw']:.0f}% | " + " | ".join(ratio) + " |")
        lines.append("")
    return "\n".join(lines + targets_markdown(rows) + targets_markdown(rows, "graph_ms"))


def _median(values):
    return statistics.median(values) if values else None


def targets(rows, times="ms"):
    """The issue's targets, each as (name, measured figure, goal, met) from batch-64 rows.
    Ratios are baseline ms / kernels ms (above 1: kernels faster). `times`: "ms" (do_bench
    of the calls) or "graph_ms" (device time alone, forward targets only)."""
    b64 = [r for r in rows if r["batch"] == 64]
    dw = [r for r in b64 if " dw " in r["layer"]]
    grouped = [r for r in b64 if " dw " not in r["layer"]]

    def ratio(r, mode, base):
        ms = r.get(mode, {}).get(times, {})
        return ms[base] / ms["kernels"] if base in ms and "kernels" in ms else None

    def collect(rs, mode, base):
        return [(r["layer"], x) for r in rs if (x := ratio(r, mode, base)) is not None]

    def median(label, pairs, goal):
        if pairs:
            med = _median([x for _, x in pairs])
            name, worst = min(pairs, key=lambda t: t[1])
            out.append((label, f"{med:.2f}x (worst {worst:.2f}x, {name})", f">= {goal}x", med >= goal))

    def worst(label, pairs, goal, percent=False):
        if pairs:
            name, value = min(pairs, key=lambda t: t[1])
            shown = f"{100 * value:.0f}%" if percent else f"{value:.2f}x"
            out.append((label, f"{shown} ({name})", f">= {100 * goal:.0f}%" if percent else f">= {goal}x",
                        value >= goal))

    out = []
    frac = "kernels_frac_copy_bw" if times == "ms" else "graph_kernels_frac_copy_bw"
    dw_cudnn = collect(dw, "forward", "cudnn")
    median("depthwise fwd: torch.compile / kernels, median layer", collect(dw, "forward", "compile"), 1.5)
    worst("depthwise fwd: cuDNN conv alone / kernels, worst layer", dw_cudnn, 1.0)
    worst("depthwise fwd, layers over 50 MB: fraction of copy bandwidth, worst",
          [(r["layer"], r["forward"][frac]) for r in dw if r["forward"]["floor_mb"] > 50 and frac in r["forward"]], 0.7,
          percent=True)
    worst("ConvNeXt 7x7 dw fwd: cuDNN / kernels, worst layer", [(n, x) for n, x in dw_cudnn if n.startswith("ConvNeXt")],
          2.0)
    median("grouped fwd: torch.compile / kernels, median layer", collect(grouped, "forward", "compile"), 1.2)
    median("depthwise fwd+bwd: eager (cuDNN) / kernels, median layer", collect(dw, "forward_backward", "eager"), 2.0)
    return out


def targets_markdown(rows, times="ms"):
    found = targets(rows, times)
    if not found:
        return []
    title = "## targets (batch 64)" if times == "ms" else "## targets on device time alone (batch 64, CUDA graphs)"
    lines = [title, "", "| target | measured | goal | met |", "|---|---|---|---|"]
    lines += [f"| {name} | {value} | {goal} | {'yes' if met else '**no**'} |" for name, value, goal, met in found]
    return lines + [""]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, nargs="+", default=[64, 1])
    p.add_argument("--layers", nargs="+", default=None,
                   help="substrings of layer names to keep (e.g. ConvNeXt ResNeXt)")
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    p.add_argument("--nchw", action="store_true", help="NCHW instead of channels_last")
    p.add_argument("--no-backward", action="store_true")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--out", default=os.path.join(REPO_ROOT, "benchmarks", "raw"))
    p.add_argument("--smoke", action="store_true", help="CPU + Triton interpreter, tiny shapes")
    p.add_argument("--policy", default="", help="the kernel policy of the kernels' calls, as its key string "
                                                "(cnnc.kernels.Policy; default: the default policy)")
    p.add_argument("--shard", default="1/1", metavar="I/N",
                   help="run only the I-th of N interleaved slices of the (batch, layer) list, so a run that "
                        "would outlast one device call can be split; --merge joins the JSON files")
    p.add_argument("--warm-only", action="store_true",
                   help="compile and check every variant, time nothing, write nothing: run several shards "
                        "of this in parallel first, so the timed run finds Triton's and Inductor's on-disk "
                        "caches full (tools/gpu_session.sh does)")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="no measuring: join the JSON files of shards of one run into one table")
    args = p.parse_args(argv)
    try:
        args.shard_index, args.shard_count = (int(v) for v in args.shard.split("/"))
        assert 1 <= args.shard_index <= args.shard_count
    except (ValueError, AssertionError):
        p.error(f"--shard: expected I/N with 1 <= I <= N, got {args.shard!r}")
    args.dtype = getattr(torch, args.dtype)
    return args


def write_reports(env, copy_gbs, rows, args, md_dirs):
    table = markdown(env, rows, copy_gbs, args)
    write_table(table, "kernels", env, md_dirs)
    return table


def merge(args):
    reports = [json.load(open(path)) for path in args.merge]
    first = reports[0]
    rows = [row for rep in reports for row in rep["results"]]
    order = {(l.name, b): i for i, (b, l) in enumerate((b, l) for b in (64, 1) for l in LAYERS)}
    rows.sort(key=lambda r: order.get((r["layer"], r["batch"]), len(order)))
    args.dtype = getattr(torch, first["dtype"].replace("torch.", ""))
    args.nchw, args.smoke = not first["channels_last"], first["smoke"]
    copy_gbs = statistics.median(rep["copy_gbs"] for rep in reports)
    env = first["environment"]
    table = write_reports(env, copy_gbs, rows, args, [args.out] + ([] if args.smoke else [os.path.join(REPO_ROOT, "benchmarks")]))
    print(table)
    return rows


def main(argv=None):
    args = parse_args(argv)
    if args.merge:
        return merge(args)
    if args.smoke:
        # The interpreter must be chosen before kernels (and its triton.jit) is imported.
        os.environ.setdefault("TRITON_INTERPRET", "1")
        args.device, layers, batches = "cpu", SMOKE_LAYERS, [1]
    else:
        if not torch.cuda.is_available():
            sys.exit("bench_kernels: no CUDA device; use --smoke to check the harness on CPU")
        args.device, batches = "cuda", args.batch
        layers = [l for l in LAYERS if args.layers is None or any(s.lower() in l.name.lower() for s in args.layers)]
    sys.path.insert(0, REPO_ROOT)
    from cnnc.kernels import Policy

    try:
        args.policy = Policy.parse(args.policy)
    except ValueError as e:
        sys.exit(f"bench_kernels: --policy: {e}")
    work = [(b, l) for b in batches for l in layers][args.shard_index - 1::args.shard_count]

    if args.warm_only:
        for batch, layer in work:
            bench_layer(layer, batch, args, warm_timer, 1.0)
            print(f"warmed {layer.name} N={batch}", flush=True)
        return []
    timer = make_timer(args.device)
    copy_gbs = copy_bandwidth_gbs(args.device, timer, 2**20 if args.smoke else 2**30)
    print(f"copy bandwidth: {copy_gbs:.0f} GB/s", flush=True)
    env = environment(args.device)
    os.makedirs(args.out, exist_ok=True)
    stamp = env["date"].replace(":", "").replace("-", "")
    suffix = "" if args.shard_count == 1 else f"_shard{args.shard_index}of{args.shard_count}"
    json_path = os.path.join(args.out, f"bench_kernels_{stamp}{suffix}.json")
    rows = []
    for batch, layer in work:
        row = bench_layer(layer, batch, args, timer, copy_gbs)
        rows.append(row)
        for mode in ("forward", "forward_backward"):
            if mode in row:
                s = row[mode]
                print(f"{layer.name:<34} N={batch:<3} {mode:<16} "
                      + " ".join(f"{k}={v:.3f}" for k, v in s["ms"].items())
                      + f" ms | kernels {s['kernels_gbs']:.0f} GB/s ({100 * s['kernels_frac_copy_bw']:.0f}% copy)",
                      flush=True)
        # rewritten after every layer: a run cut off by a time limit keeps what it measured
        with open(json_path, "w") as f:
            json.dump(dict(environment=env, copy_gbs=copy_gbs, smoke=args.smoke, shard=args.shard,
                           kernel_policy=args.policy.key,
                           dtype=str(args.dtype), channels_last=not args.nchw, results=rows), f, indent=1)

    md_dirs = [args.out] if args.smoke or args.shard_count > 1 else [args.out, os.path.join(REPO_ROOT, "benchmarks")]
    print(write_reports(env, copy_gbs, rows, args, md_dirs))
    return rows


if __name__ == "__main__":
    main()
