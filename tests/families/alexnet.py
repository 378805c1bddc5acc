"""AlexNet as torchvision builds it (specs/alexnet.cnn). Module names are torchvision's, so its
state_dict loads strictly."""
from families import Family

FAMILY = Family(
    specs=("alexnet.cnn",),
    strict=True,
    size=64,  # torchvision's min_size is 63
    slow=frozenset({"alexnet"}),  # 61M parameters, 58M of them in the classifier
)
