"""torchvision's GoogLeNet and Inception v3 beyond the shared checks (test_specs.py,
test_torchvision_equiv.py, test_init.py), which compare eval-mode outputs: in training mode both
return their auxiliary classifiers too, as torchvision's namedtuples (GoogLeNetOutputs(logits,
aux_logits2, aux_logits1), InceptionOutputs(logits, aux_logits)), and those must be torchvision's
as well. Inception v3's auxiliary head needs the 299x299 grid; without it the network runs at
75x75, torchvision's min_size.
"""
import sys

import pytest

from cnnc.diagnostics import CnncError
from cnnc.pipeline import front_end
from cnnc_testlib import ROOT


def test_inception_v3_aux_head_needs_299():
    """Below 299x299 the auxiliary head's 5x5 conv no longer fits its pooled 17x17 grid: a located
    error in AuxLogits (torchvision fails the same way, at its first training forward)."""
    with pytest.raises(CnncError) as e:
        front_end("inception_v3", {"size": 256})
    text = e.value.render()
    assert "conv kernel larger than its padded input" in text and "in 'AuxLogits.conv1'" in text
    g = front_end("inception_v3", {"size": 75, "aux_logits": False}).graph
    assert g.nodes[-1].shape == (1000,) and not any(n.path.startswith("AuxLogits") for n in g.nodes)


torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import cnnc  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
from benchlib import randomize_normalization  # noqa: E402

torch.set_num_threads(2)


def _pair(name, size, **params):
    """(torchvision's model, the cnnc module holding its state_dict, strictly), in float64.
    torchvision's Inception builders take aux_logits and init_weights (False: the weights are
    replaced anyway), cnnc the same aux_logits."""
    torch.manual_seed(0)
    reference = torchvision.models.get_model(name, weights=None, init_weights=False, **params)
    reference = randomize_normalization(reference).double()
    model = cnnc.compile(name, size=size, **params)
    model.load_state_dict(reference.state_dict(), strict=True)
    return reference, model.double()


def _relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.slow
@pytest.mark.parametrize("name,size,fields", [
    ("googlenet", 64, ("logits", "aux_logits2", "aux_logits1")),
    ("inception_v3", 299, ("logits", "aux_logits")),
])
def test_training_outputs_are_torchvisions(name, size, fields):
    """In training mode (BatchNorm on batch statistics; dropout off on both sides, since the two
    draw their masks in another order) the outputs are torchvision's namedtuple, field by field."""
    reference, model = _pair(name, size)
    for m in list(reference.modules()) + list(model.modules()):
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    x = torch.randn(2, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs, ours = reference.train()(x), model.train()(x)
    assert theirs._fields == ours._fields == fields
    for f in fields:
        assert _relative_error(getattr(ours, f), getattr(theirs, f)) < 1e-10, f


@pytest.mark.slow
def test_inception_v3_without_aux_head_at_75():
    """torchvision's inception_v3(aux_logits=False) at its min_size, 75x75, in eval mode."""
    reference, model = _pair("inception_v3", 75, aux_logits=False)
    x = torch.randn(2, 3, 75, 75, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model.eval()(x), reference.eval()(x)
    assert theirs.abs().max() > 0 and _relative_error(ours, theirs) < 1e-10
