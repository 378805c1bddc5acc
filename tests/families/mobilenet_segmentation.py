"""torchvision's segmentation models on MobileNetV3-Large: DeepLabV3
(specs/deeplabv3_mobilenet_v3.cnn) and LR-ASPP (lraspp_mobilenet_v3.cnn). Module names are
torchvision's (backbone.*, classifier.*, aux_classifier.*), so its state_dicts load strictly;
the reference is built without ImageNet weights in its backbone (weights_backbone=None)."""
from families import Family

_NAMES = ("deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large")

FAMILY = Family(
    specs=("deeplabv3_mobilenet_v3.cnn", "lraspp_mobilenet_v3.cnn"),
    strict=True,
    size=64,
    slow=frozenset(_NAMES),
    reference_kwargs={n: {"weights_backbone": None} for n in _NAMES},
)
