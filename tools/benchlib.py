"""What the benchmark scripts (bench_kernels.py, bench_models.py) and the reference-equivalence
tests share: the timer, the environment record, where a run's markdown table goes, and the
re-randomized normalization layers that make BatchNorm folding matter."""

import datetime
import os
import platform
import statistics
import time

import torch


def make_timer(device, warmup_ms=25, rep_ms=100):
    """fn -> median milliseconds: triton.testing.do_bench (CUDA events) on a GPU; on the CPU
    (the scripts' --smoke mode, a check of the harness, not of speed) the wall clock."""
    if device == "cuda":
        import triton.testing

        return lambda fn: triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median")

    def cpu_median_ms(fn, reps=3):
        fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    return cpu_median_ms


def capture_cuda_graph(fn, calls: int = 1):
    """A CUDA graph of `calls` calls of `fn`, after three warm-up calls on a side stream (the
    capture recipe of torch.cuda.graphs); raises where the call cannot be captured."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    return graph


def cuda_graph_ms(fn, timer):
    """Device time of `fn` alone: `timer` (make_timer) of the replay of a CUDA graph that
    captured one call, so no host work (Python, dispatch, launch) is in it; None where the
    call cannot be captured."""
    try:
        return timer(capture_cuda_graph(fn).replay)
    except Exception as e:  # noqa: BLE001 - a capture failure is a missing figure, not a crash
        print(f"cuda_graph_ms: not captured ({type(e).__name__}: {e})", flush=True)
        return None


def environment(device) -> dict:
    """Date, versions and device name, recorded with every result."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:  # pragma: no cover - triton is a dependency
        triton_version = None
    on_gpu = device == "cuda"
    return dict(date=datetime.datetime.now().isoformat(timespec="seconds"), torch=torch.__version__,
                triton=triton_version, cuda=torch.version.cuda, python=platform.python_version(),
                device=torch.cuda.get_device_name() if on_gpu else f"cpu ({platform.processor() or 'unknown'})",
                cudnn=torch.backends.cudnn.version() if on_gpu else None)


def write_table(table: str, prefix: str, env: dict, dirs) -> None:
    """`<dir>/<prefix>_<date>_<device>.md` in each of `dirs`."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in env["device"]).strip("-").lower()
    for d in dirs:
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{prefix}_{env['date'][:10]}_{slug}.md"), "w") as f:
            f.write(table + "\n")


def randomize_normalization(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters (and ConvNeXt layer scales), so a
    folded or mis-assigned one shows in the output: mean and bias in [-0.5, 0.5), variance in
    [0.5, 2), weight and layer scale in [0.5, 1.5). Returns the model in eval mode."""
    gen = torch.Generator().manual_seed(seed)

    def uniform(t, low, high):
        t.copy_(torch.rand(t.shape, generator=gen) * (high - low) + low)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                uniform(m.running_mean, -0.5, 0.5)
                uniform(m.running_var, 0.5, 2.0)
                uniform(m.weight, 0.5, 1.5)
                uniform(m.bias, -0.5, 0.5)
            scale = getattr(m, "layer_scale", None)
            if isinstance(scale, torch.nn.Parameter):
                uniform(scale, 0.5, 1.5)
    return model.eval()
