"""SqueezeNet beyond the shared checks (test_specs.py, test_torchvision_equiv.py, test_init.py):
against Iandola et al. 2016. Torch-free."""
import pytest

from cnnc.diagnostics import CnncError
from cnnc.pipeline import front_end

# Table 1: output size of each layer (channels, height = width) of SqueezeNet (v1.0). The table
# says 224x224x3 input, but its sizes (conv1 111x111, then 55, 27, 13) are those of 227x227, the
# input of the authors' Caffe model; torchvision's layers give them at 227.
TABLE1 = {"features.0": (96, 111), "features.2": (96, 55), "features.3": (128, 55), "features.4": (128, 55),
          "features.5": (256, 55), "features.6": (256, 27), "features.7": (256, 27), "features.8": (384, 27),
          "features.9": (384, 27), "features.10": (512, 27), "features.11": (512, 13), "features.12": (512, 13),
          "classifier.1": (1000, 13), "classifier.3": (1000, 1)}


def test_squeezenet1_0_follows_table1():
    g = front_end("squeezenet1_0", {"size": 227}).graph
    last = {}  # layer or Fire module -> the shape of its last node
    for n in g.nodes:
        last[".".join(n.path.split(".")[:2])] = n.shape
    assert {p: (s[0], s[1]) for p, s in last.items() if p in TABLE1} == TABLE1
    # Table 1's total: "1,248,424 (total)" parameters before pruning
    assert sum(g.params_of(n) for n in g.nodes) == 1_248_424


def test_unknown_version_is_located():
    with pytest.raises(CnncError) as e:
        front_end("squeezenet1_0", {"version": "1_2"})
    lines = e.value.render().splitlines()
    assert lines[0].endswith("error: block 'squeezenet_features' ended without `return`")
    assert '"1_0" or "1_1"' in lines[1]
