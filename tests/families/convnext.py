"""ConvNeXt T, S, B and L (specs/convnext.cnn, with the thin aliases convnext_tiny.cnn and
convnext_base.cnn) as torchvision builds them; module names are torchvision's (`features.1.0.
block.3`, `features.1.0.layer_scale`), so its state_dicts load strictly. Outputs are compared at
64x64 (the stem and three downsamplings divide by 32)."""
from families import Family

FAMILY = Family(
    specs=("convnext.cnn", "convnext_tiny.cnn", "convnext_base.cnn"),
    strict=True,
    size=64,
    slow=frozenset({"convnext_tiny", "convnext_small", "convnext_base", "convnext_large"}),
)
