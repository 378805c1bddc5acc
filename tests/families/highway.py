"""The convolutional highway network (Srivastava et al. 2015), specs/highway.cnn. No library
builds it: test_family_highway.py compares it with an independent PyTorch implementation written
there from the paper. The paper tabulates no network of exactly this layout; the totals below are
counted here from the layout the spec's header describes, apart from the spec."""
from families import Family


def layout_params(depth, widths=(32, 64, 128), classes=10, k=3):
    """Stem 3x3 conv, per stage a 3x3 conv from the previous width (from the second stage on)
    and `depth` highway layers (two k x k convs, H and T, each c -> c with bias), fc."""
    conv = lambda cin, cout, kk: (cin * kk * kk + 1) * cout  # noqa: E731
    total = conv(3, widths[0], 3) + (widths[-1] + 1) * classes
    for s, c in enumerate(widths):
        total += (conv(widths[s - 1], c, 3) if s else 0) + depth * 2 * conv(c, c, k)
    return total


FAMILY = Family(
    specs=("highway.cnn",),
    paper_params={
        "highway_cifar": (layout_params(3), 0, "Srivastava et al. 2015, Sec. 3 (the layout counted)"),
        "highway_cifar_deep": (layout_params(10), 0, "Srivastava et al. 2015, Sec. 3 (the layout counted)"),
    },
)
