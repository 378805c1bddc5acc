"""The convolutional highway network (specs/highway.cnn) against Srivastava et al. 2015: each
highway layer's structure (Sec. 3: H and T convolutions of the same size, zero-padded, T a
sigmoid, y = H * T + x * (1 - T)), and (slow) the outputs of an independent PyTorch
implementation written here from the paper, into which the spec's weights load strictly; with
the gate shut (T = 0) a layer carries its input, with it open (T = 1) it is H.
"""
import pytest

from cnnc.pipeline import front_end


def test_highway_layers_follow_section_3():
    g = front_end("highway_cifar").graph
    by_path = {n.path: n for n in g.nodes}
    layers = sorted({n.path.split(".")[0] for n in g.nodes if n.path.startswith("stage")})
    assert layers == [f"stage{s}_{i}" for s in (1, 2, 3) for i in range(3)]
    for name in layers:
        plain, gate = by_path[f"{name}.plain"], by_path[f"{name}.gate"]
        (x,) = plain.inputs
        assert gate.inputs == (x,)
        assert plain.shape == gate.shape == g.nodes[x].shape  # same size: the carry needs it
        assert plain.attr("kernel") == gate.attr("kernel") == (3, 3) and plain.attr("bias") and gate.attr("bias")
        users = g.users()
        assert [g.nodes[u].op for u in users[plain.id]] == ["relu"]
        assert [g.nodes[u].op for u in users[gate.id]] == ["sigmoid"]
    assert [n.shape for n in g.nodes if n.path.startswith("stage3_2.plain")] == [(128, 8, 8)]
    assert front_end("highway_cifar", {"depth": 7}).graph.nodes[-1].shape == (10,)


def test_one_minus_t_is_exact():
    """`1 - t` builds -t + 1 (scale -1, shift 1): in floating point, 1 - t exactly."""
    g = front_end("highway_cifar").graph
    shifts = [n for n in g.nodes if n.op == "shift"]
    assert len(shifts) == 9 and all(n.attr("offset") == 1.0 for n in shifts)
    for n in shifts:
        neg = g.nodes[n.inputs[0]]
        assert neg.op == "scale" and neg.attr("factor") == -1.0 and g.nodes[neg.inputs[0]].op == "sigmoid"


def test_init_scheme_finds_the_transform_gates():
    """`init highway(gate_bias=...)`: the gates are the convs whose only user is a sigmoid."""
    g = front_end("highway_cifar", {"gate_bias": -3.0}).graph
    assert (g.init.scheme, g.init.options) == ("highway", (("gate_bias", -3.0),))
    assert g.init.gates == tuple(f"stage{s}_{i}.gate" for s in (1, 2, 3) for i in range(3))


def test_init_scheme_without_a_gate_is_a_located_error():
    from cnnc.diagnostics import CnncError

    spec = ("network n() init highway {\n x = input(2, 4, 4)\n"
            " output o = (x -> conv(2, 1) -> sigmoid) * (x -> conv(2, 1) -> relu)\n}\n")
    front_end(spec)  # a gate: fine
    with pytest.raises(CnncError) as info:
        front_end(spec.replace("-> sigmoid", "-> relu"))
    assert info.value.message == "init highway: no transform gate here (a conv with a bias whose only user is a sigmoid)"
    assert (info.value.loc.line, info.value.loc.col) == (1, 18)  # the scheme's name


torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

import cnnc  # noqa: E402

torch.set_num_threads(2)


class HighwayLayer(nn.Module):
    """y = H(x) T(x) + x (1 - T(x)), H = relu(conv), T = sigmoid(conv), gate bias negative."""

    def __init__(self, c, k=3, gate_bias=-2.0):
        super().__init__()
        self.plain = nn.Conv2d(c, c, k, padding=k // 2)
        self.gate = nn.Conv2d(c, c, k, padding=k // 2)
        nn.init.constant_(self.gate.bias, gate_bias)

    def forward(self, x):
        h, t = F.relu(self.plain(x)), torch.sigmoid(self.gate(x))
        return h * t + x * (1.0 - t)


class PaperHighwayNet(nn.Module):
    def __init__(self, depth, widths=(32, 64, 128), classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1)
        for s, c in enumerate(widths):
            if s:
                setattr(self, f"conv{s + 1}", nn.Conv2d(widths[s - 1], c, 3, padding=1))
            for i in range(depth):
                setattr(self, f"stage{s + 1}_{i}", HighwayLayer(c))
        self.fc = nn.Linear(widths[-1], classes)
        self.depth, self.stages = depth, len(widths)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        for s in range(self.stages):
            if s:
                x = F.relu(getattr(self, f"conv{s + 1}")(F.max_pool2d(x, 2)))
            for i in range(self.depth):
                x = getattr(self, f"stage{s + 1}_{i}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _pair(name, depth):
    torch.manual_seed(0)
    reference = PaperHighwayNet(depth).double().eval()
    model = cnnc.compile(name).double().eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    return model, reference


def test_parameter_count_of_the_reference():
    with torch.device("meta"):
        count = sum(p.numel() for p in PaperHighwayNet(3).parameters())
    g = front_end("highway_cifar").graph
    assert sum(g.params_of(n) for n in g.nodes) == count


def test_the_same_seed_gives_the_reference_weights():
    """The scheme sets each gate's bias to -2 after torch's defaults, as the reference's
    constructor does: from the same seed, every tensor is the reference's."""
    torch.manual_seed(0)
    reference = PaperHighwayNet(3)
    torch.manual_seed(0)
    ours = cnnc.compile("highway_cifar")
    theirs = reference.state_dict()
    assert list(ours.state_dict()) == list(theirs)
    assert [k for k, v in ours.state_dict().items() if not torch.equal(v, theirs[k])] == []
    gates = [v for k, v in ours.state_dict().items() if k.endswith("gate.bias")]
    assert len(gates) == 9 and all(bool((v == -2.0).all()) for v in gates)


@pytest.mark.slow
@pytest.mark.parametrize("name, depth", [("highway_cifar", 3), ("highway_cifar_deep", 10)])
def test_outputs_agree_with_an_independent_implementation(name, depth):
    model, reference = _pair(name, depth)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    assert theirs.abs().max() > 0 and ours.shape == theirs.shape == (2, 10)
    assert ((ours - theirs).norm() / theirs.norm()).item() < 1e-10


@pytest.mark.slow
def test_the_gate_carries_or_transforms():
    """T = 0 (gate bias -1e4): the layer returns its input; T = 1 (+1e4): it returns H(x)."""
    model, _ = _pair("highway_cifar", 3)
    layer = model.stage2_1
    x = torch.randn(2, 64, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        nn.init.zeros_(layer.gate.weight)
        nn.init.constant_(layer.gate.bias, -1e4)
        assert torch.equal(layer(x), x)
        nn.init.constant_(layer.gate.bias, 1e4)
        assert torch.equal(layer(x), F.relu(layer.plain(x)))
