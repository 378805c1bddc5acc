"""GoogLeNet as torchvision builds it (specs/googlenet.cnn; the paper's version, inception_v1.cnn,
is checked against the paper in test_specs.py). Module names are torchvision's, so its state_dict
loads strictly."""
from families import Family

FAMILY = Family(
    specs=("googlenet.cnn",),
    strict=True,
    size=64,
    # without init_weights=False torchvision warns that its default will change, and initialises
    # (which the output check overwrites) all the same
    reference_kwargs={"googlenet": {"init_weights": False}},
)
