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

import torch
from torch import Tensor, nn
from torch.nn import functional as F

try:  # the Triton kernels need triton: without it depthwise and grouped convolutions run F.conv2d
    from cnnc import kernels
except ImportError:  # pragma: no cover - triton is installed with cnnc[torch] on Linux
    kernels = None


class Conv2d(nn.Conv2d):
    """A depthwise or grouped nn.Conv2d that calls `kernels.conv2d` (bias as its per-channel shift).

    `kernels.conv2d` is one custom op to torch.compile and torch.export; it runs a Triton kernel
    on CUDA and eager torch elsewhere. ONNX has no translation for that op, so ONNX export (and a
    missing `kernels` package) takes plain F.conv2d, which computes the same thing.
    `kernel_policy`: the calls' kernel policy (None: the process default; see `set_kernel_policy`).
    """

    kernel_policy = None  # a plain attribute: neither parameter nor buffer, so no state_dict entry

    def forward(self, x: Tensor) -> Tensor:
        if kernels is None or self.padding_mode != "zeros" or torch.onnx.is_in_onnx_export():
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return kernels.conv2d(x, self.weight, stride=self.stride, padding=self.padding, dilation=self.dilation,
                              groups=self.groups, shift=self.bias, policy=self.kernel_policy)


_ACTIVATIONS = {"relu": F.relu, "relu6": F.relu6, "silu": F.silu, "gelu": F.gelu, "hardswish": F.hardswish,
                "sigmoid": torch.sigmoid}


class FusedConv2d(nn.Conv2d):
    """What the fusion passes make of conv -> BatchNorm -> (+ residual) -> activation.

    Its state_dict is the conv's followed by the BatchNorm's (`bn.*`), in the order and shapes of
    the unfused layers, so the same weights load. In eval mode the BatchNorm is folded at every
    call (so loading new weights needs no re-folding):
    * depthwise and grouped convs: into `kernels.conv2d`'s per-channel scale and shift, one
      Triton kernel with the residual add and activation in its epilogue;
    * dense convs (groups == 1, which cuDNN does best): into the conv's weight and bias, then
      the residual add and activation as plain torch ops, which torch.compile fuses into one
      pass (inside the opaque `kernels.conv2d` op they would stay separate eager passes).
    In training mode the layers run one after another, with batch statistics.
    `kernel_policy`: the calls' kernel policy (None: the process default; see `set_kernel_policy`).
    """

    kernel_policy = None  # a plain attribute: neither parameter nor buffer, so no state_dict entry

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, bn=False, eps=1e-5, activation=None):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels, eps=eps) if bn else None
        self.activation = activation

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        if self.training or kernels is None or torch.onnx.is_in_onnx_export():
            y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
            return self._epilogue(y if self.bn is None else self.bn(y), residual)
        scale, shift = self._folded()
        if self.groups == 1:  # dense: cuDNN, with the BatchNorm folded into its weight and bias
            weight = self.weight if scale is None else (self.weight.float() * scale.view(-1, 1, 1, 1)).to(
                self.weight.dtype)
            bias = None if shift is None else shift.to(self.weight.dtype)
            y = F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
            return self._epilogue(y, residual)
        return kernels.conv2d(x, self.weight, stride=self.stride, padding=self.padding, dilation=self.dilation,
                              groups=self.groups, scale=scale, shift=shift, activation=self.activation,
                              residual=residual, policy=self.kernel_policy)

    def _folded(self) -> tuple[Tensor | None, Tensor | None]:
        """The eval-mode BatchNorm (and conv bias) as fp32 per-channel (scale, shift)."""
        if self.bn is None:
            return None, self.bias
        bn = self.bn
        return kernels.fold_batchnorm(bn.weight.float(), bn.bias.float(), bn.running_mean.float(),
                                      bn.running_var.float(), bn.eps,
                                      conv_bias=None if self.bias is None else self.bias.float())

    def _epilogue(self, y: Tensor, residual: Tensor | None) -> Tensor:
        if residual is not None:
            y = y + residual
        return y if self.activation is None else _ACTIVATIONS[self.activation](y)

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", activation={self.activation!r}" if self.activation else "")


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
    """LayerNorm over the channel dimension of an (N, C, H, W) map; weight and bias are (C,)."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ChannelLinear(nn.Linear):
    """nn.Linear over the channels of an (N, C, H, W) map (a 1x1 convolution with a Linear's
    (out, in) weight, as in torchvision's ConvNeXt block)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x.movedim(1, -1), self.weight, self.bias).movedim(-1, 1)


def layer_scale(channels: int, init: float = 1e-6, spatial: bool = True) -> nn.Parameter:
    """A learnable per-channel scale that starts at `init`: (C, 1, 1) for a map, (C,) for a
    vector. A parameter, not a module: assigned to the enclosing module, it is that module's own
    state_dict entry (`features.1.0.layer_scale`, torchvision's CNBlock), listed before its
    submodules' entries as torchvision lists it."""
    return nn.Parameter(torch.full((channels, 1, 1) if spatial else (channels,), float(init)))


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
