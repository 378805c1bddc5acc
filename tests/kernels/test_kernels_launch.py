"""`kernels._runtime.launch`: an autotuned kernel's choice remembered per key, so that later
launches skip `Autotuner.run`; the results must be the same either way."""

import importlib

import pytest
import torch
import triton
from triton.runtime.autotuner import Autotuner

from cnnc import kernels
from kernels_testlib import DEVICE, reference_conv2d, require_triton_path

depthwise_module = importlib.import_module("cnnc.kernels.depthwise")


@pytest.fixture
def autotuner_runs(monkeypatch):
    """Counts `Autotuner.run` calls per kernel name (the route that tunes or looks up)."""
    counts = {}
    real_run = Autotuner.run

    def counting_run(self, *args, **kwargs):
        counts[self.base_fn.__name__] = counts.get(self.base_fn.__name__, 0) + 1
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(Autotuner, "run", counting_run)
    return counts


def _inputs(seed, C=6, K=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, C, 9, 7, generator=g, dtype=torch.float64).to(DEVICE)
    w = torch.randn(C, 1, K, K, generator=g, dtype=torch.float64).to(DEVICE)
    scale = (torch.rand(C, generator=g, dtype=torch.float64) + 0.5).to(DEVICE)
    return x, w, scale


def test_second_launch_skips_the_autotuner_and_agrees(autotuner_runs):
    kernel = depthwise_module.depthwise_conv2d_kernel
    kernel.__dict__.pop("_cnnc_chosen", None)  # forget earlier tests' launches
    x, w, scale = _inputs(1)
    require_triton_path(x, w, 6)
    conv = dict(padding=1, groups=6, scale=scale, activation="relu")
    with kernels.poisoned_outputs():
        first = kernels.conv2d(x, w, **conv)
        assert autotuner_runs == {"depthwise_conv2d_kernel": 1}
        x2, w2, scale2 = _inputs(2)  # same key, new data: the remembered config, not the autotuner
        second = kernels.conv2d(x2, w2, **dict(conv, scale=scale2))
    assert autotuner_runs == {"depthwise_conv2d_kernel": 1}
    for out, (xi, wi, si) in ((first, (x, w, scale)), (second, (x2, w2, scale2))):
        ref = reference_conv2d(xi, wi, (1, 1), (1, 1), (1, 1), 6, si, activation="relu")
        torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-12)
    # another key (a 5x5 filter): the autotuner again
    x3, w3, _ = _inputs(3, K=5)
    kernels.conv2d(x3, w3, padding=2, groups=6)
    assert autotuner_runs == {"depthwise_conv2d_kernel": 2}


def test_a_remembered_config_not_in_the_space_is_dropped(autotuner_runs, monkeypatch):
    """Swapping a kernel's configs (as a test replaying tuning does) must not leave launches on
    a config from the old space."""
    kernel = depthwise_module.depthwise_conv2d_kernel
    x, w, scale = _inputs(4)
    require_triton_path(x, w, 6)
    kernels.conv2d(x, w, padding=1, groups=6)
    other = triton.Config({"BLOCK_H": 4, "BLOCK_W": 4, "BLOCK_C": 8}, num_warps=4, num_stages=1)
    monkeypatch.setattr(kernel, "configs", [other])
    monkeypatch.setattr(kernel, "cache", {})
    before = autotuner_runs.get("depthwise_conv2d_kernel", 0)
    out = kernels.conv2d(x, w, padding=1, groups=6)
    assert autotuner_runs["depthwise_conv2d_kernel"] == before + 1
    assert kernel.best_config is other
    torch.testing.assert_close(out, reference_conv2d(x, w, (1, 1), (1, 1), (1, 1), 6), atol=1e-12, rtol=1e-12)


def test_a_training_step_after_the_first_runs_no_autotuner(autotuner_runs):
    """Forward, epilogue backward, input and weight gradient: every kernel of a depthwise
    training step takes the remembered route from the second step on."""
    x, w, scale = _inputs(5, K=7)
    require_triton_path(x, w, 6)
    for kernel in ("depthwise_conv2d_kernel", "depthwise_epilogue_grad_kernel", "depthwise_input_grad_kernel",
                   "depthwise_weight_grad_kernel"):
        getattr(depthwise_module, kernel).__dict__.pop("_cnnc_chosen", None)
    x.requires_grad_()
    w.requires_grad_()
    scale.requires_grad_()
    grads = []
    for step in range(2):
        out = kernels.conv2d(x, w, padding=3, groups=6, scale=scale, activation="silu")
        grads.append(torch.autograd.grad(out, [x, w, scale], torch.ones_like(out)))
        if step == 0:
            tuned = dict(autotuner_runs)
    # (7x7 at stride 1: the input gradient is the forward kernel on the flipped filter, with
    # the forward's key here, so it takes the forward's remembered config at once)
    assert set(tuned) == {"depthwise_conv2d_kernel", "depthwise_epilogue_grad_kernel",
                          "depthwise_weight_grad_kernel"}, tuned
    assert autotuner_runs == tuned
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_remembering_off_sends_every_launch_through_the_autotuner(autotuner_runs, monkeypatch):
    from cnnc.kernels import _runtime

    monkeypatch.setattr(_runtime, "REMEMBER_CONFIGS", False)
    x, w, _ = _inputs(6)
    require_triton_path(x, w, 6)
    for _ in range(3):
        kernels.conv2d(x, w, padding=1, groups=6)
    assert autotuner_runs == {"depthwise_conv2d_kernel": 3}
