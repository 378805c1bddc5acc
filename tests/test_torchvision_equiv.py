"""Generated modules compute what torchvision's and timm's models compute.

For every spec in specs/ whose file name is a torchvision (or, below, timm) architecture, build the
reference with random weights, re-randomize BatchNorm statistics and affine parameters (and
ConvNeXt's layer scales) so they matter, import its state_dict into the cnnc module by structural
order (as it is: the importer finds the reorderings ConvNeXt and ResNetV2 need), and compare eval-mode outputs: relative error ||a - b|| / ||b|| < 1e-4 in float32, at batch 1
and 224x224 (the spec's default size for 299 networks), and at batch 2 and a smaller size with the
module built for it (`size=` override). The largest models run at batch 1 only.
"""
import sys
import warnings

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import cnnc  # noqa: E402
from cnnc.pipeline import front_end  # noqa: E402
from cnnc_testlib import ROOT, SPECS  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
from benchlib import randomize_normalization  # noqa: E402

torch.set_num_threads(2)
TOLERANCE = 1e-4

# spec stem -> torchvision builder name; every spec whose stem torchvision knows is checked
TORCHVISION = sorted(p.stem for p in SPECS.glob("*.cnn") if p.stem in torchvision.models.list_models(
    module=torchvision.models))
# spec stem -> timm model name (timm's names differ from the specs')
TIMM = {"mobilenet_v1": "mobilenetv1_100", "preact_resnet50": "resnetv2_50", "xception": "legacy_xception",
        "inception_v4": "inception_v4", "inception_resnet_v2": "inception_resnet_v2"}
# big models: batch 1 only, and marked slow
BIG = {"vgg16", "vgg19", "alexnet", "convnext_base", "resnet152", "densenet201", "wide_resnet50_2",
       "inception_v4", "inception_resnet_v2", "xception"}
SLOW = BIG | {"resnet101", "resnext50_32x4d", "convnext_tiny"}
# References that register a tensor before the layers that run first (torchvision's CNBlock: its
# layer_scale before its `block`; timm's PreActBottleneck: downsample before the norm1 that feeds
# it): the importer must find the reordering itself, and say so.
REGISTERED_OUT_OF_ORDER = {"convnext_tiny", "convnext_base", "preact_resnet50"}
SECOND_SIZE = {"googlenet": 192, "inception_v4": 235, "inception_resnet_v2": 235, "xception": 235}


def _reference(name):
    torch.manual_seed(0)
    if name in TIMM:
        timm = pytest.importorskip("timm")
        return randomize_normalization(timm.create_model(TIMM[name], pretrained=False))
    builder = getattr(torchvision.models, name)
    kwargs = {"init_weights": False} if name in ("googlenet",) else {}
    return randomize_normalization(builder(weights=None, **kwargs))


def _relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


def _check(name):
    spec = SPECS / f"{name}.cnn"
    reference = _reference(name)
    state = reference.state_dict()
    default = dict(front_end(spec).graph.params)["size"]
    runs = [(1, default)] if name in BIG else [(1, default), (2, SECOND_SIZE.get(name, 160))]
    errors = []
    for batch, size in runs:
        model = cnnc.compile(spec, size=size)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", cnnc.ReorderedWeights)
            cnnc.import_weights(model, state)
        moved = [str(w.message) for w in caught if issubclass(w.category, cnnc.ReorderedWeights)]
        assert bool(moved) == (name in REGISTERED_OUT_OF_ORDER), moved
        model.eval()
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            ours, theirs = model(x), reference(x)
        assert theirs.abs().max() > 0
        errors.append(_relative_error(ours, theirs))
    assert max(errors) < TOLERANCE, f"{name}: relative errors {errors}"
    return errors


def _params(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in names]


@pytest.mark.parametrize("name", _params(TORCHVISION))
def test_matches_torchvision(name):
    _check(name)


@pytest.mark.parametrize("name", _params(sorted(n for n in TIMM if (SPECS / f"{n}.cnn").exists())))
def test_matches_timm(name):
    _check(name)


def test_the_core_references_are_covered():
    assert {"resnet18", "resnet50", "densenet121", "vgg16"} <= set(TORCHVISION)
