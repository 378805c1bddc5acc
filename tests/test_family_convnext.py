"""What is particular to the ConvNeXt family (specs/convnext.cnn): each block's stochastic depth
rate and layer scale are torchvision's, and the catalog lists the four builders.

The shared tests check every entry against torchvision as well: parameters exact
(tests/test_specs.py, from tests/references/convnext.json), multiply-adds within 1% of the GFLOPS
torchvision publishes, the strict load of torchvision's state_dict on the meta device, and outputs
equal after that load at 64x64 (tests/test_torchvision_equiv.py, all slow); convnext_tiny's
initialisation (tests/test_init.py).
"""
import inspect

import pytest

from cnnc.pipeline import front_end
from cnnc_testlib import listed_entries

CONVNEXTS = ["convnext_tiny", "convnext_small", "convnext_base", "convnext_large"]


@pytest.mark.slow
@pytest.mark.parametrize("name", CONVNEXTS)
def test_stochastic_depth_and_layer_scale_are_torchvisions(name):
    """Per block, by module name: the drop rate of `stochastic_depth` and the initial value and
    shape of `layer_scale` (torchvision's model on the meta device: no weights)."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from torchvision.ops import StochasticDepth

    with torch.device("meta"):
        reference = torchvision.models.get_model(name, weights=None)
    theirs = {k.removesuffix(".stochastic_depth"): m.p for k, m in reference.named_modules()
              if isinstance(m, StochasticDepth)}
    g = front_end(name).graph
    ours = {n.path.removesuffix(".stochastic_depth"): n.attr("p") for n in g.nodes if n.op == "droppath"}
    assert ours.keys() == theirs.keys() and len(ours) == sum(dict(g.params)["depths"])
    assert all(abs(ours[k] - theirs[k]) < 1e-12 for k in ours), {k: (ours[k], theirs[k]) for k in ours}
    # the layer scale's value: on the meta device there is none to read; the builders leave
    # ConvNeXt's default
    init = inspect.signature(torchvision.models.convnext.ConvNeXt).parameters["layer_scale"].default
    scales = {n.path: (n.attr("init"), n.shape[0]) for n in g.nodes if n.op == "layerscale"}
    assert scales == {f"{k}.layer_scale": (init, reference.get_parameter(f"{k}.layer_scale").shape[0])
                      for k in theirs}


@pytest.mark.slow
def test_the_catalog_lists_every_convnext():
    """`cnnc list --format json`: the four builders, each with its torchvision reference."""
    rows = listed_entries("specs/convnext.cnn")
    assert sorted(rows) == sorted(CONVNEXTS)
    assert all(r["reference"] == f"torchvision:{n}" for n, r in rows.items())
