"""Transfer learning (cnnc/transfer.py): a reference state_dict loads into the same spec with
another head except the tensors whose shapes changed, which are reported; freeze and unfreeze
by instance path. References: torchvision's models (random weights, weights=None) and the
same spec built with other parameters."""
from __future__ import annotations

import pytest
import torch

import cnnc
from cnnc.cli import main

# `train` is an instance name codegen renames (an nn.Module method): its attribute is `train_`
SMALL = """
block body(x, c) {
    return x -> conv(c, 3, padding=1, bias=false) as conv1 -> bn as bn1 -> relu
}
network small(classes=10, size=16, hidden=0) {
    x = input(3, size, size)
    x = x -> body(8) as features -> body(8) as train -> global_avgpool -> flatten
    if hidden > 0 {
        x = x -> linear(hidden) as hidden
    }
    output logits = x -> linear(classes) as classifier
}
"""


def _equal_except(model, reference: dict, skipped: set) -> None:
    """Every tensor of the model equals the reference's, except the skipped keys, which do not."""
    state = model.state_dict()
    for key, t in state.items():
        if key in skipped:
            assert t.shape != reference[key].shape, key
        else:
            assert torch.equal(t, reference[key]), key


def test_small_head_change_skips_exactly_the_head():
    torch.manual_seed(0)
    reference = cnnc.compile(SMALL, classes=4).state_dict()
    torch.manual_seed(1)
    model = cnnc.compile(SMALL, classes=10)
    head = {k: t.clone() for k, t in model.state_dict().items() if k.startswith("classifier.")}
    report = cnnc.load_weights(model, reference)
    assert report.skipped == (("classifier.weight", (4, 8), (10, 8)), ("classifier.bias", (4,), (10,)))
    assert report.missing == () and report.unexpected == ()
    assert set(report.loaded) == set(reference) - {"classifier.weight", "classifier.bias"}
    assert any(k.startswith("train_.") for k in report.loaded)  # the renamed attribute loads by its key
    _equal_except(model, reference, {"classifier.weight", "classifier.bias"})
    for k, t in head.items():  # skipped tensors keep their values
        assert torch.equal(model.state_dict()[k], t)
    text = str(report)
    assert "skipped 'classifier.weight': [4, 8] in the weights, [10, 8] in the module" in text


def test_small_another_head_reports_missing_and_unexpected():
    reference = cnnc.compile(SMALL, classes=10, hidden=6).state_dict()
    model = cnnc.compile(SMALL, classes=10)
    report = cnnc.load_weights(model, reference)
    assert report.unexpected == ("hidden.weight", "hidden.bias")
    assert [k for k, _, _ in report.skipped] == ["classifier.weight"]  # [10, 6] against [10, 8]
    assert report.missing == ()
    assert torch.equal(model.state_dict()["classifier.bias"], reference["classifier.bias"])
    back = cnnc.compile(SMALL, classes=10, hidden=6)
    report = cnnc.load_weights(back, model.state_dict())
    assert report.missing == ("hidden.weight", "hidden.bias") and report.unexpected == ()


def test_small_refusals_leave_the_model_untouched():
    reference = cnnc.compile(SMALL, classes=4).state_dict()
    model = cnnc.compile(SMALL, classes=10)
    before = {k: t.clone() for k, t in model.state_dict().items()}
    with pytest.raises(cnnc.CnncError, match=r"'classifier.weight' \[4, 8\] in the weights, \[10, 8\] in the module"):
        cnnc.load_weights(model, reference, skip_mismatched=False)
    bad = dict(reference)
    bad["features.conv1.weight"] = torch.full_like(bad["features.conv1.weight"], float("nan"))
    with pytest.raises(cnnc.CnncError, match="nan"):
        cnnc.load_weights(model, bad)
    with pytest.raises(cnnc.CnncError, match="none of the .* keys is a key of the module.*import_weights"):
        cnnc.load_weights(model, {"stem." + k: t for k, t in reference.items()})
    for k, t in model.state_dict().items():
        assert torch.equal(t, before[k]), k


def test_small_freeze_by_instance_path_and_an_optimizer_step():
    torch.manual_seed(0)
    model = cnnc.compile(SMALL)
    frozen = cnnc.freeze(model, "features", "train")  # `train` is the attribute `train_`
    assert frozen and all(k.startswith(("features.", "train_.")) for k in frozen)
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.weight", "classifier.bias"}
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.randn(4, 3, 16, 16)).square().mean().backward()
    opt.step()
    for k, p in model.named_parameters():
        assert torch.equal(p, before[k]) == (k not in trainable), k
    assert cnnc.unfreeze(model, "train.conv1") == ["train_.conv1.weight"]
    assert model.train_.conv1.weight.requires_grad and not model.train_.bn1.weight.requires_grad


def test_small_paths_naming_nothing_are_errors():
    model = cnnc.compile(SMALL)
    with pytest.raises(cnnc.CnncError, match=r"no instance 'featurs' in Small; did you mean 'features'\?"):
        cnnc.freeze(model, "featurs")
    with pytest.raises(cnnc.CnncError, match="no instance 'train_'"):  # the attribute is not the spec's name
        cnnc.freeze(model, "features", "train_")
    assert all(p.requires_grad for p in model.parameters())  # nothing changed: all resolved first
    with pytest.raises(cnnc.CnncError, match="name at least one"):
        cnnc.unfreeze(model)
    plain = torch.nn.Sequential(torch.nn.Linear(2, 2))  # no spec: submodule paths
    assert cnnc.freeze(plain, "0") == ["0.weight", "0.bias"]
    with pytest.raises(cnnc.CnncError, match="no instance '1'"):
        cnnc.freeze(plain, "1")


def test_small_build_skip_mismatched(tmp_path, capsys):
    ref = tmp_path / "ref.pth"
    torch.save(cnnc.compile(SMALL, classes=4).state_dict(), ref)
    spec = tmp_path / "small.cnn"
    spec.write_text(SMALL)
    out = tmp_path / "out" / "small.py"
    assert main(["build", str(spec), "--set", "classes=10", "-o", str(out), "--weights", str(ref),
                 "--skip-mismatched"]) == 0
    err = capsys.readouterr().err
    assert "cnnc: note: skipped 'classifier.weight': [4, 8] in the weights, [10, 8] in the module" in err
    assert "cnnc: note: skipped 'classifier.bias'" in err
    saved, reference = torch.load(out.with_suffix(".pth")), torch.load(ref)
    _equal_except(type("M", (), {"state_dict": lambda self: saved})(), reference,
                  {"classifier.weight", "classifier.bias"})
    assert main(["build", str(spec), "-o", str(tmp_path / "x.py"), "--skip-mismatched"]) == 1
    assert "--skip-mismatched applies to --weights" in capsys.readouterr().err
    assert not (tmp_path / "x.py").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name, head, features", [
    ("resnet50", ("fc.weight", "fc.bias"), ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")),
    ("mobilenet_v2", ("classifier.1.weight", "classifier.1.bias"), ("features",)),
])
def test_torchvision_reference_at_10_classes(name, head, features):
    import torchvision

    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None).state_dict()
    model = cnnc.compile(name, classes=10)
    report = cnnc.load_weights(model, reference)
    assert tuple(k for k, _, _ in report.skipped) == head
    assert report.skipped[0][1][0] == 1000 and report.skipped[0][2][0] == 10
    assert report.missing == () and report.unexpected == ()
    _equal_except(model, reference, set(head))
    cnnc.freeze(model, *features)
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(head)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.randn(2, 3, 64, 64)).logsumexp(1).mean().backward()
    opt.step()
    for k, p in model.named_parameters():
        assert torch.equal(p, before[k]) == (k not in trainable), k
