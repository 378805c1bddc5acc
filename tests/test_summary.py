"""cnnc summary's columns and totals, each checked against a reference that is not cnnc's own code:
VGG-16's per-layer arithmetic, receptive fields measured by a brute-force gradient on random
stacks of convs and pools, torch's own parameter, buffer and output sizes, GoogLeNet's heads."""
import json
import math
import random

import pytest

import cnnc
from cnnc.backends.summary import COLUMNS, summary_data
from cnnc.cli import main
from cnnc.diagnostics import CnncError
from cnnc.ir.geometry import GEOMETRY
from cnnc.ir.ops import OPS
from cnnc.pipeline import front_end
from cnnc_testlib import SPECS, TEST_SPECS


def test_every_op_has_a_geometry_rule():
    missing = sorted(set(OPS) - set(GEOMETRY))
    assert not missing, f"add a receptive-field rule to GEOMETRY in cnnc/ir/geometry.py for {missing}"


# ---- VGG-16, the lecture table ---------------------------------------------------------------
# (CS231n's "VGGNet" slide: memory = output elements, params = weights, layer by layer.)

def _vgg16_table():
    """(path, output elements, weights without biases, biases), from the architecture's arithmetic;
    paths are torchvision's (its Sequential indices: a conv and its ReLU take two, a pool one)."""
    rows = []
    size, c_in, k = 224, 3, 0
    for convs, c in zip([2, 2, 3, 3, 3], [64, 128, 256, 512, 512]):
        for _ in range(convs):
            rows.append((f"features.{k}", size * size * c, 3 * 3 * c_in * c, c))
            c_in, k = c, k + 2
        size //= 2
        rows.append((f"features.{k}", size * size * c, 0, 0))
        k += 1
    rows.append(("classifier.0", 4096, 7 * 7 * 512 * 4096, 4096))
    rows.append(("classifier.3", 4096, 4096 * 4096, 4096))
    rows.append(("classifier.6", 1000, 4096 * 1000, 1000))
    return rows


def test_vgg16_activations_and_weights_per_layer():
    d = cnnc.summary(SPECS / "vgg16.cnn")
    got = {r["path"]: r for r in d["layers"]}
    table = _vgg16_table()
    # the slide's anchors, written out
    assert table[0] == ("features.0", 3_211_264, 1_728, 64) and table[-4][0] == "features.30"
    assert table[-3][2] == 102_760_448 and table[-1][2] == 4_096_000
    for path, acts, weights, biases in table:
        r = got[path]
        assert (r["activations"], r["params"]) == (acts, weights + biases), path
        assert r["activation_bytes"] == 4 * acts
    assert d["params"] == 138_357_544  # torchvision's vgg16
    assert got["input1"]["activations"] == 224 * 224 * 3


def test_vgg16_receptive_fields():
    """3x3 convs add 2 jumps each, 2x2/2 pools 1 jump and double it: conv5_3 sees 196 pixels, pool5 212
    (Araujo et al. 2019, Table 1, vgg_16: 212)."""
    got = {r["path"]: r for r in cnnc.summary(SPECS / "vgg16.cnn")["layers"]}
    r, j, k = 1, 1, 0
    for convs in [2, 2, 3, 3, 3]:
        for _ in range(convs):
            r += 2 * j
            assert got[f"features.{k}"]["receptive_field"] == [r, r]
            assert got[f"features.{k}"]["jump"] == [j, j]
            k += 2
        r, j = r + j, 2 * j
        assert got[f"features.{k}"]["receptive_field"] == [r, r]
        k += 1
    assert got["features.28"]["receptive_field"] == [196, 196]  # conv5_3
    assert got["features.30"]["receptive_field"] == [212, 212]  # pool5
    assert got["features.30"]["jump"] == [32, 32]


# ---- receptive fields against a brute-force gradient ------------------------------------------


def _random_stack(rng: random.Random) -> str:
    layers = []
    stride_product = 1
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(["conv", "conv", "maxpool", "avgpool"])
        k = rng.randint(1, 5)
        s = rng.choice([1, 1, 2, 3]) if stride_product < 8 else 1
        stride_product *= s
        if kind == "conv":
            d = rng.choice([1, 1, 2])
            kh, kw = (k, rng.randint(1, 5)) if rng.random() < 0.3 else (k, k)
            p = rng.randint(0, max(kh, kw) // 2)
            layers.append(f"conv(2, [{kh}, {kw}], stride={s}, padding={p}, dilation={d}, bias=false)")
        else:
            p = rng.randint(0, k // 2)
            ceil = rng.choice(["true", "false"])
            layers.append(f"{kind}({k}, stride={s}, padding={p}, ceil_mode={ceil})")
    return "network stack(size=32) {\n    x = input(2, size, size)\n    output y = x -> " + " -> ".join(layers) + "\n}\n"


def _measured_field(module, size, channels=2):
    """Rows and columns of the input that reach the central output position, and those reaching its
    right-hand and lower neighbours, by the gradient of that output with respect to the input.
    Every weight is a positive constant, so no contribution cancels; max pools are measured as
    average pools of the same window (a max's gradient reaches only its argmax)."""
    import torch

    for name, m in list(module.named_modules()):
        if isinstance(m, torch.nn.MaxPool2d):
            avg = torch.nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode, count_include_pad=True)
            parent = module.get_submodule(name.rpartition(".")[0]) if "." in name else module
            setattr(parent, name.rpartition(".")[2], avg)
    module = module.double().eval()
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(0.5)
    x = torch.ones(1, channels, size, size, dtype=torch.float64, requires_grad=True)
    y = module(x)
    h, w = y.shape[2] // 2, y.shape[3] // 2

    def extent(i, j):
        (g,) = torch.autograd.grad(y[0, 0, i, j], x, retain_graph=True)
        hit = g[0].abs().sum(0) > 0
        rows = hit.any(1).nonzero().flatten().tolist()
        cols = hit.any(0).nonzero().flatten().tolist()
        return rows[0], rows[-1], cols[0], cols[-1]

    here = extent(h, w)
    below = extent(h + 1, w) if h + 1 < y.shape[2] else None
    right = extent(h, w + 1) if w + 1 < y.shape[3] else None
    return here, below, right


@pytest.mark.slow
def test_receptive_fields_match_a_brute_force_gradient():
    """The measured field of a central output position is the true one once it stops growing with
    the input: a smaller map can clip it at the border or at an inner layer's padding."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rng = random.Random(17)
    checked = 0
    for _ in range(30):
        spec = _random_stack(rng)
        before = None
        for size in (24, 48, 96, 192, 384):
            try:
                g = front_end(spec, {"size": size}).graph
            except CnncError:
                continue  # too small for the stack: try a bigger input
            here, below, right = _measured_field(cnnc.compile(spec, size=size), size)
            top, bottom, left, rightmost = here
            interior = top > 0 and left > 0 and bottom < size - 1 and rightmost < size - 1
            field = [bottom - top + 1, rightmost - left + 1]
            jump = [below[0] - top if below else None, right[2] - left if right else None]
            if not interior or (field, jump) != before:
                before = (field, jump) if interior else None
                continue
            last = summary_data(g)["layers"][-1]
            assert last["receptive_field"] == field, spec
            assert [a if b is not None else None for a, b in zip(last["jump"], jump)] == jump, spec
            checked += 1
            break
    assert checked >= 25


@pytest.mark.slow
def test_receptive_field_of_shifted_branches_and_real_nets():
    """A join is the union of its inputs' fields: a branch shifted by a crop widens it (NASNet's
    factorized reduction); and a whole ResNet-18, narrowed to width 8, against the gradient."""
    pytest.importorskip("torch")
    spec = """
    network shifted(size=64) {
        x = input(2, size, size)
        a = x -> conv(2, 3, padding=1, bias=false)
        b = x -> zeropad(-2, 2, -2, 2) -> conv(2, 3, padding=1, bias=false)
        output y = a + b
    }
    """
    g = front_end(spec).graph
    (top, bottom, left, right), _, _ = _measured_field(cnnc.compile(spec), 64)
    assert summary_data(g)["layers"][-1]["receptive_field"] == [bottom - top + 1, right - left + 1] == [5, 5]
    import torch

    size = 512
    g = front_end(SPECS / "resnet18.cnn", {"width": 8, "size": size}).graph
    module = cnnc.compile(SPECS / "resnet18.cnn", width=8, size=size)
    rows = {r["path"]: r for r in summary_data(g)["layers"]}
    last_map = [p for p in rows if p.startswith("layer4.")][-1]
    # the module up to layer4's output (the last feature map)
    trunk = torch.nn.Sequential(module.conv1, module.bn1, torch.nn.ReLU(), module.maxpool, module.layer1,
                                module.layer2, module.layer3, module.layer4)  # torchvision's names
    (top, bottom, left, right), (btop, *_), _ = _measured_field(trunk, size, channels=3)
    assert 0 < top and bottom < size - 1
    assert rows[last_map]["receptive_field"] == [bottom - top + 1, right - left + 1]
    assert rows[last_map]["jump"] == [btop - top] * 2


# ---- against torch: parameters, buffers and output sizes ---------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("spec,fused", [(TEST_SPECS / "codegen_ops.cnn", False), (SPECS / "efficientnet_b0.cnn", False),
                                        (SPECS / "resnet18.cnn", True)])
def test_counts_match_the_torch_module(spec, fused):
    torch = pytest.importorskip("torch")
    g = front_end(spec).graph
    if fused:
        from cnnc.pipeline import fuse

        g = fuse(g)
    d = summary_data(g)
    module = cnnc.compile(spec, fused=fused).eval()
    assert d["trainable"] == d["params"] == sum(p.numel() for p in module.parameters() if p.requires_grad)
    assert d["buffers"] == sum(b.numel() for b in module.buffers())
    # each submodule's output, seen by a forward hook, has the row's number of elements
    rows = {r["path"]: r for r in d["layers"]}
    seen = {}
    for name, m in module.named_modules():
        if name in rows:
            m.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o[0].numel()))
    x = torch.randn(1, *d["inputs"][0]["shape"])
    with torch.no_grad():
        module(x)
    assert len(seen) >= 5
    for name, numel in seen.items():
        assert rows[name]["activations"] == numel, name


# ---- training-only heads --------------------------------------------------------------------


def test_googlenet_training_only_heads():
    d = cnnc.summary(SPECS / "inception_v1.cnn")
    # each auxiliary head (Szegedy et al. 2015, Section 5): 1x1 conv to 128 with bias, fc 2048 -> 1024, fc -> 1000
    aux1 = 512 * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000
    aux2 = 528 * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000
    assert d["params_train_only"] == aux1 + aux2 == 6_379_728
    assert d["params_inference"] == d["params"] - aux1 - aux2
    flagged = {r["path"].split(".")[0] for r in d["layers"] if r["train_only"]}
    assert flagged == {"aux1", "aux2"}
    assert d["macs_inference"] < d["macs"]
    # torchvision's GoogLeNet layout: its published pretrained count (aux_logits=False) is the inference count
    tv = cnnc.summary(SPECS / "googlenet.cnn")
    assert tv["params_inference"] == 6_624_904 and tv["params"] == 13_004_888


def test_train_only_is_shown_in_text_and_rolls_up(capsys):
    assert main(["summary", str(SPECS / "inception_v1.cnn"), "--depth", "1"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["aux1"].rstrip().endswith("yes") and not lines["inception_4a"].rstrip().endswith("yes")
    assert "training only: 6,379,728 parameters" in out


# ---- totals: bytes and the liveness peak ------------------------------------------------------------


CHAIN = """
network chain(size=8) {
    x = input(1, size, size)
    a = x -> conv(4, 3, padding=1)
    b = a -> relu
    c = b -> conv(4, 1)
    output y = a + c -> flatten
}
"""


def test_activation_totals_and_peak_by_hand():
    d = summary_data(front_end(CHAIN).graph, dtype="float16")
    # outputs: input 64, then a, b, c, the add and flatten 4x8x8 = 256 elements each; 2 bytes each
    assert d["activations"] == 64 + 5 * 256
    assert d["activation_bytes"] == 2 * d["activations"]
    # live while c runs: a (read by the add), b (c's input) and c; the input died after a.
    # While the add runs: a, c and the sum; then flatten (the output) and the sum.
    assert d["peak_activation_bytes"] == 2 * 3 * 256
    assert d["param_bytes"] == 2 * d["params"] == 2 * (4 * 9 + 4 + 4 * 4 + 4)


def test_peak_counts_inputs_and_outputs():
    spec = "network io() {\n x = input(1, 4, 4)\n output y = x -> relu\n output z = x -> sigmoid\n}\n"
    # the input lives until sigmoid reads it; y stays (an output): 16 * 3 elements at the end
    assert summary_data(front_end(spec).graph)["peak_activation_bytes"] == 4 * 16 * 3


def test_rollup_rules():
    d = summary_data(front_end(TEST_SPECS / "tiny_resnet.cnn").graph, depth=1)
    full = summary_data(front_end(TEST_SPECS / "tiny_resnet.cnn").graph)
    block = next(r for r in d["layers"] if r["path"] == "stage1_block0")
    inner = [r for r in full["layers"] if r["path"].startswith("stage1_block0.")]
    for c in ("params", "macs", "activations", "activation_bytes", "buffers"):
        assert block[c] == sum(r[c] for r in inner), c
    assert block["shape"] == inner[-1]["shape"] and block["receptive_field"] == inner[-1]["receptive_field"]
    assert block["kernel"] is None and block["layers"] == len(inner)
    before = full["layers"][[r["path"] for r in full["layers"]].index(inner[0]["path"]) - 1]
    assert block["in_shape"] == before["shape"]


# ---- the command line ------------------------------------------------------------------------


def test_json_rows_carry_every_column(capsys):
    assert main(["summary", str(TEST_SPECS / "tiny_resnet.cnn"), "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d["layers"][1]) == set(COLUMNS)
    conv = next(r for r in d["layers"] if r["op"] == "conv")
    assert conv["kernel"] and conv["stride"] and conv["dilation"] and conv["groups"]
    relu = next(r for r in d["layers"] if r["op"] == "relu")
    assert relu["kernel"] is relu["groups"] is None


@pytest.mark.parametrize("fmt", ["text", "markdown", "csv", "json"])
def test_columns_choose_what_is_shown(capsys, fmt):
    assert main(["summary", str(TEST_SPECS / "tiny_resnet.cnn"), "--format", fmt,
                 "--columns", "path,receptive_field,jump,activation_bytes"]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        assert set(json.loads(out)["layers"][0]) == {"path", "receptive_field", "jump", "activation_bytes"}
    elif fmt == "csv":
        assert out.splitlines()[0] == "path,receptive_field,jump,activation_bytes"
    else:
        header = next(line for line in out.splitlines() if "layer" in line)
        assert header.split("|" if fmt == "markdown" else None) and "RF" in header and "MACs" not in header


def test_unknown_column_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["summary", str(TEST_SPECS / "tiny_resnet.cnn"), "--columns", "path,flops"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown column flops" in err and "receptive_field" in err and "train_only" in err


def test_dtype_sizes_bytes(capsys):
    a = cnnc.summary(TEST_SPECS / "tiny_resnet.cnn")
    b = cnnc.summary(TEST_SPECS / "tiny_resnet.cnn", dtype="bfloat16")
    assert b["activation_bytes"] * 2 == a["activation_bytes"] and b["param_bytes"] * 2 == a["param_bytes"]
    with pytest.raises(SystemExit):
        main(["summary", str(TEST_SPECS / "tiny_resnet.cnn"), "--dtype", "int3"])


def test_api_result_is_a_dict_that_shows_as_a_table():
    s = cnnc.summary(TEST_SPECS / "tiny_resnet.cnn", depth=1)
    assert isinstance(s, dict) and json.loads(json.dumps(s)) == dict(s)
    md, page = s._repr_markdown_(), s._repr_html_()
    assert md.startswith("## tiny_resnet") and "| stage1_block0" in md
    assert page.count("<tr>") == len(s["layers"]) + 2  # header, rows, total
    picked = cnnc.summary(TEST_SPECS / "tiny_resnet.cnn", columns=["path", "params"])
    assert set(picked["layers"][0]) == {"path", "params"} and "<th>params</th>" in picked._repr_html_()
    with pytest.raises(ValueError, match="unknown column"):
        cnnc.summary(TEST_SPECS / "tiny_resnet.cnn", columns="nope")


def test_html_and_markdown_escape_cell_text():
    # no spec can put markup in a path today (labels are identifiers); the table escapes it anyway
    s = cnnc.summary(TEST_SPECS / "tiny_resnet.cnn", columns="path,op")
    s["layers"][0]["path"] = "<script>|x"
    assert "<script>" not in s._repr_html_() and "&lt;script&gt;" in s._repr_html_()
    assert "\\|x" in s._repr_markdown_()


@pytest.mark.parametrize("layers", [
    "conv(2, 3, padding=1) -> conv_transpose(2, 3, stride=2, padding=1)",
    "conv(2, 3, stride=2) -> conv_transpose(2, 4, stride=2, padding=1)",
    "conv(2, 3, padding=1) -> conv_transpose(2, 3, stride=3, dilation=2)",
    "conv(2, 3, padding=1) -> upsample(scale=2)",
    "conv(2, 3, padding=1) -> upsample(scale=2, mode=\"bilinear\")",
    "conv(2, 3, padding=1) -> upsample(scale=2, mode=\"bicubic\") -> conv(2, 3)",
    "conv(8, 3, padding=1) -> pixel_shuffle(2) -> conv(2, 3)",
])
def test_receptive_fields_of_enlarging_ops(layers):
    """Ops that enlarge the map have a fractional jump: neighbouring outputs see fields of
    different sizes. The field is the largest of them, measured over a 3x3 block of central
    outputs by the gradient (as above)."""
    torch = pytest.importorskip("torch")
    spec = "network up(size=24) {\n    x = input(2, size, size)\n    output y = x -> " + layers + "\n}\n"
    module = cnnc.compile(spec).double().eval()
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(0.5)
    x = torch.ones(1, 2, 24, 24, dtype=torch.float64, requires_grad=True)
    y = module(x)
    sizes = []
    for i in range(y.shape[2] // 2 - 1, y.shape[2] // 2 + 2):
        for j in range(y.shape[3] // 2 - 1, y.shape[3] // 2 + 2):
            (g,) = torch.autograd.grad(y[0, 0, i, j], x, retain_graph=True)
            hit = g[0].abs().sum(0) > 0
            rows, cols = hit.any(1).nonzero().flatten(), hit.any(0).nonzero().flatten()
            sizes.append((int(rows[-1] - rows[0]) + 1, int(cols[-1] - cols[0]) + 1))
    measured = [max(s[0] for s in sizes), max(s[1] for s in sizes)]
    last = summary_data(front_end(spec).graph)["layers"][-1]
    assert [math.ceil(v) for v in last["receptive_field"]] == measured, (last["receptive_field"], measured)
