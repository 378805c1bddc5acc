"""No silent wrong numbers: layernorm on any rank, and weight import (cnnc/backends/weights.py)
that refuses shuffled or swapped mappings, tensors that cannot be weights and corrupted files,
and that is all or nothing."""
import copy
import functools
import struct
import warnings
import zipfile

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import cnnc  # noqa: E402
from cnnc.backends.weights import load_file  # noqa: E402
from cnnc_testlib import SPECS  # noqa: E402


# ---- layernorm ---------------------------------------------------------------------------------
def _layernorm_reference(x, weight, bias, eps):
    """Normalise over dim 1, by the formula, in float64."""
    x = x.double()
    mean = x.mean(dim=1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=1, keepdim=True)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return (x - mean) / torch.sqrt(var + eps) * weight.double().view(shape) + bias.double().view(shape)


@pytest.mark.parametrize("dims", [(4, 7), (4, 3, 5), (6,)], ids=["CxL", "CxHxW", "F"])
def test_layernorm_normalises_the_channels_whatever_the_rank(dims):
    spec = f"network n() {{\n    output o = input({', '.join(map(str, dims))}) -> layernorm(eps=0.001)\n}}\n"
    model = cnnc.compile(spec).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p))
    x = torch.randn(3, *dims, dtype=torch.float64) * 3 + 1
    ln = next(m for m in model.modules() if isinstance(m, torch.nn.LayerNorm))
    assert tuple(ln.weight.shape) == (dims[0],)
    expected = _layernorm_reference(x, ln.weight, ln.bias, 0.001)
    torch.testing.assert_close(model(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dims", [(3, 3), (3, 5), (3, 4, 4), (6,)], ids=["CxC", "CxL", "CxHxW", "F"])
def test_layerscale_scales_the_channels_whatever_the_rank(dims):
    """A CxL input once had its weight (C,) broadcast over L: wrong where C == L, an error otherwise."""
    model = cnnc.compile(f"network n() {{\n    output o = input({', '.join(map(str, dims))}) -> layerscale(0.5)\n}}\n")
    weight = torch.arange(1.0, dims[0] + 1)
    with torch.no_grad():
        model.layerscale1.copy_(weight.view(model.layerscale1.shape))
    x = torch.randn(2, *dims)
    expected = x * weight.view((1, -1) + (1,) * (len(dims) - 1))
    torch.testing.assert_close(model(x), expected, rtol=0, atol=0)


# ---- tensors that are not weights ------------------------------------------------------------------
def _tiny():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))


def _snapshot(module):
    return {k: t.detach().clone() for k, t in module.state_dict().items()}


def _assert_unchanged(module, before):
    after = module.state_dict()
    assert list(after) == list(before)
    for k, t in after.items():
        assert torch.equal(t, before[k]), f"{k} changed"


BAD_TENSORS = {
    "int": (lambda t: t.to(torch.int32), "an integer tensor (torch.int32)"),
    "bool": (lambda t: t > 0, "a bool tensor"),
    "complex": (lambda t: t.to(torch.complex64), "a complex tensor (torch.complex64)"),
    "sparse": (lambda t: t.to_sparse(), "a sparse tensor (torch.sparse_coo)"),
    "meta": (lambda t: t.to("meta"), "a meta tensor (it holds no values)"),
    "nan": (lambda t: t.index_fill(0, torch.tensor([1]), float("nan")), "a tensor holding nan values"),
    "inf": (lambda t: t.index_fill(0, torch.tensor([0]), float("-inf")), "a tensor holding -inf values"),
}


@pytest.mark.parametrize("kind", list(BAD_TENSORS))
def test_tensors_that_cannot_be_weights_are_refused_and_nothing_is_loaded(kind):
    make, what = BAD_TENSORS[kind]
    src = _tiny().state_dict()
    foreign = {k: (make(t) if k == "1.running_mean" else t.clone()) for k, t in src.items()}
    dst = _tiny()
    before = _snapshot(dst)
    with pytest.raises(cnnc.CnncError) as info:
        cnnc.import_weights(dst, foreign)
    assert info.value.message == (f"weights: '1.running_mean' is {what}; weights must be dense, finite "
                                  "floating-point tensors; nothing was loaded")
    _assert_unchanged(dst, before)


def test_one_meta_tensor_among_many_loads_nothing():
    """The audit's case: a resnet18 state_dict with one meta tensor, late in the order."""
    model, foreign = _resnet18_pair()
    foreign["stage4.1.bn2.weight"] = foreign["stage4.1.bn2.weight"].to("meta")
    before = _snapshot(model)
    with pytest.raises(cnnc.CnncError, match="'stage4.1.bn2.weight' is a meta tensor"):
        cnnc.import_weights(model, foreign)
    _assert_unchanged(model, before)


def test_a_failure_while_loading_puts_everything_back(monkeypatch):
    """Whatever fails inside load_state_dict (here: the 20th tensor copied), every parameter and
    buffer is as it was before the import."""
    model, foreign = _resnet18_pair()
    before = _snapshot(model)
    copies = []
    real = torch.Tensor.copy_

    def failing_copy(self, src, *args, **kw):
        copies.append(1)
        if len(copies) == 20:
            raise RuntimeError("out of memory (simulated)")
        return real(self, src, *args, **kw)

    monkeypatch.setattr(torch.Tensor, "copy_", failing_copy)
    with pytest.raises(RuntimeError, match="simulated"):
        cnnc.import_weights(model, foreign)
    monkeypatch.undo()
    _assert_unchanged(model, before)


# ---- shuffled and swapped mappings -------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _resnet18_once():
    torch.manual_seed(0)
    return cnnc.compile(SPECS / "resnet18.cnn"), {_foreign(k): t for k, t in torchvision.models.resnet18().state_dict().items()}


def _foreign(key: str) -> str:
    """torchvision's name under another scheme (`layer1.0.conv1` -> `stage1.0.conv1`): cnnc's
    resnet18 has torchvision's names, which would pair by name; these pair by order and numbers."""
    return key.replace("layer", "stage", 1)


def _resnet18_pair():
    """A fresh cnnc resnet18 and torchvision's resnet18 state_dict under foreign names (built once
    per session)."""
    model, state = _resnet18_once()
    return copy.deepcopy(model), dict(state)


def _move(state, first, second):
    """The state_dict with the entries under prefix `first` moved to just after those under `second`."""
    moved = {k: t for k, t in state.items() if k.startswith(first + ".")}
    rest = [(k, t) for k, t in state.items() if k not in moved]
    last = max(i for i, (k, _) in enumerate(rest) if k.startswith(second + "."))
    return dict(rest[:last + 1] + list(moved.items()) + rest[last + 1:])


SWAPS = {  # a same-shape swap in the state_dict's order -> the two entries the refusal names
    "blocks": (lambda s: _move(s, "stage1.0", "stage1.1"), "stage1.1", "stage1.0"),
    "convs": (lambda s: _swap_keys(s, "stage1.0.conv1.weight", "stage1.0.conv2.weight"), "stage1.0.conv2",
              "stage1.0.conv1"),
    "interleaved": (lambda s: _swap_keys(s, "stage1.0.conv2.weight", "stage1.1.conv2.weight"), "stage1.1.conv2",
                    "stage1.1.conv1"),
}


@pytest.mark.parametrize("swap", list(SWAPS))
def test_swapped_same_shape_entries_are_refused_naming_both(swap):
    """Two blocks (or convs) of the same shapes listed the other way round: the order alone would
    pair them crosswise, and shapes cannot tell; the numbers in their names can."""
    model, state = _resnet18_pair()
    make, first, second = SWAPS[swap]
    before = _snapshot(model)
    with pytest.raises(cnnc.CnncError) as info:
        cnnc.import_weights(model, make(state))
    assert info.value.message == (f"weights are out of order: '{first}' is listed before '{second}', and both fit "
                                  "the same places, so which goes where cannot be told (a state_dict lists tensors "
                                  "as the model registers them; this one was shuffled or sorted); nothing was loaded")
    _assert_unchanged(model, before)


def _swap_keys(state, a, b):
    """The same tensors, with the positions of keys a and b in the order exchanged."""
    keys = list(state)
    i, j = keys.index(a), keys.index(b)
    keys[i], keys[j] = keys[j], keys[i]
    return {k: state[k] for k in keys}


def test_names_that_contradict_the_order_are_refused():
    """Unnumbered siblings of one shape (`left`, `right`) swapped in a state_dict whose names
    share the module's structure: the names say which is which."""
    spec = ("network n() {\n    x = input(3, 6, 6)\n    a = x -> conv(4, 3, padding=1) as left\n"
            "    b = x -> conv(4, 3, padding=1) as right\n    output o = a + b\n}\n")
    src, dst = cnnc.compile(spec), cnnc.compile(spec)
    state = {f"model.{k}": t for k, t in src.state_dict().items()}
    swapped = {k: state[k] for k in ["model.right.weight", "model.right.bias", "model.left.weight", "model.left.bias"]}
    before = _snapshot(dst)
    with pytest.raises(cnnc.CnncError) as info:
        cnnc.import_weights(dst, swapped)
    assert info.value.message == ("weights contradict their names: 'model.right.weight' would load into "
                                  "'left.weight', but both sides have 'right' and 'left' side by side (shuffled or "
                                  "swapped entries?); nothing was loaded")
    _assert_unchanged(dst, before)
    cnnc.import_weights(dst, state)  # in order: loads
    for k, t in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], t)


def test_the_modules_own_names_pair_by_name_in_any_order():
    model, _ = _resnet18_pair()
    src, _ = _resnet18_pair()
    with torch.no_grad():
        for p in src.parameters():
            p.copy_(torch.randn_like(p))
    state = src.state_dict()
    shuffled = {k: state[k] for k in sorted(state, key=lambda k: hash(k) % 997)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cnnc.import_weights(model, shuffled)
    for k, t in state.items():
        assert torch.equal(model.state_dict()[k], t), k


def test_interleaved_modules_are_regrouped_by_name():
    """Two same-shape tensors of different blocks exchanged in the order (layer3.0.conv2 and
    layer3.1.conv1): a module's tensors belong together whatever the order they come in, so each
    lands in its own block (the order alone would have paired them crosswise)."""
    model, state = _resnet18_pair()
    with pytest.warns(cnnc.ReorderedWeights):
        cnnc.import_weights(model, _swap_keys(state, "stage3.0.conv2.weight", "stage3.1.conv1.weight"))
    assert torch.equal(model.state_dict()["layer3.0.conv2.weight"], state["stage3.0.conv2.weight"])
    assert torch.equal(model.state_dict()["layer3.1.conv1.weight"], state["stage3.1.conv1.weight"])


# ---- weight files ------------------------------------------------------------------------------------
def test_a_corrupted_archive_is_refused(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"a": torch.randn(64)}, path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(next(n for n in z.namelist() if n.endswith("data/0")))
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + 17] ^= 0x40  # one bit of one float
    path.write_bytes(bytes(data))
    with pytest.raises(cnnc.CnncError) as err:
        load_file(path)
    assert err.value.message == (f"cannot read weights '{path}': the archive is corrupted (the checksum of "
                                 f"'{info.filename}' does not match)")


@pytest.mark.parametrize("kind", ["sparse", "meta", "int"])
def test_build_with_weights_that_cannot_be_loaded_exits_1(tmp_path, capsys, kind):
    """Once an internal error (exit status 3); now one located line, exit status 1, nothing written."""
    from cnnc.cli import main
    from cnnc_testlib import TEST_SPECS

    spec = TEST_SPECS / "codegen_tiny.cnn"
    state = cnnc.compile(spec).state_dict()
    first = next(iter(state))
    bad = {"sparse": state[first].to_sparse(), "meta": state[first].to("meta"), "int": state[first].long()}[kind]
    torch.save({**state, first: bad}, tmp_path / "w.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note that it validates sparse tensors
        status = main(["build", str(spec), "--weights", str(tmp_path / "w.pth"), "-o", str(tmp_path / "m.py")])
    err = capsys.readouterr().err
    assert status == 1 and f"cnnc: error: weights: '{first}' is a" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pth"]


def test_names_ending_in_digits_are_not_a_numbered_series():
    """cnnc names the first instance of block `res6` `res6_1`, beside `res1` of block `res`: a gap
    in the numbers, so their order is not checked (it is the registration order, and right)."""
    spec = ("block res(x) { return x -> conv(2, 1) }\nblock res6(x) { return x -> conv(2, 1) }\n"
            "network n() {\n    x = input(2, 3, 3)\n    x = x -> res6 -> res\n    output o = x\n}\n")
    src, dst = cnnc.compile(spec), cnnc.compile(spec, fused=True)
    assert [k.split(".")[0] for k in src.state_dict()][::2] == ["res6_1", "res1"]
    cnnc.import_weights(dst, {f"m.{k}": t for k, t in src.state_dict().items()})
    for (k, t), u in zip(src.state_dict().items(), dst.state_dict().values()):
        assert torch.equal(t, u), k
