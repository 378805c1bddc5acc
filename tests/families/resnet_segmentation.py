"""torchvision's segmentation models on ResNet-50 and 101: FCN and DeepLabV3
(specs/resnet_segmentation.cnn). Module names are torchvision's (backbone.*, classifier.*,
aux_classifier.*), so its state_dicts load strictly; the reference is built without ImageNet
weights in its backbone (weights_backbone=None). torchvision's weights metadata (GFLOPS)
describes the pretrained models, which carry the auxiliary classifier (aux_loss=True)."""
from families import Family

_NAMES = ("fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101")

FAMILY = Family(
    specs=("resnet_segmentation.cnn",),
    strict=True,
    size=64,
    slow=frozenset(_NAMES),
    reference_kwargs={n: {"weights_backbone": None} for n in _NAMES},
    published_with={n: {"aux": True} for n in _NAMES},
)
