"""Inception v3 as torchvision builds it (specs/inception_v3.cnn). Module names are torchvision's,
so its state_dict loads strictly."""
from families import Family

FAMILY = Family(
    specs=("inception_v3.cnn",),
    strict=True,
    size=None,  # 299: the auxiliary head needs the 17x17 grid (test_family_inception_v3 checks 75x75 without it)
    slow=frozenset({"inception_v3"}),
    reference_kwargs={"inception_v3": {"init_weights": False}},  # as googlenet's
)
