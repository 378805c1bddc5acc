"""Generated modules compute what torchvision's and timm's models compute.

For every catalog entry whose reference is a torchvision or timm model: build the reference with
random weights, re-randomize its BatchNorm statistics and affine parameters (and ConvNeXt's layer
scales) so they matter, put its state_dict into the cnnc module, and compare eval-mode outputs.

- Entries of a strict family (tests/families/: module names are the reference's) load it with
  `load_state_dict(..., strict=True)` and must agree in float64 to rounding (relative 1e-10), on
  a batch of 2 at the family's small input size (64x64 for the ResNets). A segmentation model's
  outputs (`out`, `aux`) are compared with the reference's result of the same name.
- The others import it with `cnnc.import_weights` (by structural order; where a reference
  registers a tensor out of use order, the importer must find the reordering itself, and say so)
  and must agree in float32 (relative error
  ||a - b|| / ||b|| < 1e-4) at batch 1 and the spec's default size, and at batch 2 and a smaller
  size with the module built for it (`size=` override); the largest at batch 1 only.
"""
import sys
import warnings

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import cnnc  # noqa: E402
from cnnc.frontend.catalog import entries  # noqa: E402
from cnnc.pipeline import front_end  # noqa: E402
from cnnc_testlib import ROOT  # noqa: E402
from families import family_of  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
from benchlib import randomize_normalization  # noqa: E402

torch.set_num_threads(2)
TOLERANCE = 1e-4  # float32, structural import
STRICT_TOLERANCE = 1e-10  # float64, the same module names and the same computation

CATALOG = {e.name: e for _, items in entries() for e in items}
LIBRARY = {n: e for n, e in CATALOG.items() if e.reference.split(":")[0] in ("torchvision", "timm")}

# Entries of no family (checked by structural import): the big ones run at batch 1 only and slow
BIG = {"inception_v4", "inception_resnet_v2", "xception", "nasnet_a_large"}
SLOW = BIG
# References that register a tensor before the layers that run first: the importer must find the
# reordering itself, and say so (none among the entries of no family today).
REGISTERED_OUT_OF_ORDER: set = set()
SECOND_SIZE = {"inception_v4": 235, "inception_resnet_v2": 235, "xception": 235}


def _reference(entry, dtype=torch.float32):
    """The reference model with random weights, built (initialized) directly in `dtype`: a float64
    regnet_y_128gf made by `.double()` would hold its float32 and float64 copies at once."""
    library, _, model = entry.reference.partition(":")
    kwargs = family_of(entry.spec.name).reference_kwargs.get(entry.name, {})
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        if library == "timm":
            timm = pytest.importorskip("timm")
            return randomize_normalization(timm.create_model(model, pretrained=False, **kwargs))
        return randomize_normalization(torchvision.models.get_model(model, weights=None, **kwargs))
    finally:
        torch.set_default_dtype(default)


def _relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


def _check_strict(name):
    entry = LIBRARY[name]
    size = family_of(entry.spec.name).size
    reference = _reference(entry, torch.float64)
    assert all(t.dtype == torch.float64 for t in reference.state_dict().values() if t.is_floating_point())
    # The module is built on the meta device (no storage) and takes the reference's tensors
    # themselves (`assign=True`): one copy of the weights in memory, not three. strict=True still
    # checks every name and shape; the two computations stay separate.
    with torch.device("meta"):
        model = cnnc.compile(name, size=size) if size else cnnc.compile(name)
    model.load_state_dict(reference.state_dict(), strict=True, assign=True)
    assert not any(t.is_meta for t in (*model.parameters(), *model.buffers())), f"{name}: a tensor left on meta"
    model = model.eval()
    size = size or dict(front_end(name).graph.params)["size"]
    x = torch.randn(2, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    if isinstance(theirs, dict):  # torchvision's segmentation models: {"out": ..., "aux": ...}
        pairs = [(theirs[k], ours if torch.is_tensor(ours) else getattr(ours, k)) for k in theirs]
        assert torch.is_tensor(ours) == (len(theirs) == 1)
    else:
        pairs = [(theirs, ours)]
    for theirs, ours in pairs:
        assert theirs.abs().max() > 0 and ours.shape == theirs.shape
        assert _relative_error(ours, theirs) < STRICT_TOLERANCE, f"{name}: {_relative_error(ours, theirs)}"


def _check_by_import(name):
    reference = _reference(LIBRARY[name])
    state = reference.state_dict()
    default = dict(front_end(name).graph.params)["size"]
    runs = [(1, default)] if name in BIG else [(1, default), (2, SECOND_SIZE.get(name, 160))]
    errors = []
    for batch, size in runs:
        model = cnnc.compile(name, size=size)
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


def _strict(name):
    return family_of(LIBRARY[name].spec.name).strict


def _is_slow(name):
    family = family_of(LIBRARY[name].spec.name)
    return name in family.slow if family.specs else name in SLOW


# Over 300M parameters: a test holds one float64 copy of the weights (the module takes the
# reference's tensors), 5.7 GB at its peak for regnet_y_128gf (CNNC_TEST_MEMLOG). Under xdist
# (`--dist loadgroup`) these run one after another on one worker, so that two never share the
# machine's memory.
GIANT = {"regnet_y_128gf", "regnet_y_32gf", "regnet_x_32gf", "convnext_large"}


# Known disagreements, recorded rather than hidden (strict: the test fails once they agree)
KNOWN: dict = {}


def _params(names):
    def marks(n):
        return (([pytest.mark.slow] if _is_slow(n) else []) + ([pytest.mark.xdist_group("giant")] if n in GIANT else [])
                + ([pytest.mark.xfail(strict=True, reason=KNOWN[n])] if n in KNOWN else []))
    return [pytest.param(n, marks=marks(n)) for n in sorted(names)]


@pytest.mark.parametrize("name", _params(n for n in LIBRARY if _strict(n)))
def test_loads_strictly_and_agrees(name):
    _check_strict(name)


@pytest.mark.parametrize("name", _params(n for n in LIBRARY if not _strict(n)))
def test_imports_by_structure_and_agrees(name):
    _check_by_import(name)


def test_the_core_references_are_covered():
    assert {"resnet18", "resnet50", "densenet121", "vgg16", "mobilenet_v2", "efficientnet_b0", "convnext_tiny",
            "googlenet", "preact_resnet50"} <= set(LIBRARY)
    assert {"resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2", "preact_resnet50", "mobilenet_v2",
            "efficientnet_b0", "convnext_tiny"} <= {n for n in LIBRARY if _strict(n)}
