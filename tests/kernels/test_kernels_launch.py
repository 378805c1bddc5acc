"""`kernels._runtime.launch`: an autotuned kernel's choice remembered per key, so that later
launches skip `Autotuner.run` (the results must be the same either way); autotune keys that
hold everything that changes the compiled kernel, the kernel policy and the device, so that
two variants of a kernel on one shape never share a tuned config."""

import importlib
import inspect

import pytest
import torch
import triton
import triton.language as tl
from triton.runtime.autotuner import Autotuner

from cnnc import kernels
from cnnc.kernels import Policy, _runtime
from cnnc.kernels.epilogue import ACT_CODES
from kernels_testlib import DEVICE, policy, reference_conv2d, require_triton_path

depthwise_module = importlib.import_module("cnnc.kernels.depthwise")
grouped_module = importlib.import_module("cnnc.kernels.grouped")
AUTOTUNED = {obj.base_fn.__name__: obj for module in (depthwise_module, grouped_module)
             for obj in vars(module).values() if isinstance(obj, Autotuner)}


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


@pytest.mark.slow
def test_second_launch_skips_the_autotuner_and_agrees(autotuner_runs):
    kernel = depthwise_module.depthwise_conv2d_kernel
    kernel.__dict__.pop("_cnnc_chosen", None)  # forget earlier tests' launches
    x, w, scale = _inputs(1)
    require_triton_path(x, w, 6)
    tuned = policy(autotune=True)  # (a native test run may have autotuning off)
    conv = dict(padding=1, groups=6, scale=scale, activation="relu", policy=tuned)
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
    kernels.conv2d(x3, w3, padding=2, groups=6, policy=tuned)
    assert autotuner_runs == {"depthwise_conv2d_kernel": 2}


def test_a_remembered_config_not_in_the_space_is_dropped(autotuner_runs, monkeypatch):
    """Swapping a kernel's configs (as a test replaying tuning does) must not leave launches on
    a config from the old space."""
    kernel = depthwise_module.depthwise_conv2d_kernel
    x, w, scale = _inputs(4)
    require_triton_path(x, w, 6)
    tuned = policy(autotune=True)
    kernels.conv2d(x, w, padding=1, groups=6, policy=tuned)
    other = triton.Config({"BLOCK_H": 4, "BLOCK_W": 4, "BLOCK_C": 8}, num_warps=4, num_stages=1)
    monkeypatch.setattr(kernel, "configs", [other])
    monkeypatch.setattr(kernel, "cache", {})
    before = autotuner_runs.get("depthwise_conv2d_kernel", 0)
    out = kernels.conv2d(x, w, padding=1, groups=6, policy=tuned)
    assert autotuner_runs["depthwise_conv2d_kernel"] == before + 1
    assert kernel.best_config is other
    torch.testing.assert_close(out, reference_conv2d(x, w, (1, 1), (1, 1), (1, 1), 6), atol=1e-12, rtol=1e-12)


@pytest.mark.slow
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
        out = kernels.conv2d(x, w, padding=3, groups=6, scale=scale, activation="silu", policy=policy(autotune=True))
        grads.append(torch.autograd.grad(out, [x, w, scale], torch.ones_like(out)))
        if step == 0:
            tuned = dict(autotuner_runs)
    # (7x7 at stride 1: the input gradient is the forward kernel on the flipped filter, without
    # scale or activation: a variant of its own, tuned once like the others)
    assert tuned == {"depthwise_conv2d_kernel": 2, "depthwise_epilogue_grad_kernel": 1,
                     "depthwise_weight_grad_kernel": 1}, tuned
    assert autotuner_runs == tuned
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.slow
def test_untimed_policy_takes_the_first_pruned_config_without_the_autotuner(autotuner_runs, monkeypatch):
    """autotune=false: no `Autotuner.run` at all; the first config of the space after the kernel's
    own pruning, which puts the untimed preference first (the weight gradient of a 7x7 filter:
    a tap block)."""
    kernel = depthwise_module.depthwise_conv2d_kernel
    first = triton.Config({"BLOCK_H": 4, "BLOCK_W": 4, "BLOCK_C": 8}, num_warps=4, num_stages=1)
    second = triton.Config({"BLOCK_H": 8, "BLOCK_W": 8, "BLOCK_C": 16}, num_warps=4, num_stages=1)
    monkeypatch.setattr(kernel, "configs", [first, second])
    monkeypatch.setattr(kernel, "cache", {})
    x, w, scale = _inputs(7, K=7)
    require_triton_path(x, w, 6)
    untimed = policy(autotune=False)
    x.requires_grad_()
    w.requires_grad_()
    out = kernels.conv2d(x, w, padding=3, groups=6, policy=untimed)
    assert kernel.best_config is first
    gx, gw = torch.autograd.grad(out, [x, w], torch.ones_like(out))
    assert autotuner_runs == {}
    assert depthwise_module.depthwise_weight_grad_kernel.best_config.kwargs["TAP_BLOCK"] > 1
    torch.testing.assert_close(out, reference_conv2d(x, w, (1, 1), (3, 3), (1, 1), 6), atol=1e-12, rtol=1e-12)
    x64, w64 = x.detach().requires_grad_(), w.detach().requires_grad_()
    ref = torch.nn.functional.conv2d(x64, w64, None, 1, 3, 1, 6)
    for got, want in zip((gx, gw), torch.autograd.grad(ref, [x64, w64], torch.ones_like(ref))):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


# ---------------------------------------------------------------------------
# Autotune keys: everything that changes the compiled kernel, the policy and the device
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(AUTOTUNED))
def test_every_constexpr_is_in_the_autotune_key(name):
    """Every constexpr parameter of an autotuned kernel that no config sets is in its autotune
    key, TUNING (the policy and the device) among them: derived from the kernels themselves,
    so a constexpr added later cannot be forgotten."""
    kernel = AUTOTUNED[name]
    params = inspect.signature(kernel.base_fn).parameters
    constexprs = {n for n, p in params.items() if p.annotation is tl.constexpr}
    meta = {n for config in kernel.configs for n in config.kwargs}
    assert "TUNING" in constexprs
    assert not constexprs - meta - set(kernel.keys), f"not in {name}'s autotune key"
    assert set(kernel.keys) <= set(params)


def _two_config_space(kernel, monkeypatch, winner):
    """`kernel` with a space of two configs (a, b) and a benchmark that times nothing:
    `winner(config, meta)` says whether a config is the fastest for a launch's arguments.
    Returns (a, b) and the list of (config, meta) benchmarked."""
    a = triton.Config({"BLOCK_H": 8, "BLOCK_W": 8, "BLOCK_C": 16}, num_warps=4, num_stages=1)
    b = triton.Config({"BLOCK_H": 4, "BLOCK_W": 4, "BLOCK_C": 8}, num_warps=4, num_stages=1)
    benched = []

    def bench(*args, config, **meta):
        benched.append((config, meta))
        return [0.0 if winner(config, meta) else 1.0] * 3

    monkeypatch.setattr(kernel, "configs", [a, b])
    monkeypatch.setattr(kernel, "cache", {})
    monkeypatch.setattr(kernel, "_bench", bench)
    monkeypatch.setattr(kernel, "_cnnc_chosen", {}, raising=False)
    return a, b, benched


def _tune_two_variants(kernel, monkeypatch, variants, winner):
    """Launch each of `variants` (kernels.conv2d keyword arguments) on one shape, with `kernel`'s
    space of two configs; returns the configs that ran, and checks each result."""
    a, b, benched = _two_config_space(kernel, monkeypatch, winner)
    x, w, _ = _inputs(8, C=16)
    require_triton_path(x, w, 16)
    ran = []
    for variant in variants:
        out = kernels.conv2d(x, w, padding=1, groups=16, **variant)
        ran.append(kernel.best_config)
        torch.testing.assert_close(out, reference_conv2d(x, w, (1, 1), (1, 1), (1, 1), 16,
                                                         activation=variant.get("activation")),
                                   atol=1e-12, rtol=1e-12)
    return (a, b), ran, benched


@pytest.mark.slow
def test_two_variants_on_one_shape_get_their_own_configs(monkeypatch):
    """Two variants of the forward kernel on one shape, relu and no activation: each is tuned and
    gets its own best config. With the keys before the fix (no ACT, HAS_*, ... in them) the
    second variant took the first one's config without tuning; the same test with that key list
    shows it, so the test can tell."""
    kernel = depthwise_module.depthwise_conv2d_kernel
    tuned = policy(autotune=True)
    variants = [dict(activation="relu", policy=tuned), dict(activation=None, policy=tuned)]

    def winner(config, meta):  # a wins with relu, b without
        return (config.kwargs["BLOCK_H"] == 8) == (meta["ACT"] == ACT_CODES["relu"])

    (a, b), ran, benched = _tune_two_variants(kernel, monkeypatch, variants, winner)
    assert ran == [a, b]
    assert len(benched) == 4  # both variants tuned, two configs each
    assert len(kernel.cache) == 2

    old_key = ["C_out", "OH", "OW", "KH", "KW", "STRIDE_H", "STRIDE_W", "MULT", "CHANNELS_LAST"]
    monkeypatch.setattr(kernel, "keys", old_key)
    monkeypatch.delitem(kernel.__dict__, "_cnnc_key_of")  # the launch key follows kernel.keys
    (a, b), ran, benched = _tune_two_variants(kernel, monkeypatch, variants, winner)
    assert ran == [a, a] and len(benched) == 2, "the old keys: the second variant reused the first one's config"


@pytest.mark.slow
def test_two_policies_on_one_shape_get_their_own_configs(monkeypatch):
    """The same call under two policies that differ only in the filter operand's layout (same
    constexprs: the difference reaches the key only through TUNING): two tuning entries, each
    with its own best config."""
    kernel = depthwise_module.depthwise_conv2d_kernel
    tap_major, as_is = policy(autotune=True, dw_weights="tap-major"), policy(autotune=True, dw_weights="as-is")

    def winner(config, meta):  # a wins for the tap-major copy, b for torch's layout
        return (config.kwargs["BLOCK_H"] == 8) == ("dw_weights=as-is" not in meta["TUNING"])

    (a, b), ran, benched = _tune_two_variants(kernel, monkeypatch, [dict(policy=tap_major), dict(policy=as_is)],
                                              winner)
    assert ran == [a, b] and len(benched) == 4
    keys = list(kernel.cache)
    assert len(keys) == 2
    differ = [i for i, (u, v) in enumerate(zip(*keys)) if u != v]
    assert [kernel.keys[i] for i in differ] == ["TUNING"], keys  # nothing else told them apart
    device = torch.empty(0, device=DEVICE).device
    assert {key[differ[0]] for key in keys} == {_runtime.tuning_tag(p, device) for p in (tap_major, as_is)}
    assert {key[1] for key in kernel._cnnc_chosen} == {tap_major.key, as_is.key}


def test_tuning_tag_and_remembered_configs_name_the_device():
    device = torch.device(DEVICE) if DEVICE == "cpu" else torch.device("cuda", torch.cuda.current_device())
    where = "cpu-interpreter" if DEVICE == "cpu" else torch.cuda.get_device_name(device)
    assert _runtime.tuning_tag(Policy(), device) == where
    assert _runtime.tuning_tag(Policy(autotune=False, interpret_cpu=False), device) == where  # switches: no
    assert _runtime.tuning_tag(Policy(dw_forward="rows", dw_weights="as-is"), device) == (
        f"{where} dw_forward=rows,dw_weights=as-is")
    x, w, _ = _inputs(9)
    kernels.conv2d(x, w, padding=1, groups=6)
    chosen = depthwise_module.depthwise_conv2d_kernel._cnnc_chosen
    assert chosen and all(key[2] == x.device for key in chosen)
