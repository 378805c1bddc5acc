"""The ops and statements that reach decoders, ShuffleNet, RegNet and torchvision's module names
(issue 15 items 1-2, issue 16 item 1).

Each op is checked against torch applied directly to the same tensor (F.conv_transpose2d,
F.interpolate, torch.split, F.pad, ...): the generated module's output shapes equal the IR's and
torch's, its outputs equal torch's, and parameter and MAC counts equal an independent count
(the module's `p.numel()`, a MAC formula written here). Exact error texts are in
test_diagnostics.py.
"""
import pytest

torch = pytest.importorskip("torch")
from torch.nn import functional as F  # noqa: E402

import cnnc  # noqa: E402
from cnnc.backends.summary import summary_data  # noqa: E402
from cnnc.ir.ops import OPS  # noqa: E402
from cnnc.pipeline import front_end  # noqa: E402
from cnnc_testlib import TEST_SPECS  # noqa: E402

torch.set_num_threads(2)


def _spec_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_spec_value(x) for x in v) + "]"
    return repr(v)


def _call(op, pos=(), **kw) -> str:
    args = [_spec_value(v) for v in pos] + [f"{k}={_spec_value(v)}" for k, v in kw.items()]
    return f"{op}({', '.join(args)})"


def _network(inputs, outputs) -> str:
    """A network with the given inputs (name -> dims) and outputs (name -> expression)."""
    lines = [f"    {name} = input({', '.join(map(str, dims))})" for name, dims in inputs.items()]
    lines += [f"    output {name} = {expr}" for name, expr in outputs.items()]
    return "network t() {\n" + "\n".join(lines) + "\n}\n"


def _build(text):
    graph = front_end(text).graph
    return graph, cnnc.compile(text).eval()


def _out_shapes(graph):
    return {o.name: graph.nodes[o.node].shape for o in graph.outputs}


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


# ---- conv_transpose --------------------------------------------------------------------------------

CONV_T = [
    dict(out=6, kernel=3),
    dict(out=4, kernel=4, stride=2, padding=1),
    dict(out=6, kernel=[3, 5], stride=[2, 3], padding=[1, 2], output_padding=[1, 2]),
    dict(out=8, kernel=3, stride=2, groups=2, dilation=2, output_padding=1),
    dict(out=3, kernel=1, stride=3, bias=False),
    dict(out=4, kernel=[2, 3], stride=[1, 2], dilation=[3, 1], output_padding=[2, 1], groups=4),
]


def test_conv_transpose_matches_torch_and_counts():
    torch.manual_seed(0)
    c, h, w = 4, 7, 9
    outputs = {}
    for i, cfg in enumerate(CONV_T):
        kw = {k: v for k, v in cfg.items() if k not in ("out", "kernel")}
        outputs[f"o{i}"] = f"x -> {_call('conv_transpose', (cfg['out'], cfg['kernel']), **kw)} as t{i}"
    graph, model = _build(_network({"x": (c, h, w)}, outputs))
    x = torch.randn(2, c, h, w)
    with torch.no_grad():
        got = model(x)
    nodes = {n.path: n for n in graph.nodes}
    for i, cfg in enumerate(CONV_T):
        layer = getattr(model, f"t{i}")
        assert type(layer) is torch.nn.ConvTranspose2d
        stride, padding = _pair(cfg.get("stride", 1)), _pair(cfg.get("padding", 0))
        output_padding, dilation = _pair(cfg.get("output_padding", 0)), _pair(cfg.get("dilation", 1))
        groups, (kh, kw) = cfg.get("groups", 1), _pair(cfg["kernel"])
        with torch.no_grad():
            want = F.conv_transpose2d(x, layer.weight, layer.bias, stride, padding, output_padding, groups, dilation)
        assert tuple(want.shape[1:]) == nodes[f"t{i}"].shape == tuple(got[i].shape[1:]), cfg
        assert torch.equal(got[i], want), cfg
        # parameters: the module's own count; MACs: every input pixel times out/groups kernels of kh*kw
        assert graph.params_of(nodes[f"t{i}"]) == sum(p.numel() for p in layer.parameters())
        macs = h * w * c * (cfg["out"] // groups) * kh * kw
        assert graph.macs_of(nodes[f"t{i}"]) == macs
        if padding == (0, 0):  # nothing cropped: the MACs are the products a scatter of ones adds up
            ones = F.conv_transpose2d(torch.ones(1, c, h, w, dtype=torch.float64),
                                      torch.ones_like(layer.weight, dtype=torch.float64),
                                      None, stride, 0, output_padding, groups, dilation)
            assert ones.sum().item() == macs
    assert summary_data(graph)["params"] == sum(p.numel() for p in model.parameters())


# ---- upsample ----------------------------------------------------------------------------------------

UPSAMPLE = [
    dict(scale=2),
    dict(scale=1.5),
    dict(scale=0.7),
    dict(scale=2.3),
    dict(scale=[1.5, 2.5]),
    dict(scale=0.29),
    dict(size=[5, 11]),
    dict(scale=1.7, mode="bilinear"),
    dict(scale=1.7, mode="bilinear", align_corners=True),
    dict(size=[10, 4], mode="bicubic", align_corners=True),
    dict(scale=1.3, mode="bicubic"),
    dict(size=6, mode="bilinear"),
]


def _interpolate(x, cfg):
    scale, size = cfg.get("scale"), cfg.get("size")
    kwargs = {"mode": cfg.get("mode", "nearest")}
    if "align_corners" in cfg:
        kwargs["align_corners"] = cfg["align_corners"]
    if scale is not None:
        return F.interpolate(x, scale_factor=tuple(scale) if isinstance(scale, list) else scale, **kwargs)
    return F.interpolate(x, size=tuple(size) if isinstance(size, list) else size, **kwargs)


def test_upsample_matches_torch_interpolate():
    torch.manual_seed(0)
    outputs = {f"o{i}": f"x -> {_call('upsample', **cfg)}" for i, cfg in enumerate(UPSAMPLE)}
    graph, model = _build(_network({"x": (3, 7, 9)}, outputs))
    x = torch.randn(2, 3, 7, 9)
    shapes = _out_shapes(graph)
    with torch.no_grad():
        got = model(x)
    for i, cfg in enumerate(UPSAMPLE):
        want = _interpolate(x, cfg)
        assert tuple(want.shape[1:]) == shapes[f"o{i}"] == tuple(got[i].shape[1:]), cfg
        assert torch.equal(got[i], want), cfg
    assert sum(graph.params_of(n) + graph.macs_of(n) for n in graph.nodes) == 0


def test_upsample_shape_is_torchs_for_fractional_scales():
    """torch floors input * scale; one input per size, every scale on each (no rounding surprises
    such as 10 * 0.3 = 3.0000000000000004 or 9 * (1/3) = 3.0)."""
    sizes = list(range(4, 21))
    scales = [1 / 3, 0.3, 0.35, 0.5, 0.7, 0.9, 1.1, 1.25, 1 / 0.7, 1.5, 2.3, 2.5, 3.7]
    inputs = {f"x{s}": (1, s, s + 1) for s in sizes}
    outputs = {f"o{s}_{j}": f"x{s} -> upsample(scale={scale!r})" for s in sizes for j, scale in enumerate(scales)}
    shapes = _out_shapes(front_end(_network(inputs, outputs)).graph)
    for s in sizes:
        x = torch.zeros(1, 1, s, s + 1)
        for j, scale in enumerate(scales):
            assert tuple(F.interpolate(x, scale_factor=scale).shape[1:]) == shapes[f"o{s}_{j}"], (s, scale)


# ---- split and slice; ShuffleNet v2 ----------------------------------------------------------------------


def test_split_and_slice_equal_torch_split():
    text = """
    network t() {
        x = input(6, 5, 5)
        a, b = split(x, 2)
        p = split(x, [1, 2, 3])
        output a = a
        output b = b
        output p0 = p[0]
        output p1 = p[1]
        output p2 = p[2]
        output s = slice(x, 2, 5)
        output c = split(x, 3)[1]
        output f = x -> flatten -> slice(10, 20)
    }
    """
    graph, model = _build(text)
    x = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        got = model(x)
    halves, parts = torch.chunk(x, 2, dim=1), torch.split(x, [1, 2, 3], dim=1)
    want = dict(a=halves[0], b=halves[1], p0=parts[0], p1=parts[1], p2=parts[2], s=x[:, 2:5],
                c=torch.chunk(x, 3, dim=1)[1], f=x.flatten(1)[:, 10:20])
    shapes = _out_shapes(graph)
    for name, value in want.items():
        assert torch.equal(getattr(got, name), value), name
        assert tuple(value.shape[1:]) == shapes[name], name
    paths = [n.path for n in graph.nodes]
    assert paths[1:7] == ["split1_0", "split1_1", "split2_0", "split2_1", "split2_2", "slice1"]
    assert "split3_1" in paths and "split3_0" not in paths  # the unused parts are pruned, silently
    assert front_end(text).warnings == []


SHUFFLE_UNIT = """
# ShuffleNet v2's unit, as torchvision's InvertedResidual (names and all)
block unit(x, out, stride) {
    bf = out // 2
    if stride == 1 {
        a, b = split(x, 2)
    } else {
        a = (x -> conv(x.channels, 3, stride=stride, padding=1, groups=x.channels, bias=false) as "0" -> bn as "1"
              -> conv(bf, 1, bias=false) as "2" -> bn as "3" -> relu as "4") as branch1
        b = x
    }
    y = (b -> conv(bf, 1, bias=false) as "0" -> bn as "1" -> relu as "2"
          -> conv(bf, 3, stride=stride, padding=1, groups=bf, bias=false) as "3" -> bn as "4"
          -> conv(bf, 1, bias=false) as "5" -> bn as "6" -> relu as "7") as branch2
    return concat(a, y) -> channel_shuffle(2)
}

network shuffle_units(size=16) {
    x = input(24, size, size)
    x = x -> unit(48, 2) as "0"
    output o = x -> unit(48, 1) as "1"
}
"""


def _randomize_bn(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


@pytest.mark.slow  # importing torchvision
def test_shufflenet_v2_units_load_torchvision_weights_strictly_and_agree():
    from torchvision.models.shufflenetv2 import InvertedResidual

    torch.manual_seed(0)
    reference = torch.nn.Sequential(InvertedResidual(24, 48, 2), InvertedResidual(48, 48, 1)).eval()
    _randomize_bn(reference)
    model = cnnc.compile(SHUFFLE_UNIT).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 24, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)


# ---- zeropad with channels; CIFAR ResNet's option-A shortcut --------------------------------------------

PADS = [(1, 0, 1, 0), (1, 2, 0, 1, 2, 3), (-1, 1, -1, 1, -1, 0), (0, 0, 0, 0, 1, 1), (0, 0, -2, 0, 0, -3)]


def test_zeropad_with_six_amounts_is_f_pad_on_w_h_c():
    torch.manual_seed(0)
    graph, model = _build(_network({"x": (4, 5, 6)}, {f"o{i}": f"x -> zeropad{pad}" for i, pad in enumerate(PADS)}))
    x = torch.randn(2, 4, 5, 6)
    shapes = _out_shapes(graph)
    with torch.no_grad():
        got = model(x)
    for i, pad in enumerate(PADS):
        want = F.pad(x, pad)
        l, r, t, b, f, k = pad + (0, 0)[: 6 - len(pad)]
        # torch's F.pad pads the last dimension first: W by (l, r), H by (t, b), C by (f, k)
        assert tuple(want.shape) == (2, 4 + f + k, 5 + t + b, 6 + l + r) == (2,) + shapes[f"o{i}"]
        assert torch.equal(got[i], want), pad


def test_cifar_option_a_shortcut():
    """He et al. 2016's option A: subsample by 2 and zero-pad the new channels, as the common
    CIFAR ResNet code writes it: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))."""
    text = """
    block shortcut_a(x, c) {
        pad = (c - x.channels) // 2
        return x -> maxpool(1, stride=2) -> zeropad(0, 0, 0, 0, pad, pad)
    }
    network t() {
        x = input(16, 7, 8)
        output o = x -> shortcut_a(32)
    }
    """
    graph, model = _build(text)
    x = torch.randn(2, 16, 7, 8)
    with torch.no_grad():
        got = model(x)
    want = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 32 // 4, 32 // 4), "constant", 0)
    assert torch.equal(got, want) and tuple(want.shape[1:]) == graph.nodes[-1].shape


# ---- pixel_shuffle, leaky_relu, groupnorm, adaptive_avgpool, dilated maxpool ------------------------------

MAXPOOLS = [
    dict(kernel=3, stride=2, padding=1, dilation=2),
    dict(kernel=3, stride=2, padding=1, dilation=2, ceil_mode=True),
    dict(kernel=2, stride=2, dilation=3, ceil_mode=True),
    dict(kernel=[3, 2], stride=[2, 3], padding=[1, 0], dilation=[1, 2], ceil_mode=True),
    dict(kernel=3, stride=3, dilation=1, ceil_mode=True),
    dict(kernel=2, stride=2, dilation=3),
]


def test_small_ops_match_torch():
    torch.manual_seed(0)
    outputs = {"ps": "x -> pixel_shuffle(2)", "lr": "x -> leaky_relu(0.2)", "lr0": "x -> leaky_relu",
               "gn": "x -> groupnorm(4, eps=1e-3) as gn", "aa": "x -> adaptive_avgpool([3, 4])",
               "ab": "x -> adaptive_avgpool(5)"}
    for i, cfg in enumerate(MAXPOOLS):
        kw = {k: v for k, v in cfg.items() if k != "kernel"}
        outputs[f"mp{i}"] = f"x -> {_call('maxpool', (cfg['kernel'],), **kw)}"
    graph, model = _build(_network({"x": (8, 9, 11)}, outputs))
    model.gn.weight.data.uniform_(0.5, 1.5)
    model.gn.bias.data.uniform_(-1, 1)
    x = torch.randn(2, 8, 9, 11)
    with torch.no_grad():
        got = model(x)
        want = dict(ps=F.pixel_shuffle(x, 2), lr=F.leaky_relu(x, 0.2), lr0=F.leaky_relu(x, 0.01),
                    gn=F.group_norm(x, 4, model.gn.weight, model.gn.bias, 1e-3),
                    aa=F.adaptive_avg_pool2d(x, (3, 4)), ab=F.adaptive_avg_pool2d(x, 5))
        for i, cfg in enumerate(MAXPOOLS):
            k = _pair(cfg["kernel"])
            want[f"mp{i}"] = F.max_pool2d(x, k, _pair(cfg["stride"]), _pair(cfg.get("padding", 0)),
                                          _pair(cfg["dilation"]), cfg.get("ceil_mode", False))
    shapes = _out_shapes(graph)
    for name, value in want.items():
        assert tuple(value.shape[1:]) == shapes[name] == tuple(getattr(got, name).shape[1:]), name
        assert torch.equal(getattr(got, name), value), name
    assert shapes["mp2"] != shapes["mp5"]  # ceil_mode makes a difference there
    gn = next(n for n in graph.nodes if n.path == "gn")
    assert graph.params_of(gn) == 2 * 8 == sum(p.numel() for p in model.gn.parameters())
    assert sum(graph.params_of(n) for n in graph.nodes) == sum(p.numel() for p in model.parameters())


def test_every_new_op_is_in_the_op_table_with_a_doc():
    for name in ("conv_transpose", "upsample", "slice", "pixel_shuffle", "leaky_relu", "groupnorm"):
        assert OPS[name].doc


# ---- builtins log, log2, exp: RegNet's width rule -----------------------------------------------------------

REGNET_WIDTHS = """
# RegNet's quantized linear widths (Radosavovic et al. 2020, eq. 2-4): u_j = w0 + wa * j,
# s_j = round(log(u_j / w0) / log(wm)), w_j = w0 * wm ** s_j, quantized to a multiple of q, then
# made divisible by the group width (torchvision's _adjust_widths_groups_compatibilty);
# one 1x1 conv per block records the width.
network regnet_widths(depth=16, w0=48, wa=27.89, wm=2.09, group=8, q=8) {
    x = input(1, 1, 1)
    for j in range(depth) {
        s = round(log((w0 + wa * j) / w0) / log(wm))
        w = int(round(w0 * exp(s * log(wm)) / q) * q)
        x = x -> conv(divisible(w, min(group, w)), 1)
    }
    output o = x
}
"""


@pytest.mark.slow  # importing torchvision
@pytest.mark.parametrize("depth, w0, wa, wm, group", [
    (16, 48, 27.89, 2.09, 8),     # regnet_y_400mf
    (14, 56, 38.84, 2.4, 16),     # regnet_y_800mf
    (22, 24, 24.48, 2.54, 16),    # regnet_x_400mf
    (17, 192, 76.82, 2.19, 56),   # regnet_y_8gf
], ids=["y_400mf", "y_800mf", "x_400mf", "y_8gf"])
def test_regnet_width_rule_is_computable(depth, w0, wa, wm, group):
    from torchvision.models.regnet import BlockParams

    reference = BlockParams.from_init_params(depth=depth, w_0=w0, w_a=wa, w_m=wm, group_width=group)
    graph = front_end(REGNET_WIDTHS, dict(depth=depth, w0=w0, wa=wa, wm=wm, group=group)).graph
    widths = [n.shape[0] for n in graph.nodes if n.op == "conv"]
    stages = []
    for w in widths:
        if stages and stages[-1][0] == w:
            stages[-1][1] += 1
        else:
            stages.append([w, 1])
    assert [w for w, _ in stages] == reference.widths and [d for _, d in stages] == reference.depths


def test_log_log2_exp_values():
    text = "network t() {\n x = input(1, 1, 1)\n output o = x -> conv(int(log2(64)) + int(round(log(1000, 10))) + int(round(exp(log(5)))), 1)\n}\n"
    assert front_end(text).graph.nodes[-1].shape == (6 + 3 + 5, 1, 1)


# ---- several inputs, several named outputs ---------------------------------------------------------------------

PYRAMID = """
network pyramid(size=32) {
    image = input(3, size, size)
    depth = input(1, size, size)
    x = concat(image, depth) -> conv(8, 3, padding=1)
    c3 = x -> conv(16, 3, stride=2, padding=1) -> relu
    c4 = c3 -> conv(32, 3, stride=2, padding=1) -> relu
    c5 = c4 -> conv(64, 3, stride=2, padding=1) -> relu
    p5 = c5 -> conv(16, 1) as lateral5
    p4 = (c4 -> conv(16, 1) as lateral4) + (p5 -> upsample(scale=2))
    p3 = (c3 -> conv(16, 1) as lateral3) + (p4 -> upsample(size=[c3.height, c3.width], mode="bilinear"))
    output p3 = p3
    output p4 = p4
    output p5 = p5
}
"""


def test_two_inputs_and_a_feature_pyramid_of_named_outputs(tmp_path, capsys):
    import inspect

    from cnnc.cli import main

    torch.manual_seed(0)
    graph, model = _build(PYRAMID)
    x, d = torch.randn(2, 3, 32, 32), torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        out = model(x, d)
        assert type(out).__name__ == "PyramidOutputs" and out._fields == ("p3", "p4", "p5")
        assert [tuple(t.shape[1:]) for t in out] == [(16, 16, 16), (16, 8, 8), (16, 4, 4)]
        assert [tuple(t.shape[1:]) for t in out] == list(_out_shapes(graph).values())
        assert not torch.equal(model(x, d).p5, model(x, d + 1).p5)  # the second input feeds the net
    # forward takes the inputs in definition order: image (3 channels) first
    assert "def forward(self, x: Tensor, y: Tensor):" in inspect.getsource(type(model))
    assert "torch.cat([x, y], 1)" in inspect.getsource(type(model))
    assert summary_data(graph)["inputs"] == [{"path": "input1", "shape": [3, 32, 32]},
                                             {"path": "input2", "shape": [1, 32, 32]}]
    spec = tmp_path / "pyramid.cnn"
    spec.write_text(PYRAMID)
    assert main(["summary", str(spec)]) == 0
    text = capsys.readouterr().out
    assert "inputs: input1 3x32x32, input2 1x32x32\noutputs: p3 16x16x16, p4 16x8x8, p5 16x4x4" in text
    assert main(["render", str(spec), "--dot"]) == 0
    dot = capsys.readouterr().out
    assert 'label="input1 3x32x32"' in dot and 'label="input2 1x32x32"' in dot


# ---- generated code: helper blocks that only pick an op are inline ---------------------------------------


def test_a_block_without_layers_is_inline_in_its_parents_forward():
    import inspect

    text = """
    block act(x, kind) { return if kind == "hs" then x -> hardswish else x -> relu }
    block unit(x, kind) { return x -> conv(4, 3, padding=1) -> act(kind) }
    network n() {
        x = input(3, 8, 8)
        x = x -> unit("hs") -> act("re")
        output o = (x -> relu6 -> scale(0.5)) as tail
    }
    """
    graph, model = _build(text)
    assert [n.path for n in graph.nodes] == ["input1", "unit1.conv1", "unit1.act1.hardswish1", "act1.relu1",
                                             "tail.relu6_1", "tail.scale1"]  # the IR keeps every path
    assert [s.path for s in graph.scopes] == ["unit1", "unit1.act1", "act1", "tail"]
    source = inspect.getsource(type(model))
    assert "act1" not in source and "tail" not in source
    assert [name for name, _ in model.named_modules()] == ["", "unit1", "unit1.conv1"]
    unit = inspect.getsource(type(model.unit1))
    assert "x = F.hardswish(x, inplace=True)" in unit  # the conv's output, read by nothing else
    assert "x = self.unit1(x)\n        x = F.relu(x)\n        x = F.relu6(x)\n        x = x * 0.5\n" in source
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        conv = model.unit1.conv1
        want = F.relu6(F.relu(F.hardswish(conv(x)))) * 0.5
        assert torch.equal(model(x), want)


# ---- torchvision's module names: `as _` ------------------------------------------------------------------


@pytest.mark.slow  # importing torchvision, a resnet18 each
def test_resnet18_with_torchvision_names_loads_strictly_and_agrees():
    """tests/specs/resnet18_tv_names.cnn calls its shared stem block `as _`, so its state_dict keys
    are exactly torchvision's (conv1, bn1, layer1.0.conv1, layer2.0.downsample.0, fc)."""
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.resnet18().eval()
    _randomize_bn(reference)
    model = cnnc.compile(TEST_SPECS / "resnet18_tv_names.cnn").eval()
    assert list(model.state_dict().keys()) == list(reference.state_dict().keys())
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)


# ---- shift: a constant added to a tensor (a highway gate's 1 - t) ------------------------------------------


def test_constants_with_tensors_match_torch_exactly():
    """`x + 0.5`, `0.25 + x`, `x - 2`, `1 - x` and `x -> shift(-0.75)` equal torch's results bit
    for bit (`1 - x` is built as -x + 1); they hold no parameters and count no MACs."""
    outputs = {"a": "x + 0.5", "b": "0.25 + x", "c": "x - 2", "d": "1 - x", "e": "x -> shift(-0.75)"}
    graph, model = _build(_network({"x": (3, 5, 6)}, outputs))
    x = torch.randn(2, 3, 5, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = model(x)
    want = {"a": x + 0.5, "b": 0.25 + x, "c": x - 2, "d": 1 - x, "e": x - 0.75}
    shapes = _out_shapes(graph)
    for name, value in want.items():
        assert shapes[name] == tuple(getattr(got, name).shape[1:]) == (3, 5, 6), name
        assert torch.equal(getattr(got, name), value), name
    assert sum(graph.params_of(n) + graph.macs_of(n) for n in graph.nodes) == 0
    assert OPS["shift"].doc
