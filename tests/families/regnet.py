"""RegNetX and RegNetY (specs/regnet.cnn) as torchvision builds them: the seven RegNetX and eight
RegNetY builders, their stage widths and depths computed in the spec from
BlockParams.from_init_params's arguments. Module names are torchvision's (`trunk_output.block1.
block1-0.f.a.0`), so its state_dicts load strictly. Outputs are compared at 64x64 (the trunk
downsamples by 32)."""
from families import Family

FAMILY = Family(
    specs=("regnet.cnn",),
    strict=True,
    size=64,
    # regnet_y_400mf (with squeeze-and-excitation) is the fast tier's; the others take seconds each
    slow=frozenset({"regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf", "regnet_y_16gf",
                    "regnet_y_32gf", "regnet_y_128gf", "regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf",
                    "regnet_x_3_2gf", "regnet_x_8gf", "regnet_x_16gf", "regnet_x_32gf"}),
)
