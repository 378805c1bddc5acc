"""`cnnc export` (cli/export.py, backends/onnx_export.py): ONNX models with the spec's names,
checked with onnxruntime against the torch module at two batch sizes (the batch is dynamic).

An export runs torch.export and the onnxscript optimizer: tens of seconds on a slow CPU, so every
test that exports is in the slow tier; the fast ones check the naming rules on a hand-made graph
and the command's refusals that come before any export."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import cnnc
from cnnc.cli import main

onnx = pytest.importorskip("onnx")

# two inputs (one named by `as`), two outputs, an instance codegen renames (`train` -> `train_`),
# a depthwise conv (runtime.Conv2d) and a BatchNorm the optimizer folds into it
MULTI = """
network two(classes=5, size=16) {
    image = input(3, size, size)
    depth = input(1, size, size) as depth
    x = concat(image, depth) -> conv(8, 3, padding=1) as train -> relu
    y = x -> conv(8, 3, padding=1, groups=8) as dw -> bn as bn1 -> relu6
    output features = y
    output logits = y -> global_avgpool -> flatten -> linear(classes) as classifier
}
"""


def _randomized(model):
    """The model with random BatchNorm statistics (fresh ones fold into the conv as a no-op)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1, 0.2)
                m.bias.normal_(0, 0.2)
    return model.eval()


def _export(tmp_path, spec, sets, spec_name="net"):
    """Export `spec` (a catalog name or spec text) with random BN statistics through --weights;
    returns (the torch module, the ONNX file)."""
    import os

    params = {k: v for k, v in (s.split("=") for s in sets)}
    model = _randomized(cnnc.compile(spec, **{k: int(v) for k, v in params.items()}))
    weights = tmp_path / "w.pth"
    torch.save(model.state_dict(), weights)
    if "\n" in spec:
        path = tmp_path / f"{spec_name}.cnn"
        path.write_text(spec)
        spec = str(path)
    out = tmp_path / "out" / "model.onnx"
    argv = ["export", spec, "-o", str(out), "--weights", str(weights)]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    assert os.path.isfile(out)
    return model, out


def _check_with_onnxruntime(model, path, input_shapes, batches=(1, 3)):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    for batch in batches:
        xs = [torch.randn(batch, *shape) for shape in input_shapes]
        with torch.no_grad():
            want = model(*xs)
        want = [want] if isinstance(want, torch.Tensor) else [w for w in want if w is not None]
        got = session.run(None, {n: x.numpy() for n, x in zip(names, xs)})
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == tuple(w.shape)
            np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-4)


def _node_names(path) -> list[str]:
    return [n.name for n in onnx.load(str(path)).graph.node]


def _not_instances(names, spec, **params) -> list[str]:
    """The node names that are not `<instance path>/<op type>` for an instance of the spec."""
    from cnnc.pipeline import front_end

    paths = {n.path for n in front_end(spec, params).graph.nodes}
    return [n for n in names if n.rpartition("/")[0] not in paths]


@pytest.mark.slow
def test_resnet18_names_and_onnxruntime(tmp_path):
    model, path = _export(tmp_path, "resnet18", ["classes=10", "size=64"])
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    assert [i.name for i in m.graph.input] == ["input1"] and [o.name for o in m.graph.output] == ["logits"]
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {o.domain or "ai.onnx": o.version for o in m.opset_import}["ai.onnx"] == 20
    names = _node_names(path)
    assert len(set(names)) == len(names)
    for expected in ("conv1/Conv", "relu1/Relu", "maxpool/MaxPool", "layer1.0.conv1/Conv", "layer1.0.relu1/Relu",
                     "layer1.0.conv2/Conv", "layer1.0.add1/Add", "layer1.0.relu2/Relu", "layer2.0.downsample.0/Conv",
                     "avgpool/ReduceMean", "flatten1/Reshape", "fc/Gemm"):
        assert expected in names, (expected, names)
    assert _not_instances(names, "resnet18", classes=10, size=64) == []
    _check_with_onnxruntime(model, path, [(3, 64, 64)])


@pytest.mark.slow
def test_mobilenet_v2_onnxruntime(tmp_path):
    model, path = _export(tmp_path, "mobilenet_v2", ["classes=10", "size=64"])
    names = _node_names(path)
    assert "features.1.conv.0.0/Conv" in names and "classifier.1/Gemm" in names
    assert "features.0.activation1.relu6_1/Clip" in names  # an instance inlined in its parent's forward
    assert _not_instances(names, "mobilenet_v2", classes=10, size=64) == []
    _check_with_onnxruntime(model, path, [(3, 64, 64)])


@pytest.mark.slow
def test_multi_input_output_names(tmp_path):
    model, path = _export(tmp_path, MULTI, [])
    m = onnx.load(str(path))
    assert [i.name for i in m.graph.input] == ["input1", "depth"]
    assert [o.name for o in m.graph.output] == ["features", "logits"]
    assert all(i.type.tensor_type.shape.dim[0].dim_param == "batch" for i in m.graph.input)
    names = _node_names(path)
    assert "train/Conv" in names and "dw/Conv" in names  # the spec's `train`, not the attribute `train_`
    assert "concat1/Concat" in names and "relu6_1/Clip" in names
    assert "bn1/BatchNormalization" not in names  # folded into dw's Conv
    _check_with_onnxruntime(model, path, [(3, 16, 16), (1, 16, 16)])


@pytest.mark.slow
def test_train_only_outputs_are_left_out(tmp_path):
    spec = """
network tri(size=16) {
    x = input(3, size, size)
    y = x -> conv(4, 3, padding=1) as stem -> relu
    train output aux = y -> global_avgpool -> flatten -> linear(3) as aux_fc
    output a = y -> conv(2, 1) as head_a
    output b = y -> global_avgpool -> flatten -> linear(5) as head_b
}
"""
    model, path = _export(tmp_path, spec, [])
    m = onnx.load(str(path))
    assert [o.name for o in m.graph.output] == ["a", "b"]  # eval mode: `aux` is None, not exported
    assert not any(n.name.startswith("aux_fc") for n in m.graph.node)
    _check_with_onnxruntime(model, path, [(3, 16, 16)])


@pytest.mark.slow
def test_fresh_equal_initializers_do_not_cross_names(tmp_path):
    # codegen_tiny's two mixer blocks each have a fresh LayerNorm (weight 1, bias 0): the optimizer
    # merges the equal initializers, so mix2's LayerNormalization reads mix1's tensors
    from cnnc_testlib import TEST_SPECS

    model, path = _export(tmp_path, (TEST_SPECS / "codegen_tiny.cnn").read_text(), [], "codegen_tiny")
    names = _node_names(path)
    for block in ("mix1", "mix2"):
        for expected in ("layernorm1/LayerNormalization", "gelu1/Gelu", "concat1/Concat", "mul1/Mul", "add1/Add"):
            assert f"{block}.{expected}" in names, (block, expected, names)
    assert "flatten2/Reshape" in names and not any(n.startswith("aux_fc") for n in names)  # eval: no aux head
    _check_with_onnxruntime(model, path, [(3, 32, 32)])


def _node(op_type, inputs, scopes, rule=None):
    from onnx import helper

    node = helper.make_node(op_type, inputs, ["out"], name="node_" + op_type)
    entry = node.metadata_props.add()
    entry.key, entry.value = "pkg.torch.onnx.name_scopes", repr(scopes)
    if rule is not None:
        entry = node.metadata_props.add()
        entry.key, entry.value = "pkg.onnxscript.rewriter.rule_name", rule
    return node


def test_node_naming_rules():
    from onnx import helper

    from cnnc.backends.onnx_export import name_nodes

    nodes = [
        _node("Conv", ["x", "block.conv1.weight"], ["", "block", "block.bn1", "_native_batch_norm"],
              "FuseBatchNormIntoConv"),  # a folded BN: the conv's
        _node("LayerNormalization", ["h", "block.conv1.weight"], ["", "other", "other.ln", "layer_norm"]),  # merged
        _node("Relu", ["a"], ["", "block", "relu"]),
        _node("Relu", ["b"], ["", "block", "relu_1"]),
        _node("Gemm", ["c", "train_.weight", "train_.bias"], ["", "train_", "linear"]),
        _node("Shape", ["d"], ["_empty_nn_module_stack_from_metadata_hook", "sym_size_int_1"]),
        _node("Add", ["e"], ["", "add"]),
        helper.make_node("Identity", ["f"], ["g"], name="node_Identity"),  # no metadata
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [], []))
    paths = {"block": "block", "block.conv1": "block.conv1", "block.bn1": "block.bn1", "train": "train_",
             "other.ln": "other.ln"}
    keys = {"block.conv1.weight", "train_.weight", "train_.bias"}
    name_nodes(model, paths, keys)
    assert [n.name for n in model.graph.node] == [
        "block.conv1/Conv", "other.ln/LayerNormalization", "block/Relu", "block/Relu_2", "train/Gemm", "Shape", "Add",
        "Identity"]
    # inline IR nodes (inline_ops) name the nodes where the counts agree, in order
    name_nodes(model, paths, keys, {("block", "Relu"): ["block.relu1", "block.relu2"], ("", "Add"): ["add1"]})
    assert [n.name for n in model.graph.node] == [
        "block.conv1/Conv", "other.ln/LayerNormalization", "block.relu1/Relu", "block.relu2/Relu", "train/Gemm",
        "Shape", "add1/Add", "Identity"]
    name_nodes(model, paths, keys, {("block", "Relu"): ["block.relu1"], ("", "Add"): ["add1", "add2"]})
    assert [n.name for n in model.graph.node] == [  # counts disagree: the module's path
        "block.conv1/Conv", "other.ln/LayerNormalization", "block/Relu", "block/Relu_2", "train/Gemm", "Shape", "Add",
        "Identity"]


def test_inline_ops_of_a_spec():
    from cnnc.api import generate_source, load_source
    from cnnc.backends.onnx_export import inline_ops
    from cnnc.pipeline import front_end

    graph = front_end(MULTI, {}).graph
    gen = generate_source(MULTI)
    module = getattr(load_source(gen.source, gen.name), gen.class_name)()
    submodules = {name for name, _ in module.named_modules()}
    assert inline_ops(graph, gen.module_paths, submodules) == {
        ("", "Concat"): ["concat1"], ("", "Relu"): ["relu1"], ("", "Clip"): ["relu6_1"], ("", "Reshape"): ["flatten1"]}


def test_export_refusals_write_nothing(tmp_path, capsys):
    spec = tmp_path / "two.cnn"
    spec.write_text(MULTI)
    (tmp_path / "dir.onnx").mkdir()
    assert main(["export", str(spec), "-o", str(tmp_path / "dir.onnx")]) == 1
    assert "is a directory" in capsys.readouterr().err
    assert main(["export", str(spec), "-o", str(spec)]) == 1  # an input
    assert "is an input of this command" in capsys.readouterr().err
    assert spec.read_text() == MULTI
    with pytest.raises(SystemExit) as e:
        main(["export", str(spec), "--opset", "0"])
    assert e.value.code == 2
    assert main(["export", "no_such_spec_anywhere", "-o", str(tmp_path / "m.onnx")]) == 1
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_an_opset_the_graph_cannot_be_expressed_in_is_an_error(tmp_path, capsys):
    # LayerNormalization is an ONNX op from opset 17: the exporter's converter gives up at 9 and
    # falls back to its own opset, which would be a file that is not what was asked
    spec = tmp_path / "ln.cnn"
    spec.write_text("network ln(size=8) {\n    x = input(4, size, size)\n"
                    "    output y = x -> conv(4, 1) -> layernorm\n}\n")
    out = tmp_path / "ln.onnx"
    assert main(["export", str(spec), "-o", str(out), "--opset", "9"]) == 1
    err = capsys.readouterr().err
    assert "cannot export network 'ln' to ONNX opset 9: the exporter made opset 18 instead" in err
    assert "Traceback" not in err and not out.exists()


def test_exporter_failures_are_one_line_errors(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("Failed to convert the exported program to an ONNX model.\n\nmore details\n...")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    spec = tmp_path / "two.cnn"
    spec.write_text(MULTI)
    out = tmp_path / "m.onnx"
    assert main(["export", str(spec), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("cnnc: error: cannot export network 'two' to ONNX (opset 20): Failed to convert the "
                           "exported program to an ONNX model.")
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))
