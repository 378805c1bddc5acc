"""The VGG family beyond the shared checks (test_specs.py, test_torchvision_equiv.py, test_init.py):
against Simonyan & Zisserman 2015 itself. Torch-free."""
import pytest

from cnnc.diagnostics import CnncError
from cnnc.pipeline import front_end

# Table 1's configurations: weight layers, and 3x3 convs per stage (64, 128, 256, 512, 512 filters);
# Table 2: "Number of parameters (in millions)", A 133, B 133, D 138, E 144.
TABLE = {"vgg11": (11, [1, 1, 2, 2, 2], 133), "vgg13": (13, [2, 2, 2, 2, 2], 133),
         "vgg16": (16, [2, 2, 3, 3, 3], 138), "vgg19": (19, [2, 2, 4, 4, 4], 144)}


@pytest.mark.parametrize("name", sorted(TABLE))
@pytest.mark.parametrize("bn", ["", "_bn"])
def test_configurations_follow_tables_1_and_2(name, bn):
    layers, convs, millions = TABLE[name]
    g = front_end(name + bn).graph
    weighted = [n for n in g.nodes if n.op in ("conv", "linear")]
    assert len(weighted) == layers
    widths = [n.shape[0] for n in weighted if n.op == "conv"]
    assert widths == [c for c, k in zip([64, 128, 256, 512, 512], convs) for _ in range(k)]
    assert [n.shape for n in g.nodes if n.op == "maxpool"] == [(c, s, s) for c, s in zip(
        [64, 128, 256, 512, 512], [112, 56, 28, 14, 7])]
    assert [n.attr("kernel") for n in weighted if n.op == "conv"] == [(3, 3)] * len(widths)
    assert [n.shape for n in weighted if n.op == "linear"] == [(4096,), (4096,), (1000,)]
    assert round(sum(g.params_of(n) for n in g.nodes) / 1e6) == millions  # BatchNorm adds at most 11K
    assert sum(n.op == "batchnorm" for n in g.nodes) == (len(widths) if bn else 0)


def test_unknown_configuration_is_located():
    with pytest.raises(CnncError) as e:
        front_end("vgg16", {"cfg": "C"})  # C (1x1 convs) is not one of torchvision's cfgs
    lines = e.value.render().splitlines()
    assert lines[0].endswith("error: block 'vgg_cfg' ended without `return`")
    assert '"A", "B", "D" or "E"' in lines[1]  # the block's line lists the configurations
