"""The segmentation models on ResNet (specs/resnet_segmentation.cnn), beyond the shared checks
(test_specs.py: parameter counts, GFLOPS with the aux head as torchvision publishes them, strict
load on the meta device; test_torchvision_equiv.py: outputs without the aux head): the dilated
backbone's layout as torchvision's _make_layer builds it, the ResNet classifier with
replace_stride_with_dilation, the aux head (aux_loss=True) and the backbone-only initialisation
against torchvision.
"""
import pytest

from cnnc.pipeline import front_end

NAMES = ("fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101")


def _conv2s(g, stage):
    """(stride, dilation, padding) of every block's 3x3 conv in layer<stage>."""
    return [(n.attr("stride")[0], n.attr("dilation")[0], n.attr("padding")[0]) for n in g.nodes
            if n.op == "conv" and n.path.startswith(f"backbone.layer{stage}.") and n.path.endswith(".conv2")]


def test_backbone_dilates_stages_3_and_4():
    """torchvision's _make_layer with replace_stride_with_dilation=[False, True, True]: layer3's
    first block keeps dilation 1 at stride 1, the others dilate by 2; layer4's first block keeps 2,
    the others 4; the map stays at output stride 8 (8x8 at 64x64)."""
    g = front_end("fcn_resnet50", {"size": 64}).graph
    assert _conv2s(g, 2) == [(2, 1, 1)] + [(1, 1, 1)] * 3
    assert _conv2s(g, 3) == [(1, 1, 1)] + [(1, 2, 2)] * 5
    assert _conv2s(g, 4) == [(1, 2, 2)] + [(1, 4, 4)] * 2
    last = {s: next(n.shape for n in reversed(g.nodes) if n.path.startswith(f"backbone.layer{s}.")) for s in (2, 3, 4)}
    assert last == {2: (512, 8, 8), 3: (1024, 8, 8), 4: (2048, 8, 8)}
    downsample = [n for n in g.nodes if n.path.endswith("downsample.0") and n.path.startswith("backbone.layer4")]
    assert [n.attr("stride") for n in downsample] == [(1, 1)]  # a channel projection only
    assert _conv2s(front_end("deeplabv3_resnet101", {"size": 64}).graph, 3) == [(1, 1, 1)] + [(1, 2, 2)] * 22


def test_backbone_is_the_dilated_classifier():
    """The backbone is specs/resnet.cnn's ResNet-50 with replace_stride_with_dilation (here a Python
    list, as cnnc.compile takes it) up to layer4: the same layers, names and shapes."""
    resnet = front_end("resnet50", {"size": 64, "replace_stride_with_dilation": [False, True, True]}).graph
    seg = front_end("fcn_resnet50", {"size": 64}).graph
    layers = lambda g, prefix="": [(n.op, n.attrs, n.shape, n.path[len(prefix):]) for n in g.nodes  # noqa: E731
                                   if n.path.startswith(prefix) and n.op != "input"]
    assert layers(seg, "backbone.") == [x for x in layers(resnet) if not x[3].startswith(("avgpool", "flatten", "fc"))]
    assert dict(resnet.params)["replace_stride_with_dilation"] == (False, True, True)


def test_heads_and_outputs():
    """FCNHead or DeepLabHead on layer4, FCNHead on layer3 with aux; both upsampled to the input."""
    for name, head in (("fcn_resnet50", "fcn"), ("deeplabv3_resnet101", "deeplabv3")):
        g = front_end(name, {"aux": True}).graph
        outs = {o.name: g.nodes[o.node] for o in g.outputs}
        assert {k: n.shape for k, n in outs.items()} == {"out": (21, 520, 520), "aux": (21, 520, 520)}
        assert {n.op for n in outs.values()} == {"upsample"}
        first = next(n for n in g.nodes if n.path.startswith("classifier."))
        assert first.path == ("classifier.0" if head == "fcn" else "classifier.0.convs.0.0")
        assert g.in_shapes(first)[0] == (2048, 65, 65)
        aux = next(n for n in g.nodes if n.path.startswith("aux_classifier."))
        assert (aux.path, g.in_shapes(aux)[0], aux.attr("out")) == ("aux_classifier.0", (1024, 65, 65), 256)
    assert [o.name for o in front_end("fcn_resnet50").graph.outputs] == ["out"]


torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import cnnc  # noqa: E402

torch.set_num_threads(2)


def _randomized(model):
    import sys

    from cnnc_testlib import ROOT

    sys.path.insert(0, str(ROOT / "tools"))
    from benchlib import randomize_normalization

    return randomize_normalization(model).double()


def _agree(ours, theirs):
    assert theirs.abs().max() > 0 and ours.shape == theirs.shape
    assert ((ours - theirs).norm() / theirs.norm()).item() < 1e-10


@pytest.mark.slow
@pytest.mark.parametrize("dilate", [[False, True, True], [False, False, True]])
def test_resnet50_with_dilation_agrees_with_torchvision(dilate):
    """specs/resnet.cnn's replace_stride_with_dilation is torchvision's ResNet argument."""
    torch.manual_seed(0)
    reference = _randomized(torchvision.models.resnet50(weights=None, replace_stride_with_dilation=dilate))
    model = cnnc.compile("resnet50", size=64, replace_stride_with_dilation=dilate)
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        _agree(model.double().eval()(x), reference(x))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50"])
def test_aux_head_agrees_with_torchvision(name):
    """aux=true is torchvision's aux_loss=True: result["out"] and result["aux"], strict load."""
    torch.manual_seed(0)
    reference = _randomized(torchvision.models.get_model(name, weights=None, weights_backbone=None, aux_loss=True))
    model = cnnc.compile(name, size=64, aux=True)
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ours, theirs = model.double().eval()(x), reference(x)
    assert ours._fields == ("out", "aux")
    _agree(ours.out, theirs["out"])
    _agree(ours.aux, theirs["aux"])


@pytest.mark.slow
def test_backbone_initialised_as_torchvision():
    """ResNet's scheme in the backbone, torch's defaults in the heads: the statistics of every
    tensor match torchvision's fcn_resnet50 (the same checks as test_init.py)."""
    from test_init import statistics_mismatches

    torch.manual_seed(0)
    reference = torchvision.models.get_model("fcn_resnet50", weights=None, weights_backbone=None, aux_loss=True)
    torch.manual_seed(1)
    assert statistics_mismatches(cnnc.compile("fcn_resnet50", aux=True), reference) == []
