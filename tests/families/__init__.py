"""How the shared library tests check each architecture family.

The catalog (`cnnc list`) says what the library holds; a module here per family says how to
check its entries: whether module names are the reference's (strict load), the input size of the
output check, which entries are slow, the published counts of the entries whose reference is a
paper. The shared tests (test_specs.py, test_torchvision_equiv.py) read every module of this
package, so a family added in parallel with others adds a file here and edits none.

An entry belongs to the family whose `specs` holds its spec file's name; an entry of no family
is checked with the defaults of `Family` (weights imported by structural order, at the spec's
default size).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Family:
    specs: tuple = ()  # its files in specs/: family files and thin aliases ("resnet.cnn", ...)
    strict: bool = False  # reference state_dicts load with load_state_dict(strict=True)
    size: int | None = None  # input size of the output check (None: the spec's default size)
    slow: frozenset = frozenset()  # entries whose whole-model checks run in the slow tier
    # entry -> (published parameter count, its stated precision, where it is published)
    paper_params: dict = field(default_factory=dict)
    # entry -> keyword arguments the reference builder needs (beyond weights=None)
    reference_kwargs: dict = field(default_factory=dict)
    # entry -> network parameters of the model a reference's published figures describe, where
    # that is not the entry's default (torchvision's GFLOPS of a segmentation model count its
    # pretrained layout, with the auxiliary classifier: {"aux": True})
    published_with: dict = field(default_factory=dict)
    # entry -> {input size: output map size} of a segmentation model whose map is not the input's
    # (the unpadded U-Net); others: the same size at the default and at 96
    out_sizes: dict = field(default_factory=dict)


DEFAULT = Family()


def families() -> dict:
    """Module name -> Family, for every module of this package."""
    out = {}
    for info in pkgutil.iter_modules(__path__):
        out[info.name] = importlib.import_module(f"{__name__}.{info.name}").FAMILY
    return out


def family_of(spec_name: str) -> Family:
    """The family that claims a spec file (by name, e.g. "resnet.cnn"), or DEFAULT."""
    claims = [f for f in families().values() if spec_name in f.specs]
    assert len(claims) <= 1, f"{spec_name} is claimed by several families"
    return claims[0] if claims else DEFAULT
