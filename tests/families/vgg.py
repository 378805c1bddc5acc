"""The VGG family: torchvision's VGG-11, 13, 16 and 19 (Simonyan & Zisserman 2015, Table 1,
configurations A, B, D, E), each with and without BatchNorm (specs/vgg.cnn, with the thin alias
vgg16.cnn). Module names are torchvision's, so its state_dicts load strictly."""
from families import Family

FAMILY = Family(
    specs=("vgg.cnn", "vgg16.cnn"),
    strict=True,
    size=32,  # torchvision's min_size; the 7x7 adaptive pool then repeats the 1x1 map
    # 133M to 144M parameters each, most of them in the classifier whatever the input size
    slow=frozenset({"vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"}),
)
