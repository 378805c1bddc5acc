"""U-Net (specs/unet.cnn) against Ronneberger et al. 2015: the map sizes and channels of Fig. 1
at every level, the crops of the skip connections, the padded variant's sizes, and (slow) the
outputs of an independent PyTorch implementation written here from the paper's Sec. 2, into
which the spec's weights load strictly (module names chosen alike).
"""
import pytest

from cnnc.pipeline import front_end

# Fig. 1, 572x572 input: every convolution's output (channels, size), level by level
FIG1 = {
    "down1.conv1": (64, 570), "down1.conv2": (64, 568), "pool1": (64, 284),
    "down2.conv1": (128, 282), "down2.conv2": (128, 280), "pool2": (128, 140),
    "down3.conv1": (256, 138), "down3.conv2": (256, 136), "pool3": (256, 68),
    "down4.conv1": (512, 66), "down4.conv2": (512, 64), "pool4": (512, 32),
    "bottom.conv1": (1024, 30), "bottom.conv2": (1024, 28),
    "up4.upconv": (512, 56), "up4.concat1": (1024, 56), "up4.conv1": (512, 54), "up4.conv2": (512, 52),
    "up3.upconv": (256, 104), "up3.concat1": (512, 104), "up3.conv1": (256, 102), "up3.conv2": (256, 100),
    "up2.upconv": (128, 200), "up2.concat1": (256, 200), "up2.conv1": (128, 198), "up2.conv2": (128, 196),
    "up1.upconv": (64, 392), "up1.concat1": (128, 392), "up1.conv1": (64, 390), "up1.conv2": (64, 388),
    "classifier": (2, 388),
}


def _shapes(g):
    return {n.path: n.shape for n in g.nodes}


def test_maps_follow_fig1():
    g = front_end("unet").graph
    shapes = _shapes(g)
    assert g.nodes[0].shape == (1, 572, 572)
    assert {p: shapes[p] for p in FIG1} == {p: (c, s, s) for p, (c, s) in FIG1.items()}
    convs = [n for n in g.nodes if n.op in ("conv", "conv_transpose")]
    assert len(convs) == 23  # Sec. 2: "In total the network has 23 convolutional layers."
    assert all(n.attr("padding") == (0, 0) for n in convs)


def test_skip_connections_crop_the_centre():
    """Each skip map is cropped to the up-convolution's size, equally on every side (568 -> 392
    crops 88 pixels per side), and comes first in the concatenation."""
    g = front_end("unet").graph
    crops = {n.path.split(".")[0]: n for n in g.nodes if n.op == "zeropad"}
    amounts = {k: [n.attr(a) for a in ("left", "right", "top", "bottom", "front", "back")] for k, n in crops.items()}
    assert amounts == {"up4": [-4] * 4 + [0, 0], "up3": [-16] * 4 + [0, 0], "up2": [-40] * 4 + [0, 0],
                       "up1": [-88] * 4 + [0, 0]}
    by_path = {n.path: n for n in g.nodes}
    for level in (1, 2, 3, 4):
        concat = by_path[f"up{level}.concat1"]
        assert [g.nodes[i].path for i in concat.inputs] == [f"up{level}.crop.zeropad1", f"up{level}.upconv"]
        assert g.nodes[crops[f"up{level}"].inputs[0]].path == f"down{level}.relu2"


def test_smallest_tile_and_padded_variant():
    g = front_end("unet", {"size": 188}).graph
    assert _shapes(g)["bottom.conv2"] == (1024, 4, 4) and g.nodes[-1].shape == (2, 4, 4)
    g = front_end("unet_padded", {"size": 64}).graph
    shapes = _shapes(g)
    assert [shapes[f"down{i}.conv2"] for i in (1, 2, 3, 4)] == [(64, 64, 64), (128, 32, 32), (256, 16, 16),
                                                                 (512, 8, 8)]
    assert shapes["bottom.conv2"] == (1024, 4, 4) and shapes["classifier"] == (2, 64, 64)
    assert not any(n.op == "zeropad" and n.attr("left") != 0 for n in g.nodes)  # nothing to crop
    assert front_end("unet_padded").graph.nodes[-1].shape == (2, 512, 512)


torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

import cnnc  # noqa: E402

torch.set_num_threads(2)


class DoubleConv(nn.Module):
    def __init__(self, cin, cout, padding):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=padding)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=padding)

    def forward(self, x):
        return F.relu(self.conv2(F.relu(self.conv1(x))))


class Up(DoubleConv):
    """Up-convolution halving the channels, concatenation with the centre of the skip map."""

    def __init__(self, cin, cout, padding):
        super().__init__(cin, cout, padding)
        self.upconv = nn.ConvTranspose2d(cin, cout, 2, stride=2)

    def forward(self, x, skip):
        x = self.upconv(x)
        top, left = (skip.shape[2] - x.shape[2]) // 2, (skip.shape[3] - x.shape[3]) // 2
        skip = skip[:, :, top:top + x.shape[2], left:left + x.shape[3]]
        return super().forward(torch.cat([skip, x], 1))


class PaperUNet(nn.Module):
    def __init__(self, classes=2, channels=1, padding=0):
        super().__init__()
        widths = [64, 128, 256, 512]
        for i, c in enumerate(widths):
            setattr(self, f"down{i + 1}", DoubleConv(channels if i == 0 else widths[i - 1], c, padding))
        self.bottom = DoubleConv(512, 1024, padding)
        for i, c in enumerate(widths):
            setattr(self, f"up{i + 1}", Up(2 * c, c, padding))
        self.dropout = nn.Dropout(0.5)
        self.classifier = nn.Conv2d(64, classes, 1)

    def forward(self, x):
        skips = []
        for i in range(1, 5):
            x = getattr(self, f"down{i}")(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.dropout(self.bottom(x))
        for i in range(4, 0, -1):
            x = getattr(self, f"up{i}")(x, skips[i - 1])
        return self.classifier(x)


def test_parameter_count_of_the_paper_net():
    from families.unet import FIG1_PARAMS

    with torch.device("meta"):  # shapes only
        count = sum(p.numel() for p in PaperUNet().parameters())
    assert count == FIG1_PARAMS == 31_030_658
    g = front_end("unet").graph
    assert sum(g.params_of(n) for n in g.nodes) == count


@pytest.mark.slow
@pytest.mark.parametrize("name, size", [("unet", 188), ("unet_padded", 64)])
def test_outputs_agree_with_an_independent_implementation(name, size):
    torch.manual_seed(0)
    reference = PaperUNet(padding=1 if name == "unet_padded" else 0).double().eval()
    model = cnnc.compile(name, size=size).double().eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 1, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    assert theirs.abs().max() > 0 and ours.shape == theirs.shape == (1, 2, size - 184 if name == "unet" else size,
                                                                     size - 184 if name == "unet" else size)
    assert ((ours - theirs).norm() / theirs.norm()).item() < 1e-10
