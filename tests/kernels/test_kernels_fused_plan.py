"""runtime.FusedConv2d on the Triton path (natively on a GPU, else under the interpreter): its
cached plan hands `kernels.conv2d` the folded scale and shift and the filter re-layout made once,
refolds when a weight changes, and eval mode with gradients goes through the differentiable op.
References: eager F.conv2d and F.batch_norm on the layer's current parameters, in float64."""
import pytest
import torch
import torch.nn.functional as F

from cnnc.backends import runtime
from cnnc_testlib import randomize_batchnorm
from kernels_testlib import DEVICE, REFERENCE_ACTIVATIONS


def _layer():
    torch.manual_seed(0)
    layer = runtime.FusedConv2d(8, 8, 3, padding=1, groups=8, bias=False, bn=True, activation="silu")
    return randomize_batchnorm(layer).to(DEVICE).eval()


def _reference(layer, x, residual):
    d = torch.float64
    bn = layer.bn
    y = F.conv2d(x.to(d), layer.weight.to(d), None, 1, 1, 1, 8)
    y = F.batch_norm(y, bn.running_mean.to(d), bn.running_var.to(d), bn.weight.to(d), bn.bias.to(d), False, 0.0,
                     bn.eps)
    return REFERENCE_ACTIVATIONS["silu"](y + residual.to(d))


def test_the_plan_caches_the_fold_and_the_filter_layout_for_the_kernel():
    layer = _layer()
    x, r = torch.randn(2, 8, 6, 6, device=DEVICE), torch.randn(2, 8, 6, 6, device=DEVICE)
    with torch.no_grad():
        y = layer(x, r)
        plan = layer._plan
        assert plan.impl == "kernels" and plan.scale.dtype == torch.float32
        assert torch.allclose(y.double(), _reference(layer, x, r), rtol=2e-5, atol=2e-5)
        layer(x, r)
        assert layer._plan is plan
        layer.weight.mul_(-1.0)  # the filter re-layout must follow
        y = layer(x, r)
        assert layer._plan is not plan
        assert torch.allclose(y.double(), _reference(layer, x, r), rtol=2e-5, atol=2e-5)


def test_eval_mode_with_gradients_takes_the_differentiable_kernel_op():
    layer = _layer()
    x = torch.randn(2, 8, 6, 6, device=DEVICE, requires_grad=True)
    r = torch.randn(2, 8, 6, 6, device=DEVICE)
    y = layer(x, r)
    assert layer._plan is None  # no cached constants where gradients flow
    y.sum().backward()
    x2 = x.detach().clone().requires_grad_()
    weight = layer.weight.detach().clone().requires_grad_()
    bn = layer.bn
    ref = F.silu(F.batch_norm(F.conv2d(x2, weight, None, 1, 1, 1, 8), bn.running_mean, bn.running_var, bn.weight.detach(),
                              bn.bias.detach(), False, 0.0, bn.eps) + r)
    ref.sum().backward()
    assert torch.allclose(x.grad, x2.grad, rtol=1e-4, atol=1e-4)
    assert torch.allclose(layer.weight.grad, weight.grad, rtol=1e-4, atol=1e-4)


def test_data_edits_need_no_refold_for_plain_tensors_and_refold_for_parameters():
    """An in-place edit through `.data` leaves the version counter alone: a plain weight tensor is
    re-laid out at every call (the functional API, gradcheck), a module's parameter after
    `refold()` (or train()/eval())."""
    from cnnc import kernels

    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6, device=DEVICE)
    w = torch.randn(8, 1, 3, 3, device=DEVICE)
    with torch.no_grad():
        first = kernels.conv2d(x, w, padding=1, groups=8)
        w.data.mul_(-1.0)
        assert torch.allclose(kernels.conv2d(x, w, padding=1, groups=8), -first, atol=1e-5)
        layer = runtime.Conv2d(8, 8, 3, padding=1, groups=8, bias=False).to(DEVICE).eval()
        before = layer(x)
        assert torch.allclose(before, F.conv2d(x, layer.weight, None, 1, 1, 1, 8), atol=1e-5)
        layer.weight.data.mul_(-1.0)
        layer.refold()
        assert torch.allclose(layer(x), -before, atol=1e-5)
        layer.weight.data.mul_(-1.0)
        layer.eval()
        assert torch.allclose(layer(x), before, atol=1e-5)
