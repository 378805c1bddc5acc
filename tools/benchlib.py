"""What the benchmark scripts (bench_kernels.py, bench_models.py) share: the timer, the
environment record, and where a run's markdown table goes."""

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
