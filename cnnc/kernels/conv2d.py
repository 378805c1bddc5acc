"""`kernels.conv2d`: the one entry point generated code calls.

    y = act(conv2d(x, weight) * scale + shift + residual)

Stages, in order:
1. `conv2d` checks and normalizes the arguments (`_check_arguments`): every mistake is a
   ValueError/TypeError that names the argument, never a wrong result.
2. Outside any tracer it calls the operators' bodies directly (`_eager`). Traced, it calls an
   operator registered with `torch.library`: for CUDA tensors `cnnc_kernels::conv2d_triton`, a
   `triton_op` whose kernel launches torch.compile records (`wrap_triton`) and Inductor then
   launches from its own code; otherwise `cnnc_kernels::conv2d`, one opaque op (shapes from
   its fake implementation). Both are one op to `torch.export`.
3. The operator picks a backend (`kernel_for`): the depthwise or grouped Triton kernel,
   or the eager-torch fallback with identical semantics. Every choice that is still open
   (which loop, which filter layout, autotuning on or off) is the call's kernel policy
   (`policy.Policy`), which the operators carry as its key string.
4. Autograd (`_backward`) is registered on the operator; see its docstring for which
   gradient runs where.
"""

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from . import dispatch
from ._runtime import ACTIVATIONS, TRITON_DTYPES, output_hw, output_memory_format, triton_can_run_on
from ._runtime import empty_output
from .depthwise import _FORWARD_LAUNCHES as depthwise_forward_launches
from .depthwise import (depthwise_conv2d, depthwise_conv2d_input_grad, depthwise_conv2d_weight_grad,
                        depthwise_epilogue_grad, weight_operand)
from .epilogue import NEEDS_PREACTIVATION, TORCH_ACTIVATIONS, activation_grad, torch_epilogue
from .grouped import _LAUNCHES as grouped_launches
from .grouped import group_pack, grouped_conv2d, grouped_operand, uses_tensor_cores
from .policy import Policy, parsed, resolve

# Largest filter the unrolled kernels take (bigger ones fall back to torch), and the int32 limit of
# their offsets (all but the batch term): `dispatch.triton_kernel` checks both.
MAX_KERNEL_SIZE = dispatch.MAX_KERNEL_SIZE
MAX_TRITON_NUMEL = dispatch.MAX_TRITON_NUMEL
# dtype -> its name in dispatch tables and `dispatch.choose`
DTYPE_NAMES = {dtype: str(dtype).replace("torch.", "") for dtype in TRITON_DTYPES}

# Activations whose derivative is computed from the saved output y (see epilogue.py).
_GRAD_FROM_OUTPUT = ("relu", "relu6", "sigmoid")


# ---------------------------------------------------------------------------
# 1. Argument checking
# ---------------------------------------------------------------------------
def _pair(value, name):
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")


def _check_channel_vector(t, name, c_out, x):
    if t is None:
        return
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a Tensor or None, got {type(t).__name__}")
    if not t.dtype.is_floating_point:
        raise TypeError(f"{name}: expected a floating-point tensor, got {t.dtype}")
    if t.shape != (c_out,):
        raise ValueError(f"{name}: expected shape ({c_out},) (one value per output channel), "
                         f"got {tuple(t.shape)}")
    if t.device != x.device:
        raise ValueError(f"{name}: on {t.device}, but x is on {x.device}")


def _check_arguments(x, weight, stride, padding, dilation, groups, scale, shift, activation, residual):
    """Validate and normalize; returns (stride, padding, dilation) as pairs."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a Tensor, got {type(x).__name__}")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight: expected a Tensor, got {type(weight).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x: expected a 4-d (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"weight: expected a 4-d (C_out, C_in/groups, KH, KW) tensor, "
                         f"got shape {tuple(weight.shape)}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"x: expected a floating-point tensor, got {x.dtype}")
    if weight.dtype != x.dtype:
        raise TypeError(f"weight: dtype {weight.dtype} does not match x dtype {x.dtype}")
    if weight.device != x.device:
        raise ValueError(f"weight: on {weight.device}, but x is on {x.device}")
    stride = _pair(stride, "stride")
    padding = _pair(padding, "padding")
    dilation = _pair(dilation, "dilation")
    if min(stride) < 1:
        raise ValueError(f"stride: must be >= 1, got {stride}")
    if min(padding) < 0:
        raise ValueError(f"padding: must be >= 0, got {padding}")
    if min(dilation) < 1:
        raise ValueError(f"dilation: must be >= 1, got {dilation}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups: expected a positive int, got {groups!r}")
    N, C_in, H, W = x.shape
    C_out, cin_g, KH, KW = weight.shape
    if C_in % groups != 0:
        raise ValueError(f"groups: {groups} does not divide the {C_in} input channels")
    if C_out % groups != 0:
        raise ValueError(f"groups: {groups} does not divide the {C_out} output channels")
    if cin_g != C_in // groups:
        raise ValueError(f"weight: expected {C_in // groups} input channels per group "
                         f"(x has {C_in} channels, groups={groups}), got weight shape {tuple(weight.shape)}")
    OH, OW = output_hw(H, W, (KH, KW), stride, padding, dilation)
    if OH < 1 or OW < 1:
        raise ValueError(f"x: spatial size {H}x{W} is too small for a {KH}x{KW} kernel with "
                         f"padding={padding}, dilation={dilation} (output would be {OH}x{OW})")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: unknown activation {activation!r}; expected one of "
                         f"{', '.join(repr(a) for a in ACTIVATIONS)}")
    _check_channel_vector(scale, "scale", C_out, x)
    _check_channel_vector(shift, "shift", C_out, x)
    if residual is not None:
        if not isinstance(residual, torch.Tensor):
            raise TypeError(f"residual: expected a Tensor or None, got {type(residual).__name__}")
        if residual.shape != (N, C_out, OH, OW):
            raise ValueError(f"residual: expected the output shape {(N, C_out, OH, OW)}, "
                             f"got {tuple(residual.shape)}")
        if residual.dtype != x.dtype:
            raise TypeError(f"residual: dtype {residual.dtype} does not match x dtype {x.dtype}")
        if residual.device != x.device:
            raise ValueError(f"residual: on {residual.device}, but x is on {x.device}")
    return stride, padding, dilation


# ---------------------------------------------------------------------------
# 2. Public entry points
# ---------------------------------------------------------------------------
def conv2d(x, weight, *, stride=1, padding=0, dilation=1, groups=1, scale=None, shift=None,
           activation=None, residual=None, policy=None):
    """act(conv2d(x, weight) * scale + shift + residual), fused where a Triton kernel exists.

    x: (N, C_in, H, W), NCHW or channels_last; the output has the same memory format.
    weight: (C_out, C_in // groups, KH, KW), same dtype as x.
    scale, shift: optional (C_out,) float tensors (folded BatchNorm, or bias as `shift`).
    residual: optional tensor of the output's shape and x's dtype, added before `activation`.
    activation: None, "relu", "relu6", "silu", "gelu" (erf form), "hardswish", "sigmoid".
    The epilogue is computed in fp32 (fp64 for fp64) and rounded once to x's dtype.
    Differentiable in x, weight, scale, shift and residual.
    policy: the kernel policy (`policy.Policy`, or its key string), for the forward and the
    backward; None: `policy.default_policy()` at this call. It changes speed, never the result.
    """
    policy = resolve(policy)
    if not _eager(x, weight, scale, shift, residual):
        stride, padding, dilation = _check_arguments(
            x, weight, stride, padding, dilation, groups, scale, shift, activation, residual)
        args = (x, weight, list(stride), list(padding), list(dilation), groups, scale, shift,
                activation or "none", residual)
        # traced or in a mode: CUDA tensors take the triton_op, which torch.compile sees into
        op = torch.ops.cnnc_kernels.conv2d_triton if x.device.type == "cuda" else torch.ops.cnnc_kernels.conv2d
        return op(*args, policy.key)
    sig = _checked(x, weight, stride, padding, dilation, groups, scale, shift, activation, residual, policy)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or any(
            t is not None and t.requires_grad for t in (scale, shift, residual))):
        return _EagerConv2d.apply(x, weight, sig.stride, sig.padding, sig.dilation, groups, scale, shift,
                                  activation or "none", residual, policy)
    if sig.fast is not None:
        out = sig.fast(x, weight, scale, shift, residual)
        if out is not None:
            return out
    out = _conv2d_forward(x, weight, sig.stride, sig.padding, sig.dilation, groups, scale, shift, activation or "none",
                          residual, policy, kernel=sig.kernel, memo_key=sig.key)
    if sig.key is not None:
        sig.fast = _fast_forward(sig, x, weight, groups, out, policy)
    return out


class _Signature:
    """What `_check_arguments` and `kernel_for` found for one call signature (`_checked`), and,
    once a forward with it has run, `fast`: the same forward again with nothing looked up but the
    filter's cached re-layout (`_fast_forward`)."""

    __slots__ = ("stride", "padding", "dilation", "kernel", "key", "fast")

    def __init__(self, stride, padding, dilation, kernel, key):
        self.stride, self.padding, self.dilation, self.kernel, self.key = stride, padding, dilation, kernel, key
        self.fast = None


def _fast_forward(sig, x, weight, groups, out, policy):
    """For a no-grad eager forward whose launch is prepared (`_runtime.Prepared`, under the
    call's signature): (x, weight, scale, shift, residual) -> out, that allocates the output,
    takes the filter's re-layout (cached per weight version) and launches; None where there is
    nothing prepared (the torch path, a stand-in kernel), or once the prepared launch is stale
    (then `conv2d` takes the full path, which prepares it again)."""
    if sig.kernel == "depthwise":
        prepared = depthwise_forward_launches.get(sig.key)
        operand = lambda w: weight_operand(w, policy)[0]  # noqa: E731
    elif sig.kernel.startswith("grouped"):
        C_out, cin_g = weight.shape[:2]
        prepared = grouped_launches.get((group_pack(x.dtype, cin_g, C_out // groups), sig.key))
        operand = grouped_operand
    else:
        return None
    if prepared is None:
        return None
    shape, dtype, device, fmt = out.shape, out.dtype, out.device, output_memory_format(out)

    def fast(x, weight, scale, shift, residual):
        if not prepared.valid():
            return None
        y = empty_output(shape, dtype, device, fmt)
        prepared(x, operand(weight), y if scale is None else scale, y if shift is None else shift,
                 y if residual is None else residual, y)
        return y

    return fast


# What `_check_arguments` and `kernel_for` found, per call signature: everything they read (shapes,
# strides, dtypes, devices of the tensors, the other arguments, the policy). A model calls each layer
# with the same signature every time, so its checks run once (host time: see `_eager`).
_CHECKED: dict = {}
_MAX_CHECKED = 4096


def _checked(x, weight, stride, padding, dilation, groups, scale, shift, activation, residual, policy):
    """The `_Signature` of a call outside any tracer: its arguments checked by `_check_arguments`
    the first time the signature is seen. The signature's key (None where the arguments have
    none) also keys the launchers' prepared launches (`_runtime.launch_prepared`): it holds every
    shape, stride and dtype they read."""
    try:
        key = (x.shape, x.stride(), x.dtype, x.device, weight.shape, weight.stride(), weight.dtype, weight.device,
               _hashable(stride), _hashable(padding), _hashable(dilation), _hashable(groups), activation, policy,
               None if scale is None else (scale.shape, scale.dtype, scale.device),
               None if shift is None else (shift.shape, shift.dtype, shift.device),
               None if residual is None else (residual.shape, residual.stride(), residual.dtype, residual.device))
        known = _CHECKED.get(key)
    except (AttributeError, TypeError):  # not tensors, unhashable arguments: the checks say what is wrong
        key, known = None, None
    if known is not None:
        return known
    stride, padding, dilation = _check_arguments(
        x, weight, stride, padding, dilation, groups, scale, shift, activation, residual)
    known = _Signature(list(stride), list(padding), list(dilation), kernel_for(x, weight, groups, policy=policy), key)
    if key is not None:
        if len(_CHECKED) >= _MAX_CHECKED:
            _CHECKED.clear()
        _CHECKED[key] = known
    return known


def _hashable(value):
    """An int, or a tuple or list of ints, as a key; anything else (bools among them, which equal
    ints) a TypeError, so that the call takes the full checks."""
    if type(value) is int:
        return value
    if type(value) in (tuple, list) and all(type(v) is int for v in value):
        return tuple(value)
    raise TypeError(value)


# Plain tensors of these types, outside any tracer, take the eager path (see `_eager`).
_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


def _eager(*tensors) -> bool:
    """True when nothing traces this call: then `conv2d` runs the implementations directly
    (`_EagerConv2d` for autograd) instead of dispatching the registered operators. The
    results are the same; what is saved is host time. Measured on an H100 (2026-11-23,
    tools/profile_kernels.py): a call through the `torch.library` operators spent 170-400 us
    on the host for 10-30 us of device work, and a training step about 1,300 Python calls.
    Anything that may be tracing takes the operators, which it sees as one opaque op each:
    torch.compile / export (`is_compiling`), a dispatch mode (FakeTensorMode,
    FunctionalTensorMode, make_fx), a torch-function mode, a functorch transform (vmap,
    grad), or a tensor subclass."""
    if (torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack() > 0  # (is_compiling first:
            or torch._C._is_torch_function_mode_enabled()  # Dynamo traces what follows it otherwise)
            or torch._C._functorch.peek_interpreter_stack() is not None):
        return False
    for t in tensors:
        if t is not None and type(t) not in _PLAIN_TENSOR_TYPES:
            return False
    return True


def kernel_for(x, weight, groups=1, stride=1, padding=0, dilation=1, policy=None):
    """Which implementation a call takes under `policy` (None: the default policy):
    "depthwise", "grouped-dot" (tensor cores), "grouped-direct" (CUDA-core loop) or "torch"
    (eager fallback)."""
    return _kernel_for_shapes(x.device, x.dtype, x.shape, weight.shape, groups, resolve(policy))


def _kernel_for_shapes(device, dtype, x_shape, weight_shape, groups, policy):
    """`kernel_for` from x's device, dtype and shape and the weight's shape (the backward asks
    without tensors of those shapes at hand)."""
    if not triton_can_run_on(device, policy) or dtype not in TRITON_DTYPES:
        return "torch"
    kind, _ = dispatch.triton_kernel(x_shape, weight_shape, groups, DTYPE_NAMES[dtype])
    if kind != "grouped":
        return kind or "torch"  # dense convolution, filter > 11, empty or >= 2^31 elements: torch
    C_out, cin_g = weight_shape[0], weight_shape[1]
    return "grouped-dot" if uses_tensor_cores(dtype, cin_g, C_out // groups) else "grouped-direct"


def backend_for(x, weight, groups=1, stride=1, padding=0, dilation=1, policy=None):
    """"triton" when `conv2d` with these arguments runs a Triton kernel (natively on CUDA,
    or under the interpreter on CPU), else "torch"."""
    return "torch" if kernel_for(x, weight, groups, stride, padding, dilation, policy) == "torch" else "triton"


# ---------------------------------------------------------------------------
# Dispatch: which convs of a generated module take the kernels (`dispatch.choose`), and the
# route the others take
# ---------------------------------------------------------------------------
# device -> its name in dispatch tables; filled on first use by torch.cuda.get_device_name (tests
# that trace with fake CUDA tensors, where there is no driver to ask, fill it themselves)
DEVICE_NAMES: dict = {}


def device_name(device, policy) -> str:
    """What `dispatch.choose` calls a tensor's device under `policy`: the CUDA device's name,
    "cpu-interpreter" (CPU tensors the kernels run on under Triton's interpreter) or "cpu"."""
    if device.type == "cuda":
        name = DEVICE_NAMES.get(device)
        if name is None:
            name = DEVICE_NAMES[device] = torch.cuda.get_device_name(device)
        return name
    if device.type == "cpu":
        return "cpu-interpreter" if triton_can_run_on(device, policy) else "cpu"
    return device.type


@torch.compiler.assume_constant_result  # under torch.compile: run once at trace time, a constant in the graph
def _choose(device, dtype, layout, x_shape, weight_shape, groups, stride, padding, dilation, policy_key, timing):
    return dispatch.choose(device, dtype, layout, x_shape, weight_shape, groups, stride, padding, dilation,
                           parsed(policy_key), timing)


def choose_for(x, weight, groups=1, stride=1, padding=0, dilation=1, policy=None) -> dispatch.Choice:
    """`dispatch.choose` for a conv of x with weight: where a generated module runs it ("triton":
    `conv2d`; "torch": cuDNN with the BatchNorm folded into weight and bias, `folded_conv2d`), and
    why. Decided from the device's name, x's dtype and layout, the shapes and the policy
    (`dispatch_timing` auto: device time while torch.compile traces or a CUDA graph captures,
    host time otherwise). The decision itself is cached; callers keep it per layer (the runtime
    decides at a layer's first forward)."""
    policy = resolve(policy)
    timing = policy.dispatch_timing
    if timing == "auto":
        capturing = torch.cuda.is_initialized() and torch.cuda.is_current_stream_capturing()
        timing = "device" if torch.compiler.is_compiling() or capturing else "host"
    layout = "channels_last" if output_memory_format(x) == torch.channels_last else "nchw"
    return _choose(device_name(x.device, policy), DTYPE_NAMES.get(x.dtype, str(x.dtype).replace("torch.", "")),
                   layout, tuple(x.shape), tuple(weight.shape), groups, _pair(stride, "stride"),
                   _pair(padding, "padding"), _pair(dilation, "dilation"), policy.key, timing)


# activation -> its in-place torch form, for a conv output nothing else holds
_INPLACE_ACTIVATIONS = {
    "relu": torch.relu_, "relu6": lambda y: F.hardtanh_(y, 0.0, 6.0), "silu": lambda y: F.silu(y, inplace=True),
    "hardswish": lambda y: F.hardswish(y, inplace=True), "sigmoid": torch.sigmoid_,
}


def folded_conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, activation=None,
                  residual=None, policy=None):
    """The torch route of a conv whose BatchNorm is folded into `weight` and `bias` (x's dtype):
    act(conv2d(x, weight) + bias + residual), what a generated module runs where `choose_for`
    says "torch".

    On CUDA, with the policy's cudnn_epilogue "fused", activation relu and nothing tracing:
    one cuDNN call, `torch.cudnn_convolution_relu` (`_add_relu` with a residual). Otherwise
    F.conv2d (cuDNN on a GPU), then the residual add and the activation as torch ops, in place on
    the conv's fresh output where autograd allows: torch.compile fuses them into one pass
    (Inductor never fuses into cuDNN). cudnn_convolution_relu has no fake implementation in
    torch, so a trace takes the second form."""
    policy = resolve(policy)
    if (activation == "relu" and policy.cudnn_epilogue == "fused" and x.is_cuda and _eager(x, weight, bias, residual)
            and torch.backends.cudnn.is_acceptable(x)):
        stride, padding, dilation = (list(_pair(v, n)) for v, n in ((stride, "stride"), (padding, "padding"),
                                                                      (dilation, "dilation")))
        if residual is None:
            return torch.cudnn_convolution_relu(x, weight, bias, stride, padding, dilation, groups)
        return torch.cudnn_convolution_add_relu(x, weight, residual, 1.0, bias, stride, padding, dilation, groups)
    y = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    inplace = not (torch.is_grad_enabled() and (y.requires_grad or (residual is not None and residual.requires_grad)))
    if residual is not None:
        y = y.add_(residual) if inplace else y + residual
    if activation is None:
        return y
    if inplace and activation in _INPLACE_ACTIVATIONS:
        return _INPLACE_ACTIVATIONS[activation](y)
    return TORCH_ACTIVATIONS[activation](y)


# ---------------------------------------------------------------------------
# 3. The operator and its forward implementation
# ---------------------------------------------------------------------------
def _act(activation: str):
    return None if activation == "none" else activation


# Each operator's body is a plain function (`_conv2d_forward`, `_input_grad`, `_weight_grad`,
# `_epilogue_grad`): the operators registered below call them, and so does the eager path. The
# bodies take the call's Policy; the operators take its key string (`Policy.key`, a schema type
# they can carry), turned back into the Policy by a cached `Policy.parse`.
def _conv2d_forward(x, weight, stride, padding, dilation, groups, scale, shift, activation, residual,
                    policy: Policy, operand=None, kernel=None, memo_key=None):
    """The forward; `kernel`: `kernel_for`'s answer when the caller has it already; `memo_key`:
    the call's signature (`_checked`), for the launcher's prepared launch."""
    stride, padding, dilation, act = tuple(stride), tuple(padding), tuple(dilation), _act(activation)
    kernel = kernel or kernel_for(x, weight, groups, policy=policy)
    if kernel == "depthwise":
        return depthwise_conv2d(x, weight, stride, padding, dilation, scale, shift, residual, act, operand=operand,
                                policy=policy, memo_key=memo_key)
    if kernel.startswith("grouped"):
        return grouped_conv2d(x, weight, stride, padding, dilation, groups, scale, shift, residual, act,
                              policy=policy, memo_key=memo_key)
    return torch_conv2d(x, weight, stride, padding, dilation, groups, scale, shift, residual, act)


@torch.library.custom_op("cnnc_kernels::conv2d", mutates_args=())
def _conv2d_op(x: torch.Tensor, weight: torch.Tensor, stride: List[int], padding: List[int],
               dilation: List[int], groups: int, scale: Optional[torch.Tensor],
               shift: Optional[torch.Tensor], activation: str,
               residual: Optional[torch.Tensor], policy: str) -> torch.Tensor:
    return _conv2d_forward(x, weight, stride, padding, dilation, groups, scale, shift, activation, residual,
                           parsed(policy))


@torch.library.triton_op("cnnc_kernels::conv2d_triton", mutates_args=())
def _conv2d_triton_op(x: torch.Tensor, weight: torch.Tensor, stride: List[int], padding: List[int],
                      dilation: List[int], groups: int, scale: Optional[torch.Tensor],
                      shift: Optional[torch.Tensor], activation: str,
                      residual: Optional[torch.Tensor], policy: str) -> torch.Tensor:
    """`cnnc_kernels::conv2d` for CUDA tensors, as a `torch.library.triton_op`: the same body,
    which torch.compile traces instead of keeping opaque. Its launches are recorded with
    `wrap_triton` (`_runtime.launch`), so Inductor compiles, tunes and launches the kernels from
    its generated code (no cnnc Python per call), and the filter's re-layout (tap-major copy,
    grouped permute) is a plain op on the weight that freezing folds into a constant."""
    return _conv2d_forward(x, weight, stride, padding, dilation, groups, scale, shift, activation, residual,
                           parsed(policy))


def fold_batchnorm(weight, bias, running_mean, running_var, eps, conv_bias=None):
    """Eval-mode BatchNorm after a conv as the (scale, shift) that `conv2d` takes:
    scale = gamma / sqrt(var + eps), shift = beta - mean * scale (+ conv_bias * scale)."""
    scale = weight * torch.rsqrt(running_var + eps)
    shift = bias - running_mean * scale
    if conv_bias is not None:
        shift = shift + conv_bias * scale
    return scale, shift


def torch_conv2d(x, weight, stride, padding, dilation, groups, scale=None, shift=None,
                 residual=None, activation=None):
    """The fallback: F.conv2d in x's dtype, then the epilogue in fp32, in x's memory format."""
    conv = F.conv2d(x, weight, None, stride, padding, dilation, groups)
    out = torch_epilogue(conv, scale, shift, residual, activation)
    return out.contiguous(memory_format=output_memory_format(x))


@_conv2d_op.register_fake
def _conv2d_fake(x, weight, stride, padding, dilation, groups, scale, shift, activation, residual, policy):
    OH, OW = output_hw(x.shape[2], x.shape[3], weight.shape[2:], stride, padding, dilation)
    return torch.empty((x.shape[0], weight.shape[0], OH, OW), dtype=x.dtype, device=x.device,
                       memory_format=output_memory_format(x))


# ---------------------------------------------------------------------------
# 4. Backward
# ---------------------------------------------------------------------------
# Strides whose phases the input-gradient kernel unrolls: it emits one store per phase
# (stride_h * stride_w of them), so absurd strides go to torch instead of a huge kernel.
MAX_INPUT_GRAD_PHASES = 64


def input_grad_kernel_for(grad_conv, weight, input_shape, stride, groups, policy=None):
    """Which implementation `conv2d_input_grad` takes under `policy` (None: the default):
    "triton" (`depthwise_input_grad_kernel`, or the forward kernel on the flipped filter) or
    "torch" (torch.nn.grad.conv2d_input).

    Triton exactly when the forward with x of `input_shape` (grad_conv's dtype and device)
    took the depthwise kernel (`kernel_for`: any stride, padding, dilation and channel
    multiplier), the output gradient fits int32 offsets, and stride_h * stride_w <=
    MAX_INPUT_GRAD_PHASES (every depthwise layer in practice: strides 1-8)."""
    policy = resolve(policy)
    if _kernel_for_shapes(grad_conv.device, grad_conv.dtype, input_shape, weight.shape, groups, policy) != "depthwise":
        return "torch"
    if grad_conv.numel() >= MAX_TRITON_NUMEL or stride[0] * stride[1] > MAX_INPUT_GRAD_PHASES:
        return "torch"
    return "triton"


def _input_grad(grad_conv, weight, input_shape, stride, padding, dilation, groups, channels_last, policy: Policy,
                operand=None):
    """dL/dx, in channels_last when `channels_last` (x's layout).

    Depthwise (see `input_grad_kernel_for`): `depthwise_input_grad_kernel`, a deterministic
    gather over the taps that read each input pixel, for every stride, dilation, padding
    and multiplier; at stride 1 with multiplier 1 and more than 9 taps, the forward kernel
    on the flipped filter instead, for its row reuse (`depthwise.input_grad_path_for`).
    `operand`: the forward's `weight_operand`, if at hand. Otherwise
    torch.nn.grad.conv2d_input."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if input_grad_kernel_for(grad_conv, weight, input_shape, stride, groups, policy) == "triton":
        return depthwise_conv2d_input_grad(grad_conv, weight, input_shape, tuple(stride), tuple(padding),
                                           tuple(dilation), fmt, operand, policy)
    grad = torch.nn.grad.conv2d_input(input_shape, weight, grad_conv, stride, padding, dilation, groups)
    return grad.contiguous(memory_format=fmt)


@torch.library.custom_op("cnnc_kernels::conv2d_input_grad", mutates_args=())
def _conv2d_input_grad_op(grad_conv: torch.Tensor, weight: torch.Tensor, input_shape: List[int],
                          stride: List[int], padding: List[int], dilation: List[int],
                          groups: int, channels_last: bool, policy: str) -> torch.Tensor:
    return _input_grad(grad_conv, weight, input_shape, stride, padding, dilation, groups, channels_last,
                       parsed(policy))


@_conv2d_input_grad_op.register_fake
def _(grad_conv, weight, input_shape, stride, padding, dilation, groups, channels_last, policy):
    return torch.empty(input_shape, dtype=grad_conv.dtype, device=grad_conv.device,
                       memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def _weight_grad(x, grad_conv, weight_shape, stride, padding, dilation, groups, policy: Policy):
    """dL/dweight. Triton for depthwise (a deterministic reduction over N*OH*OW per tap block);
    otherwise torch.nn.grad.conv2d_weight."""
    if groups == x.shape[1] and _kernel_for_shapes(x.device, x.dtype, x.shape, weight_shape, groups,
                                                   policy) == "depthwise":
        return depthwise_conv2d_weight_grad(x, grad_conv, weight_shape, tuple(stride),
                                            tuple(padding), tuple(dilation), policy)
    return torch.nn.grad.conv2d_weight(x, weight_shape, grad_conv, stride, padding, dilation, groups).contiguous()


@torch.library.custom_op("cnnc_kernels::conv2d_weight_grad", mutates_args=())
def _conv2d_weight_grad_op(x: torch.Tensor, grad_conv: torch.Tensor, weight_shape: List[int],
                           stride: List[int], padding: List[int], dilation: List[int],
                           groups: int, policy: str) -> torch.Tensor:
    return _weight_grad(x, grad_conv, weight_shape, stride, padding, dilation, groups, parsed(policy))


@_conv2d_weight_grad_op.register_fake
def _(x, grad_conv, weight_shape, stride, padding, dilation, groups, policy):
    return torch.empty(weight_shape, dtype=x.dtype, device=x.device)


def _epilogue_grad(x, weight, stride, padding, dilation, groups, scale, shift, residual, grad_y, y, activation,
                   want_dres, want_dshift, want_dscale, policy: Policy, operand=None):
    """The backward of the epilogue y = act(c * scale + shift + residual), c = conv(x, weight):
    (dc in x's dtype and layout, d residual, d shift, d scale); an unwanted one is empty.

    Depthwise: one Triton pass (`depthwise_epilogue_grad_kernel`) that recomputes c from x
    and reads grad_y once. Otherwise torch: dz = grad_y * act'(z), act' from the saved output
    y (relu, relu6, sigmoid) or from z recomputed by the forward op (silu, gelu, hardswish);
    d residual = dz; d shift = sum dz; d scale = sum dz * c (c recomputed, only when wanted);
    dc = dz * scale."""
    stride, padding, dilation, act = tuple(stride), tuple(padding), tuple(dilation), _act(activation)
    if kernel_for(x, weight, groups, policy=policy) == "depthwise":
        return depthwise_epilogue_grad(x, weight, stride, padding, dilation, scale, shift, residual, grad_y, act,
                                       want_dres, want_dshift, want_dscale, operand, policy)
    op = _conv2d_forward  # already inside an operator (or the eager path): no second dispatch
    z = None
    if act in NEEDS_PREACTIVATION:
        z = op(x, weight, stride, padding, dilation, groups, scale, shift, "none", residual, policy)
    dz = activation_grad(grad_y, y, z, act)  # fp32 (fp64 for fp64), a new tensor
    # outputs are fresh tensors: none may alias another (copy=True where .to could return dz)
    dres = dz.to(residual.dtype, copy=True) if want_dres else x.new_empty(0)
    dshift = dz.sum(dim=(0, 2, 3)).to(shift.dtype) if want_dshift else x.new_empty(0)
    dscale = x.new_empty(0)
    if want_dscale:
        c = op(x, weight, stride, padding, dilation, groups, None, None, "none", None, policy)
        dscale = (dz * c.to(dz.dtype)).sum(dim=(0, 2, 3)).to(scale.dtype)
    dc = dz * scale.to(dz.dtype).view(1, -1, 1, 1) if scale is not None else dz.clone()
    return dc.to(x.dtype).contiguous(memory_format=output_memory_format(x)), dres, dshift, dscale


@torch.library.custom_op("cnnc_kernels::conv2d_epilogue_grad", mutates_args=())
def _conv2d_epilogue_grad_op(x: torch.Tensor, weight: torch.Tensor, stride: List[int], padding: List[int],
                             dilation: List[int], groups: int, scale: Optional[torch.Tensor],
                             shift: Optional[torch.Tensor], residual: Optional[torch.Tensor],
                             grad_y: torch.Tensor, y: Optional[torch.Tensor], activation: str,
                             want_dres: bool, want_dshift: bool, want_dscale: bool, policy: str
                             ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return _epilogue_grad(x, weight, stride, padding, dilation, groups, scale, shift, residual, grad_y, y,
                          activation, want_dres, want_dshift, want_dscale, parsed(policy))


@_conv2d_epilogue_grad_op.register_fake
def _(x, weight, stride, padding, dilation, groups, scale, shift, residual, grad_y, y, activation,
      want_dres, want_dshift, want_dscale, policy):
    fmt = output_memory_format(x)
    dc = torch.empty(grad_y.shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    dres = (torch.empty(grad_y.shape, dtype=residual.dtype, device=x.device, memory_format=fmt) if want_dres
            else x.new_empty(0))
    dshift = shift.new_empty(shift.shape) if want_dshift else x.new_empty(0)
    dscale = scale.new_empty(scale.shape) if want_dscale else x.new_empty(0)
    return dc, dres, dshift, dscale


def _setup_context(ctx, inputs, output):
    x, weight, stride, padding, dilation, groups, scale, shift, activation, residual, policy = inputs
    ctx.geometry = (stride, padding, dilation, groups)
    ctx.activation = activation
    ctx.policy = policy  # the operators': its key string; the eager path's: the Policy
    saved_y = output if _act(activation) in _GRAD_FROM_OUTPUT else None
    ctx.save_for_backward(x, weight, scale, shift, residual, saved_y)


def _backward_with(ops, ctx, grad_y):
    """Gradients of y = act(c * scale + shift + residual), c = conv(x, weight): the epilogue's
    (`conv2d_epilogue_grad`: dc, d residual, d shift, d scale), then d x = conv2d_input_grad(dc)
    and d weight = conv2d_weight_grad(x, dc) (see those ops for Triton vs torch). `ops` holds
    the three: the registered operators (traced), or their bodies (`_EagerOps`)."""
    x, weight, scale, shift, residual, y = ctx.saved_tensors
    stride, padding, dilation, groups = ctx.geometry
    need = ctx.needs_input_grad
    dc, dres, dshift, dscale = ops.conv2d_epilogue_grad(
        x, weight, stride, padding, dilation, groups, scale, shift, residual, grad_y, y, ctx.activation,
        need[9], need[7], need[6], ctx.policy)
    grad_x = grad_w = None
    if need[0]:
        grad_x = ops.conv2d_input_grad(
            dc, weight, list(x.shape), stride, padding, dilation, groups,
            output_memory_format(x) == torch.channels_last, ctx.policy)
    if need[1]:
        grad_w = ops.conv2d_weight_grad(x, dc, list(weight.shape), stride, padding, dilation, groups, ctx.policy)
    return (grad_x, grad_w, None, None, None, None, dscale if need[6] else None, dshift if need[7] else None,
            None, dres if need[9] else None, None)


def _backward(ctx, grad_y):
    return _backward_with(torch.ops.cnnc_kernels, ctx, grad_y)


_conv2d_op.register_autograd(_backward, setup_context=_setup_context)
_conv2d_triton_op.register_autograd(_backward, setup_context=_setup_context)


class _EagerOps:
    """The operators' bodies under the operators' names, with the forward's depthwise filter
    operand (`weight_operand`, None otherwise) passed on: one filter copy per training step
    instead of three."""

    def __init__(self, operand):
        self.operand = operand

    def conv2d_epilogue_grad(self, *args):
        return _epilogue_grad(*args, operand=self.operand)

    def conv2d_input_grad(self, *args):
        return _input_grad(*args, operand=self.operand)

    conv2d_weight_grad = staticmethod(_weight_grad)


class _EagerConv2d(torch.autograd.Function):
    """The eager path's autograd: the same forward, context and backward as the operator's
    registration, without the dispatcher (see `_eager`)."""

    @staticmethod
    def forward(ctx, *args):
        x, weight, groups, policy = args[0], args[1], args[5], args[-1]
        kernel = kernel_for(x, weight, groups, policy=policy)
        ctx.operand = weight_operand(weight, policy) if kernel == "depthwise" else None
        y = _conv2d_forward(*args, operand=ctx.operand, kernel=kernel)
        _setup_context(ctx, args, y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        return _backward_with(_EagerOps(ctx.operand), ctx, grad_y)

__all__ = ["conv2d", "backend_for", "kernel_for", "torch_conv2d"]
