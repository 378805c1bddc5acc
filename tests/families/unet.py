"""U-Net (Ronneberger et al. 2015), specs/unet.cnn: the paper's unpadded network and the padded
variant. No library builds it: test_family_unet.py checks the shapes of Fig. 1 and compares the
outputs with an independent PyTorch implementation written there from the paper. The paper
publishes no parameter total; the one below is counted from Fig. 1's layers here, apart from
the spec: (in * k * k + 1) * out per convolution."""
from families import Family

# Fig. 1: (in channels, out channels, kernel) of every convolution, with bias
_FIG1 = ([(1, 64, 3), (64, 64, 3), (64, 128, 3), (128, 128, 3), (128, 256, 3), (256, 256, 3),  # contracting
          (256, 512, 3), (512, 512, 3), (512, 1024, 3), (1024, 1024, 3)]
         + [(1024, 512, 2), (1024, 512, 3), (512, 512, 3), (512, 256, 2), (512, 256, 3), (256, 256, 3),  # expansive
            (256, 128, 2), (256, 128, 3), (128, 128, 3), (128, 64, 2), (128, 64, 3), (64, 64, 3)]
         + [(64, 2, 1)])  # the 1x1 classifier
FIG1_PARAMS = sum((cin * k * k + 1) * cout for cin, cout, k in _FIG1)

FAMILY = Family(
    specs=("unet.cnn",),
    paper_params={
        "unet": (FIG1_PARAMS, 0, "Ronneberger et al. 2015, Fig. 1 (its layers counted)"),
        "unet_padded": (FIG1_PARAMS, 0, "Ronneberger et al. 2015, Fig. 1 (its layers counted; padding adds none)"),
    },
    # the unpadded network's map shrinks: 572 -> 388 (Fig. 1), 188 -> 4 (the smallest input)
    out_sizes={"unet": {572: 388, 188: 4}},
)
