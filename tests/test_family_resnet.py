"""The ResNet family's own checks, beyond the shared ones (test_specs.py, test_torchvision_equiv.py,
test_init.py): the CIFAR networks of specs/resnet_cifar.cnn have no library reference, so they are
checked against the papers' description and against an independent PyTorch implementation
written here from the papers (He et al. 2016, Sec. 4.2, option A; Huang et al. 2016, linear
decay), into which the spec's module names load strictly.
"""
import pytest

from cnnc.pipeline import front_end

CIFAR = {"cifar_resnet20": 3, "cifar_resnet32": 5, "cifar_resnet44": 7, "cifar_resnet56": 9, "cifar_resnet110": 18,
         "cifar_resnet1202": 200, "cifar_plain20": 3, "cifar_plain56": 9, "cifar_resnet110_stochastic_depth": 18}


@pytest.mark.parametrize("name", sorted(CIFAR))
def test_cifar_layout_follows_section_4_2(name):
    """6n + 2 weighted layers; 16, 32, 64 filters on 32x32, 16x16, 8x8 maps; 10 classes; shortcuts
    (identity, or subsample and zero-pad) hold no parameters."""
    n = CIFAR[name]
    g = front_end(name).graph
    weighted = [x for x in g.nodes if x.op in ("conv", "linear")]
    assert len(weighted) == 6 * n + 2
    last = {s: next(x.shape for x in reversed(g.nodes) if x.path.startswith(f"layer{s}.")) for s in (1, 2, 3)}
    assert last == {1: (16, 32, 32), 2: (32, 16, 16), 3: (64, 8, 8)}
    assert g.nodes[-1].shape == (10,)
    adds = [x for x in g.nodes if x.op == "add"]
    assert len(adds) == (0 if "plain" in name else 3 * n)
    pads = [x for x in g.nodes if x.op == "zeropad"]
    assert [(x.attr("front"), x.attr("back")) for x in pads] == ([] if "plain" in name else [(8, 8), (16, 16)])


def test_stochastic_depth_decays_linearly():
    """Huang et al. 2016, Eq. 4: block l of L = 54 survives with p_l = 1 - l / L * (1 - 0.5)."""
    g = front_end("cifar_resnet110_stochastic_depth").graph
    drops = [x.attr("p") for x in g.nodes if x.op == "droppath"]
    assert drops == pytest.approx([0.5 * l / 54 for l in range(1, 55)])
    assert not any(x.op == "droppath" for x in front_end("cifar_resnet110").graph.nodes)


torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn, F = torch.nn, torch.nn.functional

import cnnc  # noqa: E402

torch.set_num_threads(2)


class PaperBlock(nn.Module):
    """Two 3x3 conv-BN layers; the shortcut is the identity, or (option A) the input subsampled by
    the stride with the extra channels zero-padded; stochastic depth drops the residual branch."""

    def __init__(self, cin, cout, stride, residual, death):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.residual, self.stride, self.extra = residual, stride, cout - cin
        self.drop = torchvision.ops.StochasticDepth(death, "row") if death else nn.Identity()

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if not self.residual:
            return F.relu(y)
        if self.stride != 1 or self.extra:
            x = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return F.relu(self.drop(y) + x)


class PaperNet(nn.Module):
    def __init__(self, n, residual=True, death_rate=0.0, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin, total = 16, 3 * n
        for s, cout in enumerate((16, 32, 64)):
            blocks = [PaperBlock(cin if i == 0 else cout, cout, 2 if s and i == 0 else 1, residual,
                                 death_rate * (s * n + i + 1) / total) for i in range(n)]
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
            cin = cout
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


PAPER = {"cifar_resnet20": dict(n=3), "cifar_resnet56": dict(n=9), "cifar_plain20": dict(n=3, residual=False),
         "cifar_plain56": dict(n=9, residual=False), "cifar_resnet110": dict(n=18),
         "cifar_resnet110_stochastic_depth": dict(n=18, death_rate=0.5), "cifar_resnet1202": dict(n=200)}


def _pair(name):
    import sys

    from cnnc_testlib import ROOT

    sys.path.insert(0, str(ROOT / "tools"))
    from benchlib import randomize_normalization

    torch.manual_seed(0)
    reference = randomize_normalization(PaperNet(**PAPER[name])).double()
    model = cnnc.compile(name)
    model.load_state_dict(reference.state_dict(), strict=True)
    return model.double(), reference


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in (
    "cifar_resnet1202", "cifar_resnet110", "cifar_resnet110_stochastic_depth") else n for n in PAPER])
def test_cifar_nets_compute_what_the_paper_describes(name):
    model, reference = _pair(name)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model.eval()(x), reference.eval()(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


def test_stochastic_depth_in_training_drops_as_torchvision_does():
    """In training each block's branch is kept per sample with its survival probability and
    scaled by 1 / p (torchvision.ops.StochasticDepth, mode "row"): with the same random stream the
    outputs agree, and differ from the network without stochastic depth."""
    model, reference = _pair("cifar_resnet110_stochastic_depth")
    x = torch.randn(8, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(5)
    ours = model.train()(x)
    torch.manual_seed(5)
    theirs = reference.train()(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    plain = cnnc.compile("cifar_resnet110").double().train()
    plain.load_state_dict(reference.state_dict(), strict=True)
    assert not torch.allclose(plain(x), ours)
