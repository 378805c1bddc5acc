"""What is particular to the RegNet family (specs/regnet.cnn): its stage widths, depths and group
widths are computed in the spec from BlockParams.from_init_params's arguments, and must be the
ones torchvision's own BlockParams computes; the catalog lists all fifteen builders.

The shared tests check every entry against torchvision as well: parameters exact
(tests/test_specs.py, from tests/references/regnet.json), multiply-adds within 1% of the GFLOPS
torchvision publishes, the strict load of torchvision's state_dict on the meta device, and outputs
equal after that load at 64x64 (tests/test_torchvision_equiv.py); regnet_y_400mf's initialisation
(tests/test_init.py). regnet_y_400mf is the fast tier's; the others are slow (tests/families/regnet.py).
"""
import re

import pytest

from cnnc.pipeline import front_end
from cnnc_testlib import listed_entries
from families.regnet import FAMILY

REGNETS = [f"regnet_x_{s}" for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")] + \
          [f"regnet_y_{s}" for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf", "128gf")]


def stages_of(name) -> list:
    """(width, depth, group width, stride of the first block) per stage, read off the IR: the
    blocks `trunk_output.block{s}.block{s}-{i}` and their grouped 3x3 conv `f.b.0`."""
    stages = {}
    for n in front_end(name).graph.nodes:
        m = re.fullmatch(r"trunk_output\.block(\d+)\.block\1-(\d+)\.f\.b\.0", n.path)
        if m:
            stages.setdefault(int(m.group(1)), []).append(n)
    assert sorted(stages) == list(range(1, len(stages) + 1))
    out = []
    for s in sorted(stages):
        b = stages[s]
        out.append((b[0].shape[0], len(b), b[0].shape[0] // b[0].attr("groups"), b[0].attr("stride")[0]))
    return out


def torchvision_block_params(name):
    """The BlockParams torchvision's builder `name` passes to RegNet (its own arguments, not
    retyped here), caught at RegNet.__init__ before any layer is built."""
    pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from torchvision.models import regnet

    class Caught(Exception):
        pass

    def catch(self, block_params, *args, **kwargs):
        raise Caught(block_params)

    original, regnet.RegNet.__init__ = regnet.RegNet.__init__, catch
    try:
        torchvision.models.get_model(name, weights=None)
    except Caught as caught:
        return caught.args[0]
    finally:
        regnet.RegNet.__init__ = original
    raise AssertionError(f"{name}: torchvision's builder did not build a RegNet")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in FAMILY.slow else n
                                  for n in REGNETS])
def test_stages_are_torchvisions_block_params(name):
    bp = torchvision_block_params(name)
    assert stages_of(name) == [(w, d, g, s) for w, s, d, g, _ in bp._get_expanded_params()]
    se = [n for n in front_end(name).graph.nodes if n.path.endswith(".f.se.fc1")]
    assert bool(se) == (bp.se_ratio is not None)


@pytest.mark.slow
def test_the_catalog_lists_every_regnet():
    """`cnnc list --format json`: the fifteen builders, each with its torchvision reference."""
    rows = listed_entries("specs/regnet.cnn")
    assert sorted(rows) == sorted(REGNETS)
    assert all(r["reference"] == f"torchvision:{n}" for n, r in rows.items())
    # the X models drop squeeze-and-excitation; regnet_y_128gf is published at 384x384
    assert all(r["overrides"].get("se_ratio", 0.25) is None for n, r in rows.items() if n.startswith("regnet_x"))
    assert rows["regnet_y_128gf"]["overrides"]["size"] == 384
