"""Property test of the weight importer's reordering (cnnc/backends/weights.py).

A foreign state_dict is made from a cnnc module's own state_dict by permuting, at random, the
entries (tensors and child modules) of every module among themselves: registration orders a
reference could have used. The importer must then put every tensor back where it belongs, and
warn exactly when it had to move something.

What the importer cannot know is excluded by construction: entries that hold the same shapes
(in any order: a module's contents may be reordered too) are interchangeable to it, so the
generated permutations keep those in their relative order; and a permutation whose flattened
shape sequence equals the original one, which the plain order would accept, is not generated
(only names could tell it apart).
"""
import warnings

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import cnnc  # noqa: E402
from cnnc.backends.weights import fit_key  # noqa: E402
from cnnc_testlib import TEST_SPECS  # noqa: E402

TINY = TEST_SPECS / "codegen_tiny.cnn"


def _tree(names):
    """{"": [entries]} where an entry is a tensor name or a (prefix, entries) module, in order."""
    root: list = []
    modules = {"": root}
    for name in names:
        parts = name.split(".")
        for depth in range(1, len(parts)):
            prefix = ".".join(parts[:depth])
            if prefix not in modules:
                modules[prefix] = []
                modules[".".join(parts[:depth - 1])].append((prefix, modules[prefix]))
        modules[".".join(parts[:-1])].append(name)
    return root


def _flat(entry):
    return [entry] if isinstance(entry, str) else [n for e in entry[1] for n in _flat(e)]


@st.composite
def reorderings(draw, state):
    """A permuted key order of `state`: within every module, a random permutation in which
    entries holding the same multiset of fit keys keep their relative order."""
    def permute(entries):
        entries = [e if isinstance(e, str) else (e[0], permute(e[1])) for e in entries]
        order = draw(st.permutations(range(len(entries))))
        sig = [tuple(sorted(fit_key(state[n]) for n in _flat(e))) for e in entries]
        # stable by signature: the k-th entry of a signature in `order` is its k-th in the input
        pending = {s: [i for i in range(len(entries)) if sig[i] == s] for s in set(sig)}
        return [entries[pending[sig[i]].pop(0)] for i in order]

    return [n for e in permute(_tree(list(state))) for n in _flat(e)]


MODEL = cnnc.compile(TINY)
STATE = {k: torch.randn(v.shape) if v.is_floating_point() else v for k, v in MODEL.state_dict().items()}


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(reorderings(STATE))
def test_any_reordering_within_modules_is_undone(keys):
    original = list(STATE)
    moved = keys != original
    plain_fits = [fit_key(STATE[a]) for a in keys] == [fit_key(STATE[b]) for b in original]
    assume(not (moved and plain_fits))  # the plain order would be accepted: ambiguous by shapes alone
    event("reordered" if moved else "as given")
    foreign = {f"ref.{k}": STATE[k] for k in keys}  # names play no part, only their module structure
    target = cnnc.compile(TINY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", cnnc.ReorderedWeights)
        cnnc.import_weights(target, foreign)
    for name, tensor in target.state_dict().items():
        assert torch.equal(tensor, STATE[name]), name
    assert any(issubclass(w.category, cnnc.ReorderedWeights) for w in caught) == moved


# ---------------------------------------------------------------------------
# Names' roles: equal shapes alone do not pair a bias with a weight
# ---------------------------------------------------------------------------
def _conv_bn(seed):
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 4))
    with torch.no_grad():
        for t in (m[1].weight, m[1].bias, m[1].running_mean, m[1].running_var):
            t.copy_(torch.rand(4) + 0.5)  # four distinct [4] tensors
    return m


def test_sorted_keys_land_by_their_names():
    """A state_dict whose keys were sorted (BatchNorm's `bias` before its `weight`): every
    BatchNorm tensor has the same shape, so only the names can put them back."""
    from cnnc.backends.weights import ReorderedWeights

    src = _conv_bn(0).state_dict()
    foreign = {f"ref.{k}": t for k, t in sorted(src.items())}  # names that are not the module's own
    assert list(foreign)[1:3] == ["ref.1.bias", "ref.1.num_batches_tracked"]
    dst = _conv_bn(1)
    with pytest.warns(ReorderedWeights):
        cnnc.import_weights(dst, foreign)
    for name, t in src.items():
        assert torch.equal(dst.state_dict()[name], t), name
    dst = _conv_bn(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the module's own names pair by name: nothing is reordered
        cnnc.import_weights(dst, dict(sorted(src.items())))
    for name, t in src.items():
        assert torch.equal(dst.state_dict()[name], t), name


def test_other_names_still_pair_by_shape():
    """Names outside torch's five (`gamma`, `beta`, as converted checkpoints have) pair with
    anything of their shape, in order."""
    src = _conv_bn(0).state_dict()
    renames = {"1.weight": "1.gamma", "1.bias": "1.beta"}
    foreign = {renames.get(k, k): t for k, t in src.items()}
    dst = _conv_bn(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing moves
        cnnc.import_weights(dst, foreign)
    for name, t in src.items():
        assert torch.equal(dst.state_dict()[name], t), name


def test_contradicting_roles_are_a_located_misfit():
    dst = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    before = {k: t.clone() for k, t in dst.state_dict().items()}
    foreign = {"conv.weight": torch.randn(4, 3, 3, 3), "conv.running_mean": torch.randn(4)}
    with pytest.raises(cnnc.CnncError, match=r"tensor #1 'conv.running_mean' \[4\] in the weights, '0.bias' \[4\] "
                                             r"in the module \(a running_mean where a bias belongs\)"):
        cnnc.import_weights(dst, foreign)
    for name, t in dst.state_dict().items():
        assert torch.equal(t, before[name]), "nothing may be loaded"
