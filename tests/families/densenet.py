"""The DenseNet family: torchvision's DenseNet-121, 161, 169 and 201 (specs/densenet.cnn, with
the thin aliases densenet121.cnn and densenet201.cnn). Module names are torchvision's, so its
state_dicts load strictly."""
from families import Family

FAMILY = Family(
    specs=("densenet.cnn", "densenet121.cnn", "densenet201.cnn"),
    strict=True,
    size=64,
    slow=frozenset({"densenet161", "densenet169", "densenet201"}),
)
