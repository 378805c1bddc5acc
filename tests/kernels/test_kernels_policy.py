"""The kernel policy (`cnnc.kernels.Policy`): its forms (object, key string, JSON file, the one
environment variable), the process default, how a call's policy reaches the kernels (eager
path, the `torch.library` operators, generated modules), and that no other code reads a
CNNC_KERNELS_ variable."""

import dataclasses
import importlib
import itertools
import json
import re
from pathlib import Path

import pytest
import torch

from cnnc import kernels
from cnnc.kernels import Policy, default_policy, using_policy
from cnnc.kernels import policy as policy_module
from kernels_testlib import DEVICE, require_triton_path

conv2d_module = importlib.import_module("cnnc.kernels.conv2d")
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_defaults_and_key():
    p = Policy()
    assert (p.dw_forward, p.dw_input_grad, p.dw_wgrad, p.dw_weights, p.dispatch, p.dispatch_timing, p.cudnn_epilogue,
            p.autotune, p.interpret_cpu) == ("auto", "auto", "auto", "tap-major", "measured", "auto", "ops", True, True)
    assert p.key == "" and p.choices_key == ""
    assert all(getattr(p, name) == allowed[0]
               for name, allowed in {**policy_module.CHOICES, **policy_module.ROUTING}.items())
    # the routing fields are in the key, not in the kernel choices that autotune keys carry
    assert Policy(dispatch="triton", dw_forward="rows").choices_key == "dw_forward=rows"
    q = Policy(dw_wgrad="per-tap", autotune=False, dw_forward="rows")
    assert q.key == "autotune=false,dw_forward=rows,dw_wgrad=per-tap"  # defaults omitted, sorted
    assert q.choices_key == "dw_forward=rows,dw_wgrad=per-tap"  # what autotune keys carry
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.dw_forward = "taps"
    assert q == Policy(dw_forward="rows", dw_wgrad="per-tap", autotune=False) and hash(q) == hash(Policy.parse(q.key))


def test_parse_is_the_inverse_of_key():
    values = [("auto", "rows", "taps"), ("auto", "gather", "flipped"), ("auto", "per-tap", "tap-blocks"),
              ("tap-major", "as-is"), ("measured", "triton", "torch"), ("auto", "host", "device"), ("ops", "fused"),
              (True, False), (True, False)]
    names = [f.name for f in dataclasses.fields(Policy)]
    for combo in itertools.product(*values):
        p = Policy(**dict(zip(names, combo)))
        assert Policy.parse(p.key) == p, p.key
    assert Policy.parse(" dw_weights = as-is , autotune=false ") == Policy(dw_weights="as-is", autotune=False)


@pytest.mark.parametrize("text, message", [
    ("dw_forwrd=rows", r"unknown field dw_forwrd; the fields are dw_forward, dw_input_grad, dw_wgrad, dw_weights, "
                       r"dispatch, dispatch_timing, cudnn_epilogue, autotune, interpret_cpu"),
    ("dispatch=cudnn", r"dispatch must be one of measured, triton, torch; got 'cudnn'"),
    ("dw_forward=fast", r"dw_forward must be one of auto, rows, taps; got 'fast'"),
    ("dw_wgrad=all-taps", r"dw_wgrad must be one of auto, per-tap, tap-blocks; got 'all-taps'"),
    ("dw_weights=nchw", r"dw_weights must be one of tap-major, as-is; got 'nchw'"),
    ("autotune=0", r"autotune must be true or false; got '0'"),
    ("dw_forward=rows,dw_forward=taps", r"dw_forward given twice"),
    ("rows", r"expected name=value, got 'rows'"),
])
def test_parse_names_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        Policy.parse(text)


def test_constructor_checks_values():
    with pytest.raises(ValueError, match="dw_input_grad must be one of auto, gather, flipped; got 'fast'"):
        Policy(dw_input_grad="fast")
    with pytest.raises(ValueError, match="interpret_cpu must be true or false; got 'no'"):
        Policy(interpret_cpu="no")


def test_from_file(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"dw_forward": "taps", "autotune": False}))
    assert Policy.from_file(path) == Policy(dw_forward="taps", autotune=False)
    path.write_text(json.dumps({"dw_forwad": "taps"}))
    with pytest.raises(ValueError, match=r"policy.json: kernel policy: unknown field dw_forwad"):
        Policy.from_file(path)
    path.write_text("[1]")
    with pytest.raises(ValueError, match="expected a JSON object of fields, got list"):
        Policy.from_file(path)


def test_from_environment(tmp_path):
    assert Policy.from_environment({}) == Policy()
    assert Policy.from_environment({"CNNC_KERNELS_POLICY": "dw_wgrad=tap-blocks"}) == Policy(dw_wgrad="tap-blocks")
    path = tmp_path / "p.json"
    path.write_text('{"dw_weights": "as-is"}')
    assert Policy.from_environment({"CNNC_KERNELS_POLICY": f"@{path}"}) == Policy(dw_weights="as-is")
    with pytest.raises(ValueError, match=r"^CNNC_KERNELS_POLICY='dw_forward=fast': .*dw_forward must be one of"):
        Policy.from_environment({"CNNC_KERNELS_POLICY": "dw_forward=fast"})
    with pytest.raises(ValueError, match=r"^CNNC_KERNELS_POLICY='@/nonexistent.json': "):
        Policy.from_environment({"CNNC_KERNELS_POLICY": "@/nonexistent.json"})


def test_retired_variables_are_refused_not_ignored():
    with pytest.raises(ValueError, match=r"CNNC_KERNELS_DW_FORWARD is no longer read: set "
                                         r"CNNC_KERNELS_POLICY=dw_forward=<auto\|rows\|taps>"):
        Policy.from_environment({"CNNC_KERNELS_DW_FORWARD": "rows"})
    with pytest.raises(ValueError, match=r"CNNC_KERNELS_AUTOTUNE is no longer read: set CNNC_KERNELS_POLICY=autotune="
                                         r"false; CNNC_KERNELS_CPU is no longer read: set "
                                         r"CNNC_KERNELS_POLICY=interpret_cpu=false"):
        Policy.from_environment({"CNNC_KERNELS_CPU": "torch", "CNNC_KERNELS_AUTOTUNE": "0"})
    with pytest.raises(ValueError, match=r"CNNC_KERNELS_REMEMBER is no longer read: configs are always remembered"):
        Policy.from_environment({"CNNC_KERNELS_REMEMBER": "0"})
    with pytest.raises(ValueError, match=r"CNNC_KERNELS_POLCY is no longer read: the one kernel variable is "
                                         r"CNNC_KERNELS_POLICY"):
        Policy.from_environment({"CNNC_KERNELS_POLCY": "autotune=false"})


def test_default_policy_is_built_once_and_using_policy_overrides_it(monkeypatch):
    monkeypatch.setattr(policy_module, "_default", None)
    monkeypatch.setattr(policy_module, "_override", None)
    monkeypatch.setenv("CNNC_KERNELS_POLICY", "dw_forward=taps")
    first = default_policy()
    assert first == Policy(dw_forward="taps")
    monkeypatch.setenv("CNNC_KERNELS_POLICY", "dw_forward=rows")  # read once: no effect now
    assert default_policy() is first
    with using_policy("dw_weights=as-is") as inner:
        assert default_policy() is inner and inner == Policy(dw_weights="as-is")
        with using_policy(Policy(autotune=False)):
            assert default_policy() == Policy(autotune=False)
        assert default_policy() is inner
    assert default_policy() is first


def test_conv2d_takes_a_policy_a_key_or_none():
    x, w = torch.randn(1, 4, 5, 5, device=DEVICE), torch.randn(4, 1, 3, 3, device=DEVICE)
    assert kernels.backend_for(x, w, 4) == "triton"
    assert kernels.backend_for(x, w, 4, policy="interpret_cpu=false") == ("torch" if DEVICE == "cpu" else "triton")
    with using_policy(Policy(interpret_cpu=False)):
        assert kernels.kernel_for(x, w, 4) == ("torch" if DEVICE == "cpu" else "depthwise")
    ref = kernels.conv2d(x, w, padding=1, groups=4)
    torch.testing.assert_close(kernels.conv2d(x, w, padding=1, groups=4, policy="dw_weights=as-is"), ref)
    with pytest.raises(TypeError, match="^policy: expected a kernels Policy, a policy string or None, got dict"):
        kernels.conv2d(x, w, padding=1, groups=4, policy={"dw_forward": "rows"})
    with pytest.raises(ValueError, match="dw_forward must be one of"):
        kernels.conv2d(x, w, padding=1, groups=4, policy="dw_forward=fast")


@pytest.fixture
def policies_seen(monkeypatch):
    """The policy each depthwise launcher receives, in order: (launcher, Policy)."""
    seen = []
    for name in ("depthwise_conv2d", "depthwise_epilogue_grad", "depthwise_conv2d_input_grad",
                 "depthwise_conv2d_weight_grad"):
        real = getattr(conv2d_module, name)

        def spy(*args, _name=name, _real=real, **kwargs):
            policy = kwargs["policy"] if "policy" in kwargs else args[-1]
            seen.append((_name, policy))
            return _real(*args, **kwargs)

        monkeypatch.setattr(conv2d_module, name, spy)
    return seen


@pytest.mark.parametrize("route", ["eager", "operator"])
def test_the_policy_reaches_every_kernel_of_a_training_step(route, policies_seen):
    """Forward, epilogue backward, input and weight gradient all run under the call's policy,
    whether `kernels.conv2d` calls the bodies (eager path) or the registered operators, which
    carry the policy as its key string through autograd."""
    chosen = Policy(dw_forward="taps", dw_input_grad="gather", dw_wgrad="per-tap")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 6, 5, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    w = torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    scale = (torch.rand(4, generator=g, dtype=torch.float64) + 0.5).to(DEVICE).requires_grad_()
    require_triton_path(x, w, 4)
    if route == "eager":
        out = kernels.conv2d(x, w, padding=1, groups=4, scale=scale, activation="silu", policy=chosen)
    else:
        out = torch.ops.cnnc_kernels.conv2d(x, w, [1, 1], [1, 1], [1, 1], 4, scale, None, "silu", None, chosen.key)
    torch.autograd.grad(out, [x, w, scale], torch.ones_like(out))
    assert [name for name, _ in policies_seen] == ["depthwise_conv2d", "depthwise_epilogue_grad",
                                                   "depthwise_conv2d_input_grad", "depthwise_conv2d_weight_grad"]
    assert all(p == chosen for _, p in policies_seen), policies_seen


def test_generated_modules_take_a_policy(monkeypatch):
    """`cnnc.compile(..., kernel_policy=...)` gives every Conv2d / FusedConv2d the policy, which
    their `kernels.conv2d` and `kernels.folded_conv2d` calls pass on; state_dict and generated
    source are unchanged."""
    pytest.importorskip("lark")
    import cnnc
    import cnnc.api
    from cnnc.backends import runtime

    spec = REPO_ROOT / "tests" / "specs" / "codegen_tiny.cnn"
    plain = cnnc.compile(spec, fused=True)
    net = cnnc.compile(spec, fused=True, kernel_policy="dw_forward=taps")
    layers = [m for m in net.modules() if isinstance(m, (runtime.Conv2d, runtime.FusedConv2d))]
    assert layers and all(m.kernel_policy == Policy(dw_forward="taps") for m in layers)
    assert all(m.kernel_policy is None for m in plain.modules() if isinstance(m, (runtime.Conv2d, runtime.FusedConv2d)))
    assert list(net.state_dict()) == list(plain.state_dict())
    assert "kernel_policy" not in cnnc.api.generate_source(spec, fused=True).source
    seen = []
    real = kernels.kernel_for  # the layers ask it which kernel their policy gives (runtime.choose_conv_impl)
    monkeypatch.setattr(runtime.kernels, "kernel_for", lambda *a, **k: seen.append(k["policy"]) or real(*a, **k))
    net.load_state_dict(plain.state_dict())
    with using_policy(Policy(interpret_cpu=False)):  # whole models on the torch path (the interpreter is slow)
        x = torch.randn(1, 3, 32, 32)
        with torch.no_grad():
            net.eval()(x)
        assert seen and all(p == Policy(dw_forward="taps") for p in seen)
        assert runtime.set_kernel_policy(net, None) is net and all(m.kernel_policy is None for m in layers)
    with pytest.raises(ValueError, match="dw_wgrad must be one of"):
        runtime.set_kernel_policy(net, "dw_wgrad=fast")


# ---------------------------------------------------------------------------
# No CNNC_KERNELS_ variable is read outside `Policy.from_environment`
# ---------------------------------------------------------------------------
SCANNED = ("cnnc", "tools", "tests")
EXEMPT = {"cnnc/kernels/policy.py", "tests/kernels/test_kernels_policy.py"}  # the constructor and its tests
ANY_VARIABLE = re.compile(r"CNNC_KERNELS_\w+")
# a read: os.environ.get / .pop / .setdefault / [...], os.getenv, a shell expansion
READ = re.compile(r"environ\s*(\.get|\.pop|\.setdefault|\[)|getenv|\$\{?CNNC_KERNELS_")


def test_no_kernel_variable_is_read_outside_the_policy():
    """Scans cnnc/, tools/ and tests/: the only CNNC_KERNELS_ variable named anywhere is
    CNNC_KERNELS_POLICY, and nothing but the policy module reads it (tools and tests may set it
    for a process they start, never read it)."""
    offences = []
    for top in SCANNED:
        for path in sorted((REPO_ROOT / top).rglob("*")):
            rel = path.relative_to(REPO_ROOT).as_posix()
            if path.suffix not in (".py", ".sh") or rel in EXEMPT:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                names = set(ANY_VARIABLE.findall(line))
                if names - {"CNNC_KERNELS_POLICY"} or (names and READ.search(line)):
                    offences.append(f"{rel}:{number}: {line.strip()}")
    assert not offences, "\n".join(offences)
