"""Where kernels run, and the small helpers every launcher shares.

The Triton kernels run natively on CUDA tensors, and on CPU tensors under Triton's
interpreter when TRITON_INTERPRET=1 was set *before* `kernels` was imported (`triton.jit`
decides at decoration time whether it builds a compiled or an interpreted function, so
flipping the variable later has no effect). CNNC_KERNELS_CPU=torch, read at every call,
sends CPU tensors to the torch path all the same.
"""

import contextlib
import os

import torch

try:  # triton is optional: without it every call takes the torch path
    import triton  # noqa: F401
    from triton.runtime.autotuner import Autotuner

    HAS_TRITON = True
except ImportError:  # pragma: no cover - triton is installed in CI
    HAS_TRITON = False

# Read once, at import, for the reason in the module docstring.
INTERPRET = HAS_TRITON and os.environ.get("TRITON_INTERPRET", "0") == "1"

# CNNC_KERNELS_AUTOTUNE=0 (read at import, like the configs it shapes) keeps only the first config
# of each autotune space: one compile per specialization instead of one per config. For test runs
# that compile hundreds of specializations (the native property tests); timings want it on.
AUTOTUNE = os.environ.get("CNNC_KERNELS_AUTOTUNE", "1") != "0"


def tuning_space(configs: list) -> list:
    """An autotune space, or its first config alone when autotuning is off (see AUTOTUNE)."""
    return list(configs) if AUTOTUNE else list(configs[:1])


# dtypes the Triton kernels accept; accumulation is fp32 (fp64 for fp64 inputs).
TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

ACTIVATIONS = (None, "relu", "relu6", "silu", "gelu", "hardswish", "sigmoid")


def triton_can_run_on(device: torch.device) -> bool:
    """True when a Triton kernel can run on tensors of `device` in this process."""
    if not HAS_TRITON:
        return False
    if device.type == "cuda":
        return not INTERPRET
    if device.type == "cpu":
        # CNNC_KERNELS_CPU=torch keeps CPU calls on the torch path even under the interpreter
        # (the interpreter is for testing the kernels, far too slow for whole models).
        return INTERPRET and os.environ.get("CNNC_KERNELS_CPU", "triton") != "torch"
    return False


def output_hw(h, w, kernel, stride, padding, dilation) -> tuple[int, int]:
    """Output height and width of a convolution; kernel, stride, padding, dilation are (h, w) pairs."""
    (KH, KW), (SH, SW), (PH, PW), (DH, DW) = kernel, stride, padding, dilation
    return ((h + 2 * PH - DH * (KH - 1) - 1) // SH + 1,
            (w + 2 * PW - DW * (KW - 1) - 1) // SW + 1)


def accumulator_dtype(dtype: torch.dtype) -> torch.dtype:
    """What the kernels and their eager twins accumulate in: fp64 for fp64 inputs, else fp32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def output_memory_format(x: torch.Tensor) -> torch.memory_format:
    """Outputs keep the input's layout: channels_last in, channels_last out."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


# ---------------------------------------------------------------------------
# Output poisoning (a testing hook): when on, every buffer a launcher allocates
# is filled with NaN first, so an element the kernel forgot to write fails the
# comparison instead of passing by luck with whatever the allocator returned.
# ---------------------------------------------------------------------------
_POISON_OUTPUTS = False


@contextlib.contextmanager
def poisoned_outputs(enabled: bool = True):
    """Within this block, kernel output buffers start out as NaN."""
    global _POISON_OUTPUTS
    previous, _POISON_OUTPUTS = _POISON_OUTPUTS, enabled
    try:
        yield
    finally:
        _POISON_OUTPUTS = previous


def empty_output(shape, dtype, device, memory_format=torch.contiguous_format) -> torch.Tensor:
    out = torch.empty(shape, dtype=dtype, device=device, memory_format=memory_format)
    if _POISON_OUTPUTS:
        out.fill_(float("nan"))
    return out


def next_power_of_2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def cdiv(a: int, b: int) -> int:
    """ceil(a / b) for the launchers' grids. Not `triton.cdiv`: that one is a `triton.jit`
    function, and calling it from Python costs a few microseconds per call (18 calls per
    depthwise training step: a quarter of the launchers' own host time, measured on CPU)."""
    return -(-a // b)



# ---------------------------------------------------------------------------
# Launching an autotuned kernel
# ---------------------------------------------------------------------------
# CNNC_KERNELS_REMEMBER=0 (read at import; tools flip the attribute) sends every launch through
# `Autotuner.run`, the route before `launch` existed: tools/ab_kernels.py and host_overhead.py
# time both.
REMEMBER_CONFIGS = os.environ.get("CNNC_KERNELS_REMEMBER", "1") != "0"


def launch(kernel, grid, key, *args, **kwargs):
    """`kernel[grid](*args, **kwargs)` for a `triton.autotune`d kernel; returns the Config that
    ran. `grid(config.kwargs)` is the launch grid; `key` is hashable and decides, like the
    autotuner's own key, which tuned config a launch takes: the launcher passes the values
    of the kernel's autotune key and x's dtype (finer or coarser keys change speed, never the
    result: a config only picks tile sizes).

    The first launch for a key goes through the autotuner, which tunes or finds its cached
    choice; the choice is then remembered under `key`, and later launches call the JIT
    function with it directly. What is skipped is `Autotuner.run`'s per-call work: it zips
    every argument into dicts and scans the argument-name list for each of them to rebuild
    its key (about 50 arguments here). `tools/host_overhead.py` measures both routes.

    A remembered config is dropped when it is no longer in `kernel.configs` (tests swap the
    configs). A stand-in for a kernel (tests, `tools/compile_kernels.py`) is launched as
    `kernel[grid](...)`; its `best_config`, if it has one, is returned. With
    REMEMBER_CONFIGS off every launch goes through the autotuner (for comparisons)."""
    if not isinstance(kernel, Autotuner):
        kernel[grid](*args, **kwargs)
        return getattr(kernel, "best_config", None)
    chosen = kernel.__dict__.setdefault("_cnnc_chosen", {})
    hit = chosen.get(key) if REMEMBER_CONFIGS else None
    if hit is not None and any(c is hit[0] for c in kernel.configs):
        config, meta = hit
        kernel.best_config = config
        kernel.fn.run(*args, grid=grid(config.kwargs), warmup=False, **kwargs, **meta)
        return config
    kernel[grid](*args, **kwargs)
    config = kernel.best_config
    if config.pre_hook is None:  # (none of cnnc's configs has one; a hook would need the slow route)
        chosen[key] = (config, config.all_kwargs())
    return config
