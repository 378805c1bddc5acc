"""Layers that generated modules need and torch lacks. Imports only torch (and `cnnc.kernels`, when triton is there).

Every class keeps the state_dict names and shapes of the torch layer it mirrors, so weights from
torchvision and timm import by structural order:

  Conv2d         nn.Conv2d whose forward runs `kernels.conv2d` (Triton depthwise/grouped kernels)
  FusedConv2d    conv + BatchNorm + residual add + activation in one `kernels.conv2d` call
  LayerNorm2d    LayerNorm over the channels of an NCHW map (torchvision's LayerNorm2d)
  ChannelLinear  nn.Linear applied to the channels at every position of an NCHW map
  layer_scale    a learnable per-channel scale (C, 1, 1), a parameter of the enclosing module
                 like torchvision's ConvNeXt `layer_scale`
  DropPath       stochastic depth: zeroes whole samples of a residual branch in training
  channel_shuffle  ShuffleNet's channel permutation
  set_kernel_policy  the kernel policy (`kernels.Policy`) of every Conv2d / FusedConv2d in a module
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn
from torch.nn import functional as F

try:  # the Triton kernels need triton: without it depthwise and grouped convolutions run F.conv2d
    from cnnc import kernels
except ImportError:  # pragma: no cover - triton is installed with cnnc[torch] on Linux
    kernels = None


class Conv2d(nn.Conv2d):
    """A depthwise or grouped nn.Conv2d that calls `kernels.conv2d` (bias as its per-channel shift)
    where `kernels.choose_for` sends it to a Triton kernel, F.conv2d (cuDNN) elsewhere.

    `kernels.conv2d` is one custom op to torch.compile and torch.export; it runs a Triton kernel
    on CUDA (and under the interpreter). Where the kernel policy gives no Triton kernel (the CPU)
    it calls F.conv2d itself, the op the plain torch layer runs: `kernels.conv2d`'s torch path
    would add an fp32 epilogue pass for the bias. ONNX export and a missing `kernels` package take
    F.conv2d too, which computes the same thing.
    `kernel_policy`: the calls' kernel policy (None: the process default; see `set_kernel_policy`).
    """

    kernel_policy = None  # a plain attribute: neither parameter nor buffer, so no state_dict entry

    def refold(self) -> None:
        """Drop the kernels' filter re-layout of this weight (remembered per weight version): needed
        only after an in-place edit through `.data`, which no version counter sees."""
        _forget_relayout(self.weight)

    def train(self, mode: bool = True):
        self.refold()  # train() and eval() both drop it, as FusedConv2d's plan
        return super().train(mode)

    def forward(self, x: Tensor) -> Tensor:
        if (kernels is None or self.padding_mode != "zeros" or torch.onnx.is_in_onnx_export()
                or _kernel_choice(self, x).backend == "torch"):
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return kernels.conv2d(x, self.weight, stride=self.stride, padding=self.padding, dilation=self.dilation,
                              groups=self.groups, shift=self.bias, policy=self.kernel_policy)


_ACTIVATIONS = {"relu": F.relu, "relu6": F.relu6, "silu": F.silu, "gelu": F.gelu, "hardswish": F.hardswish,
                "sigmoid": torch.sigmoid}
# The same activations applied in place (on a tensor nothing else holds).
_ACTIVATIONS_ = {"relu": torch.relu_, "relu6": lambda y: F.hardtanh_(y, 0.0, 6.0),
                 "silu": lambda y: F.silu(y, inplace=True), "gelu": F.gelu,
                 "hardswish": lambda y: F.hardswish(y, inplace=True), "sigmoid": torch.sigmoid_}
# oneDNN's names for them, as `torch.ops.mkldnn._convolution_pointwise` takes them (attr, scalars,
# algorithm): what Inductor's CPU freezing path (torch/_inductor/fx_passes/mkldnn_fusion.py) emits.
_ONEDNN_ACTIVATIONS = {None: ("none", [], ""), "relu": ("relu", [], ""), "relu6": ("hardtanh", [0.0, 6.0], ""),
                       "silu": ("swish", [], ""), "gelu": ("gelu", [], "none"), "hardswish": ("hardswish", [], ""),
                       "sigmoid": ("sigmoid", [], "")}
_HAS_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
# Tensor types the cached fold serves; anything else (FakeTensor, FunctionalTensor, ...) may trace
_PLAIN_TENSORS = (Tensor, nn.Parameter)
# Input shapes a FusedConv2d keeps a oneDNN-prepacked plan for (`FusedConv2d.plan`)
_MAX_SHAPES = 4


@dataclasses.dataclass(frozen=True)
class ConvPlan:
    """How one FusedConv2d runs in eval mode, decided and folded once (`FusedConv2d.plan`).

    impl: which convolution runs (`choose_conv_impl`):
      "kernels"  `kernels.conv2d`, a Triton kernel with the BatchNorm as its epilogue's scale and shift
                 and the residual add and activation fused (depthwise and grouped, on CUDA);
      "onednn"   `torch.ops.mkldnn._convolution_pointwise` with the BatchNorm folded into a weight
                 prepacked for oneDNN, bias, residual add and activation fused (CPU, float32);
      "torch"    F.conv2d with the BatchNorm folded into weight and bias, then the add and
                 activation in place (on CUDA `kernels.folded_conv2d`: cuDNN, its fused conv + relu
                 where the policy's cudnn_epilogue says).
    why: one line saying why (for `explain` and the build's report).
    weight, bias: what the conv reads ("kernels": the conv's own weight, whose filter re-layout
    `kernels.conv2d` keeps per weight version; otherwise folded, prepacked for "onednn"); scale,
    shift: the epilogue's ("kernels").
    key: what the fold was made from (`FusedConv2d._fold_key`); a plan whose key differs is stale.
    """

    impl: str
    why: str
    weight: Tensor
    bias: Tensor | None
    scale: Tensor | None
    shift: Tensor | None
    key: tuple


def choose_conv_impl(layer: "FusedConv2d", x: Tensor) -> tuple[str, str]:
    """Which convolution a FusedConv2d runs on inputs like `x`, and why: the one place that
    chooses (once per layer and input device/dtype, at the first eval forward, never per call).

    A Triton kernel where `kernels.choose_for` picks one (a measured win on this device, or the
    policy's `dispatch`; under the interpreter in tests); else oneDNN's fused convolution on the
    CPU in float32; else torch (cuDNN on a GPU)."""
    kernel = _triton_kernel_for(layer, x)
    if kernel:
        return "kernels", f"kernel policy: {kernel} Triton kernel"
    if layer.bn is None and layer.activation is None:
        # nothing folded or fused into it (ConvNeXt's convs): the plain module's own call, which
        # oneDNN's prepacked route did not beat (convnext_tiny fused 0.99x plain, tools/bench_models.py --cpu)
        return "torch", f"{x.device.type}: nothing to fuse, F.conv2d as unfused"
    if (_HAS_ONEDNN and x.device.type == "cpu" and x.dtype == torch.float32 and layer.padding_mode == "zeros"
            and not isinstance(layer.padding, str)):
        return "onednn", "CPU float32: oneDNN convolution with the epilogue fused, weights prepacked"
    return "torch", f"{x.device.type} {str(x.dtype).replace('torch.', '')}: F.conv2d on folded weights"


def _triton_kernel_for(layer, x: Tensor) -> str | None:
    """The Triton kernel this layer's conv runs on inputs like `x` (`_kernel_choice` says "triton"
    and the policy gives a kernel), or None."""
    if kernels is None or layer.groups == 1 or _kernel_choice(layer, x).backend != "triton":
        return None
    kernel = kernels.kernel_for(x, layer.weight, layer.groups, policy=layer.kernel_policy)
    return None if kernel == "torch" else kernel


class FusedConv2d(nn.Conv2d):
    """What the fusion passes make of conv -> BatchNorm -> (+ residual) -> activation.

    Its state_dict is the conv's followed by the BatchNorm's (`bn.*`), in the order and shapes of
    the unfused layers, so the same weights load.

    Where each conv runs is decided once per layer (`choose_conv_impl`): a depthwise or grouped
    conv goes to a cnnc Triton kernel only where `kernels.choose_for` says so (a committed
    measurement shows it faster than cuDNN on that device: `kernels.dispatch`); dense convs and
    the others take oneDNN on the CPU (float32) or the torch route (cuDNN on a GPU,
    `kernels.folded_conv2d`).

    Eval mode, no gradient needed (`torch.no_grad` / `torch.inference_mode`, or nothing that
    requires grad): the layer runs its `plan` (`ConvPlan`), made once and cached: which conv
    implementation runs (`choose_conv_impl`) and the BatchNorm folded for it, in float64 (or the
    weights' dtype if wider) and rounded once. The plan is made again only when what it was made
    from changes (`_fold_key`):
    * a parameter or buffer changed in place through autograd-visible ops (optimizer steps,
      `load_state_dict`, `with torch.no_grad(): w.mul_(2)`: the tensors' version counters), or was
      replaced (`p.data = t`, `module.to(...)`, `load_state_dict(assign=True)`: data pointers);
    * the input's device or dtype, or the kernel policy, is another;
    * `train()` / `eval()` was called, `load_state_dict` ran (a hook), or `refold()` was called.
    NOT detected: an in-place edit through `.data` (`p.data.mul_(2)`) or in a foreign kernel
    that bumps no version counter; after one, call `model.eval()` again or `refold()`.

    Otherwise (training, gradients needed, torch.compile or export tracing, ONNX export) the
    BatchNorm is folded inside the call, differentiably: training mode runs conv, BatchNorm
    (batch statistics), add and activation one after another, exactly as the unfused layers do;
    eval mode folds into the conv's weight and bias, which `torch.compile` with
    `torch._inductor.config.freezing = True` constant-folds (and Inductor's CPU path then fuses).
    `kernel_policy`: the calls' kernel policy (None: the process default; see `set_kernel_policy`).
    """

    kernel_policy = None  # a plain attribute: neither parameter nor buffer, so no state_dict entry
    _plan = None  # the cached ConvPlan (never pickled or copied: see __getstate__)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, bn=False, eps=1e-5, activation=None):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels, eps=eps) if bn else None
        self.activation = activation
        self.register_load_state_dict_post_hook(_drop_plan)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        if self.training:
            self._forget_plans()  # batch statistics move the running ones without a version bump
            y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
            return self._epilogue(y if self.bn is None else self.bn(y), residual)
        if self._traced_or_differentiable(x, residual):
            if self.groups > 1 and _triton_kernel_for(self, x) and not torch.onnx.is_in_onnx_export():
                # one custom op to a tracer, differentiable in every input (kernels.conv2d)
                scale, shift = self._fold_for_epilogue(torch.float64 if x.dtype == torch.float64 else torch.float32)
                return kernels.conv2d(x, self.weight, stride=self.stride, padding=self.padding,
                                      dilation=self.dilation, groups=self.groups, scale=scale, shift=shift,
                                      activation=self.activation, residual=residual, policy=self.kernel_policy)
            weight, bias = self._fold_for_conv(differentiable=True)
            y = F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
            return self._epilogue(y, residual)
        plan = self.plan(x)
        if plan.impl == "onednn":
            act, scalars, algorithm = _ONEDNN_ACTIVATIONS[self.activation]
            if residual is None:
                return torch.ops.mkldnn._convolution_pointwise(
                    x, plan.weight, plan.bias, self.padding, self.stride, self.dilation, self.groups,
                    act, scalars, algorithm)
            # the binary form fuses relu only (oneDNN's "Unary Fusion behavior undefined" otherwise)
            fused_act = self.activation == "relu"
            y = torch.ops.mkldnn._convolution_pointwise.binary(
                x, residual, plan.weight, plan.bias, self.padding, self.stride, self.dilation, self.groups,
                "add", 1.0, act if fused_act else None, [], None)
            return y if fused_act or self.activation is None else _ACTIVATIONS_[self.activation](y)
        if plan.impl == "kernels":
            return kernels.conv2d(x, self.weight, stride=self.stride, padding=self.padding, dilation=self.dilation,
                                  groups=self.groups, scale=plan.scale, shift=plan.shift,
                                  activation=self.activation, residual=residual, policy=self.kernel_policy)
        if kernels is not None and x.is_cuda:  # cuDNN (its fused conv + relu where the policy says)
            return kernels.folded_conv2d(x, plan.weight, plan.bias, stride=self.stride, padding=self.padding,
                                         dilation=self.dilation, groups=self.groups, activation=self.activation,
                                         residual=residual, policy=self.kernel_policy)
        y = F.conv2d(x, plan.weight, plan.bias, self.stride, self.padding, self.dilation, self.groups)
        if residual is not None:
            y += residual
        return y if self.activation is None else _ACTIVATIONS_[self.activation](y)

    # ---- the plan: made once, cached -----------------------------------------------------

    def plan(self, x: Tensor) -> ConvPlan:
        """The eval-mode plan for inputs like `x`: a cached one while `_fold_key` is unchanged,
        else a new one (`choose_conv_impl`, then the fold for that implementation).

        oneDNN's prepacked weight is packed for one input shape (a weight packed for batch 8 and
        called at batch 1 is re-laid out on every call: resnet50 at batch 1 ran 2.3x slower than
        the plain module, 305.7 against 131.1 ms), so on that route the shape is part of the key
        and the plans of the last `_MAX_SHAPES` shapes are kept: alternating batch sizes do not re-pack."""
        key = self._fold_key(x)
        plan = self._plan
        if plan is not None and plan.key == key:
            return plan
        plans = self.__dict__.get("_plans")
        if plans is None:
            plans = self.__dict__["_plans"] = {}
        plan = plans.get(key)
        if plan is None:
            plan = self._make_plan(x, key)
            for stale in [k for k in plans if k[1:] != key[1:]]:  # other weights, device, dtype, policy
                del plans[stale]
            if len(plans) >= _MAX_SHAPES:
                del plans[next(iter(plans))]  # the oldest shape
            plans[key] = plan
        self._plan = plan
        return plan

    def _make_plan(self, x: Tensor, key: tuple) -> ConvPlan:
        with torch.no_grad():
            impl, why = choose_conv_impl(self, x)
            scale = shift = None
            if impl == "kernels":
                scale, shift = self._fold_for_epilogue(torch.float64 if x.dtype == torch.float64 else torch.float32)
                weight, bias = self.weight.detach(), None
            else:
                weight, bias = self._fold_for_conv(differentiable=False)
                if impl == "onednn":
                    weight = torch.ops.mkldnn._reorder_convolution_weight(
                        weight.contiguous(), list(self.padding), list(self.stride), list(self.dilation), self.groups,
                        list(x.shape))
        return ConvPlan(impl, why, weight, bias, scale, shift, key)

    def refold(self) -> None:
        """Drop the cached plan and the kernels' filter re-layout: the next forward folds again.
        Needed only after an edit the caches cannot see (an in-place change through `.data`)."""
        self._forget_plans()
        _forget_relayout(self.weight)

    def _forget_plans(self) -> None:
        self._plan = None
        self.__dict__.pop("_plans", None)

    def train(self, mode: bool = True):
        self.refold()  # train() and eval() both refold: the documented way after `.data` edits
        return super().train(mode)

    def _tensors(self):
        """Every tensor the fold reads."""
        ts = [self.weight, self.bias]
        if self.bn is not None:
            ts += [self.bn.weight, self.bn.bias, self.bn.running_mean, self.bn.running_var]
        return ts

    def _fold_key(self, x: Tensor) -> tuple:
        """What a plan is valid for: each tensor's version counter and data pointer, the input's
        device and dtype, the kernel policy in force, and where a Triton kernel may take the conv
        (grouped, on CUDA or under the interpreter) the input's shape and strides, by which the
        dispatch decides (`_kernel_choice`)."""
        packed = x.shape if _HAS_ONEDNN and x.device.type == "cpu" and x.dtype == torch.float32 else None
        if kernels is None:
            return (packed, x.device, x.dtype, self.kernel_policy, self._versions())
        dispatched = self.groups > 1 and (x.is_cuda or kernels.INTERPRET)
        return (packed, x.device, x.dtype, kernels.policy.resolve(self.kernel_policy),
                (x.shape, x.stride()) if dispatched else None, self._versions())

    def _versions(self) -> tuple:
        return tuple(None if t is None else (t._version, t.data_ptr()) for t in self._tensors())

    def _traced_or_differentiable(self, x: Tensor, residual: Tensor | None) -> bool:
        """True when the cached plan must not serve the call: gradients are wanted (the plan's
        tensors are constants), something traces it (torch.compile, export, a tensor subclass),
        or ONNX export."""
        if torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export():
            return True
        if type(x) not in _PLAIN_TENSORS or (residual is not None and type(residual) not in _PLAIN_TENSORS):
            return True
        return torch.is_grad_enabled() and (x.requires_grad or (residual is not None and residual.requires_grad)
                                            or any(t is not None and t.requires_grad for t in self._tensors()))

    def _fold_dtype(self) -> torch.dtype:
        """Folding happens in float64, or in the weights' dtype if that is wider."""
        return self.weight.dtype if self.weight.dtype.itemsize > 8 else torch.float64

    def _fold_for_epilogue(self, dtype: torch.dtype) -> tuple[Tensor | None, Tensor | None]:
        """The eval-mode BatchNorm (and conv bias) as per-channel (scale, shift) in `dtype`."""
        if self.bn is None:
            return None, None if self.bias is None else self.bias.to(dtype)
        bn, wide = self.bn, self._fold_dtype()
        scale, shift = kernels.fold_batchnorm(
            bn.weight.to(wide), bn.bias.to(wide), bn.running_mean.to(wide), bn.running_var.to(wide), bn.eps,
            conv_bias=None if self.bias is None else self.bias.to(wide))
        return scale.to(dtype), shift.to(dtype)

    def _fold_for_conv(self, differentiable: bool) -> tuple[Tensor, Tensor | None]:
        """The conv's weight and bias with the eval-mode BatchNorm folded in (computed in
        `_fold_dtype`, rounded once to the weight's dtype)."""
        if self.bn is None:
            return self.weight, self.bias
        bn, wide, dtype = self.bn, self._fold_dtype(), self.weight.dtype
        scale = bn.weight.to(wide) * torch.rsqrt(bn.running_var.to(wide) + bn.eps)
        shift = bn.bias.to(wide) - bn.running_mean.to(wide) * scale
        if self.bias is not None:
            shift = shift + self.bias.to(wide) * scale
        weight = (self.weight.to(wide) * scale.view(-1, 1, 1, 1)).to(dtype)
        if not differentiable:
            weight = weight.contiguous()
        return weight, shift.to(dtype)

    def _epilogue(self, y: Tensor, residual: Tensor | None) -> Tensor:
        if residual is not None:
            y = y + residual
        return y if self.activation is None else _ACTIVATIONS[self.activation](y)

    def __getstate__(self):
        state = super().__getstate__().copy()
        state.pop("_plan", None)  # a cache (oneDNN's packed weights cannot be pickled): made again
        state.pop("_plans", None)
        return state

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", activation={self.activation!r}" if self.activation else "")


def _forget_relayout(weight) -> None:
    """Drop the filter re-layout `kernels` remembers on a weight (`_runtime.relayout`)."""
    weight.__dict__.pop("_cnnc_relayout", None)


def _drop_plan(module, incompatible_keys) -> None:
    """load_state_dict's post hook: new weights, a new plan (copies bump versions anyway)."""
    module._forget_plans()


def _kernel_choice(layer: nn.Conv2d, x: Tensor):
    """Where a depthwise or grouped `layer` runs its conv for inputs like x: `kernels.choose_for`'s
    decision ("triton": a cnnc kernel; "torch": cuDNN), made at the layer's first forward and
    remembered with what it depends on (shape, dtype, device, layout, kernel policy); only a
    change of those decides again. Not a module attribute: no state_dict entry."""
    policy = kernels.policy.resolve(layer.kernel_policy)
    if torch.compiler.is_compiling():  # a constant of the traced graph (`choose_for`)
        return kernels.choose_for(x, layer.weight, layer.groups, layer.stride, layer.padding, layer.dilation, policy)
    key = (x.shape, x.dtype, x.device, x.stride(), policy)
    known = layer.__dict__.get("_kernel_choice")
    if known is None or known[0] != key:
        known = layer.__dict__["_kernel_choice"] = (key, kernels.choose_for(
            x, layer.weight, layer.groups, layer.stride, layer.padding, layer.dilation, policy))
    return known[1]


def set_kernel_policy(module: nn.Module, policy) -> nn.Module:
    """Give every Conv2d and FusedConv2d in `module` (itself included) the kernel policy `policy`:
    a `kernels.Policy`, its key string (e.g. "dw_forward=rows"), or None for the process default
    (`kernels.default_policy()`). Returns `module`. The policy changes which kernel code runs and
    how it is tuned, never the result, the state_dict or the generated source."""
    if policy is not None and kernels is not None:
        policy = kernels.policy.resolve(policy)  # a bad policy fails here, not at the first call
    for layer in module.modules():
        if isinstance(layer, (Conv2d, FusedConv2d)):
            layer.kernel_policy = policy
    return module


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension (dim 1) of an (N, C, H, W) map, or of any (N, C, ...)
    tensor such as an (N, C, L) sequence; weight and bias are (C,)."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.movedim(1, -1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)


class ChannelLinear(nn.Linear):
    """nn.Linear over the channels of an (N, C, H, W) map (a 1x1 convolution with a Linear's
    (out, in) weight, as in torchvision's ConvNeXt block)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x.movedim(1, -1), self.weight, self.bias).movedim(-1, 1)


def layer_scale(channels: int, init: float = 1e-6, rank: int = 3) -> nn.Parameter:
    """A learnable per-channel scale that starts at `init`, shaped to multiply an input of `rank`
    dimensions (batch aside) along its channels, dim 1: (C, 1, 1) for a map, (C, 1) for a
    sequence, (C,) for a vector. A parameter, not a module: assigned to the enclosing module, it
    is that module's own state_dict entry (`features.1.0.layer_scale`, torchvision's CNBlock),
    listed before its submodules' entries as torchvision lists it."""
    return nn.Parameter(torch.full((channels,) + (1,) * (rank - 1), float(init)))


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): in training, zero each sample's branch with
    probability p and scale survivors by 1 / (1 - p); the identity in eval mode."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of `groups` groups (ShuffleNet)."""
    n, c, h, w = x.shape
    x = x.reshape(n, groups, c // groups, h, w).transpose(1, 2)
    return x.reshape(n, c, h, w)
