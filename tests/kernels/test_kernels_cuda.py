"""Native GPU checks (marked `cuda`; skipped without a CUDA device): the benchmark layers
of ANCHORS.md §3 at small batch, wider random shapes, and gradients in fp16/fp32."""

import importlib.util
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings

from cnnc import kernels
from kernels_testlib import GRAD_TOLERANCES, assert_close_to_reference, make_inputs, reference_conv2d, require_triton_path

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (native Triton)"),
]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _bench_layers():
    spec = importlib.util.spec_from_file_location("bench_kernels", os.path.join(REPO_ROOT, "tools", "bench_kernels.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LAYERS


LAYERS = _bench_layers()


@pytest.mark.parametrize("channels_last", [True, False], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
@pytest.mark.parametrize("layer", LAYERS, ids=lambda l: l.name.replace(" ", "_"))
def test_benchmark_layer_forward(layer, dtype, channels_last):
    k = layer.kernel
    case = dict(N=2, C_in=layer.channels, C_out=layer.channels, H=layer.hw, W=layer.hw, KH=k, KW=k,
                groups=layer.groups, dtype=dtype, channels_last=channels_last,
                stride=(layer.stride,) * 2, padding=(k // 2,) * 2, dilation=(1, 1), with_scale=True,
                with_shift=True, with_residual=layer.stride == 1, scale_fp32=True, device="cuda")
    x, w, scale, shift, residual = make_inputs(**case)
    require_triton_path(x, w, layer.groups)
    conv = dict(stride=layer.stride, padding=k // 2, groups=layer.groups)
    with kernels.poisoned_outputs():
        out = kernels.conv2d(x, w, scale=scale, shift=shift, residual=residual, activation="relu", **conv)
    ref = reference_conv2d(x, w, (layer.stride,) * 2, (k // 2,) * 2, (1, 1), layer.groups, scale, shift,
                           "relu", residual)
    assert_close_to_reference(out, ref, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("layer", [l for l in LAYERS if l.kernel == 7 or l.groups != l.channels or l.stride == 2],
                         ids=lambda l: l.name.replace(" ", "_"))
def test_benchmark_layer_backward(layer, dtype):
    """Gradients against eager autograd of the same-dtype unfused block."""
    k = layer.kernel
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(2, layer.channels, layer.hw, layer.hw, device="cuda", generator=g).to(
        dtype=dtype, memory_format=torch.channels_last).requires_grad_()
    fan_in = layer.channels // layer.groups * k * k
    w = (torch.randn(layer.channels, layer.channels // layer.groups, k, k, device="cuda", generator=g)
         / fan_in ** 0.5).to(dtype).requires_grad_()
    shift = torch.randn(layer.channels, device="cuda", generator=g).requires_grad_()
    conv = dict(stride=layer.stride, padding=k // 2, groups=layer.groups)
    out = kernels.conv2d(x, w, shift=shift, activation="gelu", **conv)
    ref = torch.nn.functional.gelu(torch.nn.functional.conv2d(x, w, None, **conv) + shift.view(1, -1, 1, 1))
    go = torch.randn_like(out)
    atol, rtol = GRAD_TOLERANCES[dtype]
    got = torch.autograd.grad(out, (x, w, shift), go)
    want = torch.autograd.grad(ref, (x, w, shift), go.to(ref.dtype))
    for a, b in zip(got, want):
        assert bool(torch.isfinite(a).all())
        # relative to the gradient's scale: weight grads sum N*OH*OW terms
        torch.testing.assert_close(a.float() / b.float().abs().max(), b.float() / b.float().abs().max(),
                                   atol=atol, rtol=rtol)


# Wider random shapes than the interpreter can afford: reuse the CI strategies, more examples.
from test_kernels_forward import depthwise_cases, grouped_cases, run_case  # noqa: E402

# 100 examples: each new specialization compiles (about a second); 300 ran past 150 s on an H100.
NATIVE = settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@NATIVE
@given(depthwise_cases())
def test_depthwise_native(case):
    run_case(dict(case, device="cuda"))


@NATIVE
@given(grouped_cases())
def test_grouped_native(case):
    run_case(dict(case, device="cuda"))
