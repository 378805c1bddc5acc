"""The MobileNet family as torchvision builds it: MobileNet v2 (specs/mobilenet_v2.cnn) and v3
Large and Small (mobilenet_v3.cnn). Module names are torchvision's, so its state_dicts load
strictly. (MobileNet v1, mobilenet_v1.cnn, is timm's and imports by structure.)"""
from families import Family

FAMILY = Family(
    specs=("mobilenet_v2.cnn", "mobilenet_v3.cnn"),
    strict=True,
    size=64,
    slow=frozenset({"mobilenet_v3_large", "mobilenet_v3_small"}),
)
