"""ShuffleNet v2 (specs/shufflenet_v2.cnn) as torchvision builds it, in its four widths; module
names are torchvision's, so its state_dicts load strictly."""
from families import Family

FAMILY = Family(
    specs=("shufflenet_v2.cnn",),
    strict=True,
    size=64,
    slow=frozenset({"shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"}),
)
