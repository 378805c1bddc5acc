"""Fusion passes: golden dumps, where each must not fire, and numerical equivalence.

The equivalence test evaluates the graph before and after fusion with a small reference
interpreter written here on eager torch ops (F.conv2d, F.batch_norm, ...), using the same random
parameters keyed by instance path, and compares the outputs.
"""
import pytest

from cnnc.ir.ops import FUSED_CONV
from cnnc.ir.graph import dump_ir
from cnnc.pipeline import front_end, fuse
from cnnc.backends.summary import totals
from cnnc_testlib import GOLDEN, SPECS, TEST_SPECS, check_golden


@pytest.mark.parametrize("name", ["tiny_resnet", "tiny_inception", "tiny_unet"])
def test_golden_fused(name):
    check_golden(GOLDEN / "frontend" / f"{name}.fused", dump_ir(fuse(front_end(TEST_SPECS / f"{name}.cnn").graph)))


def _ops(spec):
    return [n.op for n in fuse(front_end(spec).graph).nodes]


def test_does_not_fold_a_conv_with_two_users():
    ops = _ops("network n() {\n x = input(3, 8, 8)\n c = x -> conv(4, 3)\n"
               " output a = c -> bn\n output b = c -> relu\n}\n")
    assert ops.count("conv") == 1 and "batchnorm" in ops and "relu" in ops


def test_does_not_fold_a_conv_that_is_an_output():
    ops = _ops("network n() {\n x = input(3, 8, 8)\n c = x -> conv(4, 3)\n"
               " output a = c\n output b = c -> bn\n}\n")
    assert ops == ["input", "conv", "batchnorm"]


def test_activation_outside_the_kernel_set_stays():
    ops = _ops("network n() {\n x = input(3, 8, 8)\n output a = x -> conv(4, 3) -> bn -> tanh\n}\n")
    assert ops == ["input", FUSED_CONV, "tanh"]


def test_add_after_activation_or_with_broadcast_is_not_fused():
    ops = _ops("network n() {\n x = input(4, 8, 8)\n y = x -> conv(4, 3, padding=1) -> relu\n"
               " g = x -> global_avgpool -> conv(4, 1)\n output a = (y + x) + (x -> conv(4, 1)) * g\n}\n")
    assert ops.count("add") == 2 and "mul" in ops and ops.count("conv") == 2
    # the outer add takes the mul and the first add: neither is a conv, so the add stays
    g = fuse(front_end("network n() {\n x = input(4, 8, 8)\n g = x -> global_avgpool -> conv(4, 1)\n"
                       " output a = x + g\n}\n").graph)
    assert [n.op for n in g.nodes] == ["input", "global_avgpool", "conv", "add"]


def test_fusion_keeps_counts_for_every_spec():
    for spec in sorted(SPECS.glob("*.cnn")):
        g = front_end(spec).graph
        assert totals(fuse(g)) == totals(g), spec.name


# ---- numerical equivalence --------------------------------------------------------------

torch = pytest.importorskip("torch")
F = torch.nn.functional

ACT = {"relu": F.relu, "relu6": F.relu6, "silu": F.silu, "gelu": F.gelu, "hardswish": F.hardswish,
       "sigmoid": torch.sigmoid, "tanh": torch.tanh}


class Params:
    """Random parameters keyed by instance path, shared by the fused and unfused evaluation."""

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.store = {}

    def get(self, key, shape, positive=False):
        if key not in self.store:
            t = torch.randn(*shape, generator=self.gen, dtype=torch.float64)
            self.store[key] = t.abs() + 0.5 if positive else t
        return self.store[key]


def _conv(n, x, p, path):
    cin = x.shape[1]
    out, (kh, kw), groups = n.attr("out"), n.attr("kernel"), n.attr("groups")
    w = p.get(path + ".weight", (out, cin // groups, kh, kw)) / (cin * kh * kw) ** 0.5
    b = p.get(path + ".bias", (out,)) if n.attr("bias") else None
    pad = n.attr("padding")
    return F.conv2d(x, w, b, n.attr("stride"), pad, n.attr("dilation"), groups)


def _bn(x, p, path, eps):
    c = x.shape[1]
    return F.batch_norm(x, p.get(path + ".mean", (c,)), p.get(path + ".var", (c,), positive=True),
                        p.get(path + ".gamma", (c,)), p.get(path + ".beta", (c,)), False, 0.0, eps)


def evaluate(g, xs, p):
    vals = {}
    inputs = iter(xs)
    for n in g.nodes:
        ins = [vals[i] for i in n.inputs]
        if n.op == "input":
            v = next(inputs)
        elif n.op == "conv":
            v = _conv(n, ins[0], p, n.path)
        elif n.op == "batchnorm":
            v = _bn(ins[0], p, n.path, n.attr("eps"))
        elif n.op == FUSED_CONV:
            members = n.attr("members")
            v = _conv(n, ins[0], p, members[0])
            if n.attr("bn"):
                v = _bn(v, p, members[1], n.attr("eps"))
            if n.attr("residual"):
                v = v + ins[1]
            if n.attr("act"):
                v = ACT[n.attr("act")](v)
        elif n.op in ACT:
            v = ACT[n.op](ins[0])
        elif n.op == "add":
            v = ins[0] + ins[1]
        elif n.op == "mul":
            v = ins[0] * ins[1]
        elif n.op == "concat":
            v = torch.cat(ins, 1)
        elif n.op == "global_avgpool":
            v = ins[0].mean((2, 3), keepdim=True)
        elif n.op == "maxpool":
            v = F.max_pool2d(ins[0], n.attr("kernel"), n.attr("stride"), n.attr("padding"), n.attr("dilation"),
                             ceil_mode=n.attr("ceil_mode"))
        elif n.op == "avgpool":
            v = F.avg_pool2d(ins[0], n.attr("kernel"), n.attr("stride"), n.attr("padding"),
                             ceil_mode=n.attr("ceil_mode"), count_include_pad=n.attr("count_include_pad"))
        elif n.op == "flatten":
            v = ins[0].flatten(1)
        elif n.op in ("dropout", "identity"):
            v = ins[0]
        elif n.op == "lrn":
            v = F.local_response_norm(ins[0], n.attr("size"), n.attr("alpha"), n.attr("beta"), n.attr("k"))
        elif n.op == "linear":
            w = p.get(n.path + ".weight", (n.attr("out"), ins[0].shape[1])) / ins[0].shape[1] ** 0.5
            v = F.linear(ins[0], w, p.get(n.path + ".bias", (n.attr("out"),)))
        elif n.op == "conv_transpose":
            cin, out, groups, (kh, kw) = ins[0].shape[1], n.attr("out"), n.attr("groups"), n.attr("kernel")
            w = p.get(n.path + ".weight", (cin, out // groups, kh, kw)) / (cin * kh * kw) ** 0.5
            b = p.get(n.path + ".bias", (out,)) if n.attr("bias") else None
            v = F.conv_transpose2d(ins[0], w, b, n.attr("stride"), n.attr("padding"), n.attr("output_padding"),
                                   groups, n.attr("dilation"))
        elif n.op == "groupnorm":
            c = ins[0].shape[1]
            v = F.group_norm(ins[0], n.attr("groups"), p.get(n.path + ".gamma", (c,)), p.get(n.path + ".beta", (c,)),
                             n.attr("eps"))
        elif n.op == "leaky_relu":
            v = F.leaky_relu(ins[0], n.attr("slope"))
        elif n.op == "slice":
            v = ins[0][:, n.attr("start"):n.attr("stop")]
        elif n.op == "upsample":
            v = F.interpolate(ins[0], size=n.attr("size"), scale_factor=n.attr("scale"), mode=n.attr("mode"),
                              align_corners=n.attr("align_corners") if n.attr("mode") != "nearest" else None)
        elif n.op == "pixel_shuffle":
            v = F.pixel_shuffle(ins[0], n.attr("factor"))
        elif n.op == "zeropad":
            v = F.pad(ins[0], tuple(n.attr(k) for k in ("left", "right", "top", "bottom", "front", "back")))
        else:
            raise NotImplementedError(n.op)
        assert tuple(v.shape[1:]) == n.shape, (n.path, tuple(v.shape), n.shape)
        vals[n.id] = v
    return [vals[o.node] for o in g.outputs]


@pytest.mark.parametrize("spec", ["tiny_resnet", "tiny_inception", "tiny_unet"])
def test_fused_graph_computes_the_same_function(spec):
    g = front_end(TEST_SPECS / f"{spec}.cnn").graph
    p = Params(0)
    xs = [torch.randn(2, *n.shape, dtype=torch.float64) for n in g.nodes if n.op == "input"]
    before = evaluate(g, xs, p)
    after = evaluate(fuse(g), xs, p)
    for a, b in zip(before, after):
        assert torch.isfinite(a).all()
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)
