"""kernels.conv2d under torch.compile(fullgraph=True) and torch.export, and backend choice
without the interpreter."""

import os
import subprocess
import sys

import torch

import kernels
from kernels_testlib import DEVICE

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class DepthwiseBlock(torch.nn.Module):
    """What generated code looks like: conv + folded BN + activation + residual, one call."""

    def __init__(self, channels=8):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(channels, 1, 3, 3, generator=g) / 3)
        self.scale = torch.nn.Parameter(torch.rand(channels, generator=g) + 0.5)
        self.shift = torch.nn.Parameter(torch.randn(channels, generator=g))

    def forward(self, x):
        y = kernels.conv2d(x, self.weight, padding=1, groups=x.shape[1], scale=self.scale,
                           shift=self.shift, activation="silu", residual=x)
        return y * 2


def test_torch_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()
    block = DepthwiseBlock().to(DEVICE)
    x = torch.randn(2, 8, 6, 6, device=DEVICE, requires_grad=True)
    compiled = torch.compile(block, fullgraph=True)
    y = compiled(x)
    y.square().sum().backward()
    got = (x.grad.clone(), block.weight.grad.clone(), block.scale.grad.clone())
    x.grad = None
    block.zero_grad()
    y_eager = block(x)
    y_eager.square().sum().backward()
    torch.testing.assert_close(y, y_eager)
    for a, b in zip(got, (x.grad, block.weight.grad, block.scale.grad)):
        torch.testing.assert_close(a, b)


def test_torch_export_keeps_one_op():
    block = DepthwiseBlock().to(DEVICE).eval()
    x = torch.randn(2, 8, 6, 6, device=DEVICE)
    exported = torch.export.export(block, (x,))
    targets = [n.target for n in exported.graph.nodes if n.op == "call_function"]
    assert torch.ops.cnnc_kernels.conv2d.default in targets
    x2 = torch.randn(2, 8, 6, 6, device=DEVICE)
    torch.testing.assert_close(exported.module()(x2), block(x2))


def test_cpu_without_interpreter_uses_torch():
    """A CPU call in a process without TRITON_INTERPRET takes the torch fallback."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    code = ("import torch, kernels\n"
            "x = torch.randn(1, 4, 5, 5); w = torch.randn(4, 1, 3, 3)\n"
            "y = kernels.conv2d(x, w, padding=1, groups=4, activation='relu')\n"
            "ref = torch.relu(torch.nn.functional.conv2d(x, w, padding=1, groups=4))\n"
            "assert torch.allclose(y, ref, atol=1e-6)\n"
            "print(kernels.backend_for(x, w, groups=4), kernels.INTERPRET)\n")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["torch", "False"]
