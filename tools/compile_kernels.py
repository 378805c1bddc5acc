"""Compile every Triton kernel of `kernels` for a GPU target without a GPU (default sm_90, the H100).

The interpreter (TRITON_INTERPRET=1), which CI uses to test the kernels, runs them as numpy code:
it never lowers them, so a kernel can pass every interpreter test and still fail to compile for
a real GPU (a type the compiler rejects, a shape it cannot lay out, a constexpr branch that only
the interpreter tolerates). This script drives the real launchers on CPU tensors with each
kernel object replaced by a recorder (nothing runs), then compiles each recorded launch, with
every config of the kernel's autotune space, through Triton's full pipeline (TTIR -> TTGIR ->
LLVM IR -> PTX -> cubin with the ptxas that ships with Triton) for the target. It prints one line
per compile (with its shared memory) and exits 1 if any compile fails.

    python tools/compile_kernels.py [--arch 90] [--quick] [--dtypes float16 ...]   # --quick: see quick_configs
    python tools/compile_kernels.py --regs --loops --layout nhwc --kernels depthwise_weight_grad_kernel

--regs adds registers and spills per thread (ptxas -v); --loops the innermost loop's SASS
instruction mix per trip (nvdisasm): floating-point math, global loads, shared-memory or
cross-thread traffic, divisions (`innermost_loop`).

Run with TRITON_INTERPRET unset: under the interpreter the autotune spaces shrink to one config
and `triton.jit` builds interpreted functions.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback

import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

UNSUPPORTED_TRITON = 3  # exit status when this Triton's internals differ from what the script uses

POINTER_TYPES = {torch.float16: "*fp16", torch.bfloat16: "*bf16", torch.float32: "*fp32", torch.float64: "*fp64"}


class Recorder:
    """Stands in for an autotuned Triton kernel: `kernel[grid](*args, **kwargs)` is recorded."""

    def __init__(self, autotuner, calls):
        self.autotuner, self.calls = autotuner, calls
        self.configs = autotuner.configs
        self.best_config = autotuner.configs[0]  # read by launchers after a launch

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.calls.append((self.autotuner, args, kwargs))
        return launch


def specialize(fn, backend, args, kwargs):
    """(ASTSource arguments, options) for one launch, made the way `JITFunction.run` makes them:
    the same binder, so ints equal to 1 become constants and pointers and ints divisible by 16
    carry that fact (which decides, e.g., whether loads are vectorized)."""
    from triton.runtime.jit import create_function_from_signature

    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound_args, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound_args, specialization, options)
    return (signature, constexprs, attrs), options


def load_widths(ptx: str) -> str:
    """How wide the kernel's global loads and stores are, from its PTX: vector accesses (v4,
    v2) move 16 or 8 bytes per instruction and are what a bandwidth-bound kernel wants; scalar
    ones are not. Loads pipelined into shared memory (cp.async, for tl.dot operands) are
    counted apart."""
    counts: dict = {}
    for vec, bits in re.findall(r"ld\.global(?:\.[\w:]+)*?(\.v[248])?\.(?:b|u|f|s)(\d+)", ptx):
        width = int(bits) * (int(vec[2:]) if vec else 1) // 8
        counts[width] = counts.get(width, 0) + 1
    copies: dict = {}
    for size in re.findall(r"cp\.async\.c[ag](?:\.[\w:]+)*\s+\[[^\]]+\],\s*\[[^\]]+\],\s*(0x[0-9a-f]+|\d+)", ptx):
        copies[int(size, 0)] = copies.get(int(size, 0), 0) + 1

    def fmt(c):
        return ", ".join(f"{n}x{w}B" for w, n in sorted(c.items(), reverse=True)) or "none"

    stores: dict = {}
    for vec, bits in re.findall(r"st\.global(?:\.[\w:]+)*?(\.v[248])?\.(?:b|u|f|s)(\d+)", ptx):
        width = int(bits) * (int(vec[2:]) if vec else 1) // 8
        stores[width] = stores.get(width, 0) + 1
    return (f"global loads {fmt(counts)}" + (f"; cp.async {fmt(copies)}" if copies else "")
            + f"; stores {fmt(stores)}")


def run_nvidia_tool(tool: str, data, suffix: str, *args: str) -> subprocess.CompletedProcess:
    """Run one of the NVIDIA tools that ship with Triton (ptxas, nvdisasm) on `data` (str or
    bytes) written to a temporary file: `tool *args FILE`."""
    import triton

    path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", tool)
    with tempfile.NamedTemporaryFile("wb" if isinstance(data, bytes) else "w", suffix=suffix) as f:
        f.write(data)
        f.flush()
        return subprocess.run([path, *args, f.name], capture_output=True, text=True)


def ptxas_report(ptx: str, arch: int) -> str:
    """Registers and spills per thread, from `ptxas -v` (the ptxas that ships with Triton)."""
    run = run_nvidia_tool("ptxas", ptx, ".ptx", f"-arch=sm_{arch}a", "-v", "-o", os.devnull)
    info = run.stderr + run.stdout
    regs = re.search(r"Used (\d+) registers", info)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", info)
    return (f"{regs.group(1) if regs else '?'} regs"
            + (f", spills {spill.group(1)}/{spill.group(2)} B st/ld" if spill and spill.group(1) != "0" else ""))


def sass_of(cubin: bytes) -> str:
    """The SASS of a cubin (nvdisasm, shipped with Triton)."""
    run = run_nvidia_tool("nvdisasm", cubin, ".cubin", "-c")
    run.check_returncode()
    return run.stdout


LOOP_CLASSES = {  # SASS opcode prefixes counted per loop
    "fma": ("FFMA", "HFMA2", "DFMA", "HMMA", "FMUL", "FADD"),
    "ldg": ("LDG",),
    "shared/sync": ("LDS", "STS", "BAR", "SHFL"),
    "div": ("MUFU.RCP",),  # a division by a run-time value (integer or float) starts with a reciprocal
}


def innermost_loop(sass: str) -> str:
    """The instruction mix of the kernel's innermost loop (the shortest span from a label back
    to a branch that jumps up to it, among those that load from global memory): how many
    instructions one trip issues per thread, and how many of them are floating-point math,
    global loads, shared-memory or cross-thread traffic, and divisions by run-time values.
    A memory-bound kernel wants few instructions per loaded byte; a reduction inside the loop
    shows as shared/sync, index arithmetic on flattened indices as div."""
    labels, body = {}, []
    for line in sass.splitlines():
        label = re.match(r"^(\.L_x_\d+):", line.strip())
        if label:
            labels[label.group(1)] = len(body)
            continue
        ins = re.match(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
        if ins:
            body.append(ins.group(2).strip())
    loops = []
    for i, text in enumerate(body):
        jump = re.search(r"\bBRA\b.*`\((\.L_x_\d+)\)", text)
        if jump and labels.get(jump.group(1), i) < i:  # (not the `BRA` to itself after EXIT)
            loops.append(body[labels[jump.group(1)]:i + 1])
    loops = [loop for loop in loops if any(" LDG" in f" {t}" for t in loop)]
    if not loops:
        return "no loop with a global load"
    loop = min(loops, key=len)
    ops = [re.sub(r"^@!?U?P\w+\s+", "", t).split()[0] for t in loop]
    mix = {name: sum(op.startswith(prefixes) for op in ops) for name, prefixes in LOOP_CLASSES.items()}
    return f"innermost loop {len(loop)} instructions (" + ", ".join(f"{n} {k}" for k, n in mix.items()) + ")"


def record_launches(dtypes, channels=32, layouts=(True, False)):
    """Every kernel launch the launchers make for a spread of cases (no kernel runs);
    `channels` per depthwise layer; `layouts`: channels_last or not."""
    import cnnc.kernels.depthwise as dw
    import cnnc.kernels.grouped as gr

    calls = []
    names = ["depthwise_conv2d_kernel", "depthwise_epilogue_grad_kernel", "depthwise_input_grad_kernel",
             "depthwise_weight_grad_kernel"]
    for name in names:
        setattr(dw, name, Recorder(getattr(dw, name), calls))
    gr.grouped_conv2d_kernel = Recorder(gr.grouped_conv2d_kernel, calls)

    def tensors(n, c_in, c_out, hw, k, groups, dtype, channels_last):
        x = torch.randn(n, c_in, hw, hw, dtype=dtype)
        w = torch.randn(c_out, c_in // groups, k, k, dtype=dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, w

    for dtype in dtypes:
        for channels_last in layouts:
            for k, stride, mult, act in ((3, 1, 1, "relu"), (7, 1, 1, "gelu"), (5, 2, 2, "silu"), (3, 2, 1, "hardswish")):
                # 32 channels by default: like the real layers (all but Xception's 728 are multiples
                # of 16), so the launch specializes strides as divisible by 16, as it will on the GPU
                x, w = tensors(2, channels, channels * mult, 9, k, channels, dtype, channels_last)
                scale = torch.rand(channels * mult)
                shift = torch.rand(channels * mult)
                geo = ((stride, stride), (k // 2, k // 2), (1, 1))
                y = dw.depthwise_conv2d(x, w, *geo, scale, shift, None, act)
                residual = torch.randn_like(y) if stride == 1 else None
                dw.depthwise_conv2d(x, w, *geo, scale, shift, residual, act)
                dw.depthwise_epilogue_grad(x, w, *geo, scale, shift, residual, torch.randn_like(y), act,
                                           residual is not None, True, True)
                dw.depthwise_conv2d_input_grad(y, w, list(x.shape), *geo,
                                               torch.channels_last if channels_last else torch.contiguous_format)
                dw.depthwise_conv2d_weight_grad(x, y, tuple(w.shape), *geo)  # every tile compiled below
            # grouped: ResNeXt's 4 and 8 channels per group (packed), 32 (one group per tile), fp64 direct
            for cin_g, cout_g, groups in ((4, 4, 8), (8, 8, 4), (32, 32, 2), (4, 32, 2)):
                x, w = tensors(2, cin_g * groups, cout_g * groups, 9, 3, groups, dtype, channels_last)
                y = gr.grouped_conv2d(x, w, (1, 1), (1, 1), (1, 1), groups, torch.rand(cout_g * groups), None,
                                      None, "relu")
                gr.grouped_conv2d(x, w, (2, 2), (1, 1), (1, 1), groups, None, torch.rand(cout_g * groups),
                                  None, "silu")
    return calls


def quick_configs(configs):
    """The first config, and the first for each other value of a meta-parameter that changes
    the code's structure rather than a tile size (e.g. the weight gradient's TAP_BLOCK: 1 is
    one tap per program, more a tap axis in every tensor); tile sizes are named BLOCK_*."""
    seen, kept = set(), []
    for config in configs:
        shape = tuple(sorted((k, v) for k, v in config.kwargs.items() if not k.startswith("BLOCK_")))
        if shape not in seen:
            seen.add(shape)
            kept.append(config)
    return kept


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", type=int, default=90, help="CUDA compute capability x 10 (90: H100)")
    p.add_argument("--quick", action="store_true", help="the first autotune config of each launch only (`quick_configs`)")
    p.add_argument("--regs", action="store_true", help="also run ptxas -v: registers and spills per thread")
    p.add_argument("--loops", action="store_true",
                   help="also disassemble (nvdisasm) and print the innermost loop's instruction mix")
    p.add_argument("--layout", choices=["both", "nhwc", "nchw"], default="both")
    p.add_argument("--kernels", nargs="+", help="only these kernels (function names)")
    p.add_argument("--channels", type=int, default=32,
                   help="channels of the depthwise cases (728: Xception's, not a multiple of 16)")
    p.add_argument("--dtypes", nargs="+", default=["float16", "bfloat16", "float32", "float64"],
                   choices=["float16", "bfloat16", "float32", "float64"])
    args = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("compile_kernels: unset TRITON_INTERPRET (the interpreter never compiles)")
    sys.path.insert(0, REPO_ROOT)
    import triton
    try:  # Triton internals, as of 3.8; other versions may lay them out differently
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource, make_backend
        from triton.runtime.jit import create_function_from_signature  # noqa: F401 (used by specialize)
    except ImportError as e:
        print(f"compile_kernels: this Triton ({triton.__version__}) lacks an internal the script uses: {e}")
        return UNSUPPORTED_TRITON

    layouts = {"both": (True, False), "nhwc": (True,), "nchw": (False,)}[args.layout]
    calls = record_launches([getattr(torch, d) for d in args.dtypes], args.channels, layouts)
    target = GPUTarget("cuda", args.arch, 32)
    backend = make_backend(target)
    seen, failures, done = set(), 0, 0
    t0 = time.time()
    for autotuner, call_args, kwargs in calls:
        fn = autotuner.fn
        if args.kernels and fn.__name__ not in args.kernels:
            continue
        for config in quick_configs(autotuner.configs) if args.quick else autotuner.configs:
            launch = dict(kwargs, **config.kwargs, num_warps=config.num_warps, num_stages=config.num_stages)
            (signature, constexprs, attrs), options = specialize(fn, backend, call_args, launch)
            key = (fn.__name__, str(signature), str(constexprs), str(attrs), config.num_warps, config.num_stages)
            if key in seen:
                continue
            seen.add(key)
            named = {fn.arg_names[k[0]]: v for k, v in constexprs.items() if len(k) == 1}
            what = (f"{fn.__name__} {' '.join(f'{k}={v}' for k, v in sorted(named.items()) if k.isupper())} "
                    f"{next(t for t in signature.values() if t.startswith('*'))} warps={config.num_warps}")
            try:
                compiled = triton.compile(ASTSource(fn, signature, constexprs, attrs), target=target,
                                          options=options.__dict__)
                done += 1
                regs = f"{ptxas_report(compiled.asm['ptx'], args.arch)}, " if args.regs else ""
                if args.loops:
                    regs += f"{innermost_loop(sass_of(compiled.asm['cubin']))}, "
                print(f"ok   {what}: {regs}shared {compiled.metadata.shared} B, {load_widths(compiled.asm['ptx'])}",
                      flush=True)
            except Exception as e:  # report every failure, then fail
                failures += 1
                print(f"FAIL {what}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", flush=True)
                traceback.print_exc(limit=3)
    print(f"{done} compiled, {failures} failed, for sm_{args.arch}, in {time.time() - t0:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
