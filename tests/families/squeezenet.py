"""SqueezeNet 1.0 and 1.1 as torchvision builds them (specs/squeezenet.cnn). Module names are
torchvision's, so its state_dicts load strictly."""
from families import Family

FAMILY = Family(
    specs=("squeezenet.cnn",),
    strict=True,
    size=64,
)
