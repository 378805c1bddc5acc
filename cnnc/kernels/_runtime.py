"""Where kernels run, and the small helpers every launcher shares.

The Triton kernels run natively on CUDA tensors, and on CPU tensors under Triton's
interpreter when TRITON_INTERPRET=1 was set *before* `kernels` was imported (`triton.jit`
decides at decoration time whether it builds a compiled or an interpreted function, so
flipping the variable later has no effect). A policy with interpret_cpu=false
(`policy.Policy`) sends CPU tensors to the torch path all the same.
"""

import contextlib
import inspect
import operator
import os

import torch

from .dispatch import output_hw  # noqa: F401 (the launchers import it from here)

try:  # triton is optional: without it every call takes the torch path
    import triton
    import triton.language as tl
    from triton.runtime.autotuner import Autotuner

    HAS_TRITON = True
except ImportError:  # pragma: no cover - triton is installed in CI
    HAS_TRITON = False

# Read once, at import, for the reason in the module docstring.
INTERPRET = HAS_TRITON and os.environ.get("TRITON_INTERPRET", "0") == "1"

# dtypes the Triton kernels accept; accumulation is fp32 (fp64 for fp64 inputs).
TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

ACTIVATIONS = (None, "relu", "relu6", "silu", "gelu", "hardswish", "sigmoid")


def triton_can_run_on(device: torch.device, policy) -> bool:
    """True when a Triton kernel can run on tensors of `device` in this process under `policy`."""
    if not HAS_TRITON:
        return False
    if device.type == "cuda":
        return not INTERPRET
    if device.type == "cpu":
        # interpret_cpu=false keeps CPU calls on the torch path even under the interpreter
        # (the interpreter is for testing the kernels, far too slow for whole models).
        return INTERPRET and policy.interpret_cpu
    return False


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
# Autotuning and launching
# ---------------------------------------------------------------------------
def autotune(configs, key, **kwargs):
    """`triton.autotune` whose key is `key` (run-time arguments, e.g. the sizes) followed by
    every constexpr parameter of the kernel that no config sets: everything that changes the
    compiled kernel, so that two variants of a kernel (another activation, epilogue, path,
    layout) never share a tuned config. Among them is TUNING, which every autotuned kernel
    declares and never reads: the policy's kernel choices and the device (`tuning_tag`), so
    that tuned configs are per policy and per device model. `kwargs` go to `triton.autotune`."""
    meta = {name for config in configs for name in config.kwargs}

    def decorate(fn):
        base = fn
        while not inspect.isfunction(base):
            base = base.fn
        constexprs = [name for name, p in inspect.signature(base).parameters.items()
                      if p.annotation is tl.constexpr and name not in meta]
        assert "TUNING" in constexprs, f"{base.__name__}: an autotuned kernel takes TUNING (see `tuning_tag`)"
        return triton.autotune(configs=configs, key=list(key) + constexprs, **kwargs)(fn)

    return decorate


_TUNING_TAGS = {}


def tuning_tag(policy, device: torch.device) -> str:
    """The TUNING argument of a launch on `device` under `policy`: the device model (CUDA's device
    name; "cpu-interpreter" under the interpreter) and the policy's kernel choices
    (`Policy.choices_key`), e.g. "NVIDIA H200 dw_forward=rows". Only an autotune key: the
    kernels never read it. Cached: launchers ask on every call."""
    tag = _TUNING_TAGS.get((policy.choices_key, device))
    if tag is None:
        if device.type == "cuda":
            where = torch.cuda.get_device_name(device)
        else:
            where = f"{device.type}-interpreter" if INTERPRET else device.type
        tag = f"{where} {policy.choices_key}" if policy.choices_key else where
        _TUNING_TAGS[(policy.choices_key, device)] = tag
    return tag


def _launch_key_of(kernel, args, kwargs):
    """A function of a launch's (args, kwargs) giving the values of `kernel`'s autotune key and
    the dtypes of its tensor arguments: what `Autotuner.run` keys its own cache by, read with
    two itemgetters instead of the dicts it builds from every argument. Made on a kernel's first
    launch (the launchers pass the same arguments positionally, the same by name, every time)."""
    position = {name: i for i, name in enumerate(kernel.arg_names)}
    positional = [position[name] for name in kernel.keys if position[name] < len(args)]
    named = [name for name in kernel.keys if position[name] >= len(args)]
    tensors = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]

    def getter(items):
        return operator.itemgetter(*items) if len(items) > 1 else (lambda x: tuple(x[i] for i in items))

    by_position, by_name, of_tensors = getter(positional), getter(named), getter(tensors)

    def key_of(args, kwargs):
        return by_position(args), by_name(kwargs), tuple([t.dtype for t in of_tensors(args)])

    kernel.__dict__["_cnnc_key_of"] = (len(args), key_of)
    return key_of


def untimed_config(kernel, args, kwargs):
    """The config a launch takes where nothing is timed (policy autotune=false): the first of the
    kernel's space after its own `early_config_prune`, which puts its preference first."""
    configs = kernel.configs
    if kernel.early_config_prune:
        configs = kernel.early_config_prune(configs, dict(zip(kernel.arg_names, args)), **kwargs)
    return configs[0]


# Tensors of these types, outside any dispatch mode, are real: a launch runs the kernel. Anything
# else (FakeTensor, FunctionalTensor, a tracer's) is torch.compile or make_fx tracing a
# `torch.library.triton_op` (conv2d.py): the launch is recorded with `wrap_triton`.
_REAL_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


def traced(tensor) -> bool:
    """True when a launch with `tensor` among its arguments is being traced, not run."""
    return type(tensor) not in _REAL_TENSOR_TYPES or torch._C._len_torch_dispatch_stack() > 0


def relayout(weight, tag, make):
    """`make(weight)`, a filter in the layout a kernel reads (the depthwise tap-major copy, the
    grouped permute), remembered on `weight` while it is unchanged: same version counter (in-place
    updates: optimizer steps, load_state_dict), storage, shape, strides, dtype and device, and the
    same `tag` (e.g. the policy's layout). The entry keeps the weight's storage alive, so a new
    storage (`weight.data = ...`, which leaves the version alone) cannot take its address. Made
    under no_grad: the kernels compute the filter's gradient themselves. Traced calls make it
    every time: under torch.compile it is an op on the weight, which freezing folds.
    Only a module's parameters (nn.Parameter) are remembered: an edit through `.data` leaves the
    version counter alone and cannot be seen, so plain tensors (a functional caller's, or
    gradcheck's, which perturbs through `.data`) are re-laid out at every call. A module whose
    weights are edited through `.data` must call `refold()` (fused layers) or assign the weight
    anew (`layer.weight = nn.Parameter(...)`, a new storage)."""
    if traced(weight):
        return make(weight)
    if not isinstance(weight, torch.nn.Parameter):  # a plain tensor: made every call (see below)
        with torch.no_grad():
            return make(weight)
    key = (tag, weight._version, weight.data_ptr(), weight.shape, weight.stride(), weight.dtype, weight.device)
    known = weight.__dict__.get("_cnnc_relayout")
    if known is not None and known[0] == key:
        return known[2]
    with torch.no_grad():
        value = make(weight)
    weight.__dict__["_cnnc_relayout"] = (key, weight.detach(), value)
    return value


def launch(kernel, grid, policy, *args, **kwargs):
    """`kernel[grid](*args, **kwargs, TUNING=...)` for a `triton.autotune`d kernel under `policy`;
    returns the Config that ran (None when traced). `grid(config.kwargs)` is the launch grid;
    args[0] is a tensor on the launch's device.

    Traced (`traced`: a `torch.library.triton_op` body under torch.compile or make_fx), the launch
    is recorded as `torch.library.wrap_triton(kernel)[grid](...)`, a node of the graph that
    Inductor compiles, autotunes and launches from its own generated code; TUNING is then 0
    (Inductor keeps its own tuning per kernel, and string constexprs trip torch's analysis of the
    kernel: see epilogue.ACT_CODES).

    Each config chosen is remembered under the launch's key: the values of the kernel's
    autotune key (`autotune`: every constexpr, TUNING among them), its tensors' dtypes, the
    policy and the device (type and index). The first launch for a key goes through the
    autotuner, which tunes or finds its cached choice (with autotune=false in the policy, the
    first config of the pruned space instead, nothing timed: `untimed_config`); later launches
    call the JIT function with the remembered config directly, skipping `Autotuner.run`'s
    per-call work (it zips every argument into dicts to rebuild its key, about 50 arguments
    here): host time per forward 47.6 -> 28.7 us on the CPU with Triton's run stubbed
    (tools/host_overhead.py, 2026-11-23), so there is no switch for it.

    A remembered config is dropped when it is no longer in `kernel.configs` (tests swap the
    configs). A stand-in for a kernel (tests, `tools/compile_kernels.py`) is launched as
    `kernel[grid](...)`; its `best_config`, if it has one, is returned."""
    if traced(args[0]):
        from torch.library import wrap_triton

        wrap_triton(kernel)[grid](*args, **kwargs, TUNING=0)
        return None
    device = args[0].device
    kwargs["TUNING"] = tuning_tag(policy, device)
    if not isinstance(kernel, Autotuner):
        kernel[grid](*args, **kwargs)
        return getattr(kernel, "best_config", None)
    known = kernel.__dict__.get("_cnnc_key_of")
    key_of = known[1] if known is not None and known[0] == len(args) else _launch_key_of(kernel, args, kwargs)
    key = (key_of(args, kwargs), policy.key, device)
    chosen = kernel.__dict__.setdefault("_cnnc_chosen", {})
    hit = chosen.get(key)
    if hit is not None and any(c is hit[0] for c in kernel.configs):
        config, meta = hit
    elif policy.autotune:
        kernel[grid](*args, **kwargs)
        config = kernel.best_config
        if config.pre_hook is None:  # (none of cnnc's configs has one; a hook would need the slow route)
            chosen[key] = (config, config.all_kwargs())
        return config
    else:
        config = untimed_config(kernel, args, kwargs)
        meta = config.all_kwargs()
        chosen[key] = (config, meta)
    kernel.best_config = config
    kernel.fn.run(*args, grid=grid(config.kwargs), warmup=False, **kwargs, **meta)
    return config


class Prepared:
    """One launch made ready again: a kernel with a remembered config, its grid, scalar arguments
    and constexprs; `prepared(*tensors)` launches it on new tensors of the same shapes, strides,
    dtypes and device (the caller's key says so), without rebuilding the ~40 arguments or looking
    up the config (host time per forward: tools/host_overhead.py). Invalid, and then rebuilt by
    the caller, once the config is no longer in `kernel.configs` (tests swap the configs)."""

    __slots__ = ("kernel", "configs", "config", "run", "grid", "scalars", "kwargs")

    def __init__(self, kernel, config, grid, scalars, kwargs):
        self.kernel, self.configs, self.config, self.run = kernel, kernel.configs, config, kernel.fn.run
        self.grid, self.scalars = grid(config.kwargs), scalars
        self.kwargs = dict(kwargs, **config.all_kwargs(), warmup=False)

    def valid(self) -> bool:
        return self.kernel.configs is self.configs  # (the list object: tests swap it whole)

    def __call__(self, *tensors):
        self.run(*tensors, *self.scalars, grid=self.grid, **self.kwargs)


def launch_prepared(prepared: dict, key, kernel, policy, tensors, build):
    """`launch(kernel, grid, policy, *tensors, *scalars, **kwargs)`, with (grid, scalars, kwargs) =
    build(), the first time `key` is seen (or after its Prepared went invalid), and the `Prepared`
    in `prepared[key]` after that, once the config is remembered. `key` must determine what build()
    returns (the launcher's geometry, strides, dtypes, device, policy). Traced launches and
    stand-ins for kernels are never prepared."""
    hit = prepared.get(key)
    if hit is not None and hit.valid():
        hit(*tensors)
        return hit.config
    grid, scalars, kwargs = build()
    config = launch(kernel, grid, policy, *tensors, *scalars, **kwargs)
    if config is not None and isinstance(kernel, Autotuner) and config.pre_hook is None and not traced(tensors[0]):
        if len(prepared) >= 4096:
            prepared.clear()
        prepared[key] = Prepared(kernel, config, grid, scalars, dict(kwargs, TUNING=tuning_tag(policy, tensors[0].device)))
    return config
