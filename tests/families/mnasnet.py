"""MNASNet (specs/mnasnet.cnn) as torchvision builds it, in its four widths; module names are
torchvision's, so its state_dicts load strictly."""
from families import Family

FAMILY = Family(
    specs=("mnasnet.cnn",),
    strict=True,
    size=64,
    slow=frozenset({"mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"}),
)
