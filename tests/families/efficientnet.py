"""EfficientNet B0-B7 and EfficientNetV2 S, M and L (specs/efficientnet.cnn, with the thin alias
efficientnet_b0.cnn) as torchvision builds them; module names are torchvision's, so its
state_dicts load strictly. Outputs are compared at 64x64 (V2's smallest input is 33x33)."""
from families import Family

_REST = frozenset({"efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "efficientnet_b5",
                   "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"})

FAMILY = Family(
    specs=("efficientnet.cnn", "efficientnet_b0.cnn"),
    strict=True,
    size=64,
    slow=_REST,
)
