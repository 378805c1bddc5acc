"""The ResNet family: torchvision's ResNets, ResNeXts and Wide ResNets (specs/resnet.cnn, with
the thin aliases resnet18.cnn and resnet50.cnn), timm's pre-activation ResNets
(preact_resnet.cnn) and the CIFAR networks of He et al. 2016 and Huang et al. 2016
(resnet_cifar.cnn). Module names are the references', so their state_dicts load strictly."""
from families import Family

FAMILY = Family(
    specs=("resnet.cnn", "resnet18.cnn", "resnet50.cnn", "preact_resnet.cnn", "resnet_cifar.cnn"),
    strict=True,
    size=64,
    slow=frozenset({"resnet101", "resnet152", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2",
                    "wide_resnet101_2", "preact_resnet101", "cifar_resnet1202"}),
    # He et al. 2016, Table 6 ("# params"), rounded there to two significant digits (three for
    # 0.27M ... 0.85M); the plain nets have the same layers without shortcuts, and option A adds
    # no parameters. Huang et al. 2016 train the same 110-layer network (1.7M) with stochastic depth.
    paper_params={
        "cifar_resnet20": (0.27e6, 0.005e6, "He et al. 2016, Table 6"),
        "cifar_resnet32": (0.46e6, 0.005e6, "He et al. 2016, Table 6"),
        "cifar_resnet44": (0.66e6, 0.005e6, "He et al. 2016, Table 6"),
        "cifar_resnet56": (0.85e6, 0.005e6, "He et al. 2016, Table 6"),
        "cifar_resnet110": (1.7e6, 0.05e6, "He et al. 2016, Table 6"),
        "cifar_resnet1202": (19.4e6, 0.05e6, "He et al. 2016, Table 6"),
        "cifar_plain20": (0.27e6, 0.005e6, "He et al. 2016, Table 6 (ResNet-20's layers)"),
        "cifar_plain56": (0.85e6, 0.005e6, "He et al. 2016, Table 6 (ResNet-56's layers)"),
        "cifar_resnet110_stochastic_depth": (1.7e6, 0.05e6, "He et al. 2016, Table 6 (ResNet-110)"),
    },
)
