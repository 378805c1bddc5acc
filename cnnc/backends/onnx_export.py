"""ONNX: a generated module as an ONNX model whose names are the spec's.

torch.onnx.export (torch 2.14's default, the torch.export-based "dynamo" exporter, with its
onnxscript optimizer: constant folding, BatchNorm folded into the convolution before it) makes the
graph. Its names are the spec's where it matters:
- graph inputs are the network's input instances (`input1`, or the name an `as` gives), graph
  outputs its outputs (`logits`), in the spec's order; train-only outputs are not exported (the
  model is exported in eval mode);
- every input's dimension 0 is one symbolic dimension `batch`;
- node names are instance paths: the exporter names nodes `node_Conv_12` and records the module
  each came from (`pkg.torch.onnx.name_scopes`), and this module renames every node
  `<instance path>/<op type>` (`layer1.0.conv1/Conv`), after the innermost module it ran in, with
  two refinements. A node that an optimizer rule rewrote is named after the module whose parameter
  it reads (the Conv that BatchNorm was folded into ran in `bn1` but is `conv1`'s, whose weight it
  reads). And the ops the generated forward computes inline, with no module of their own, pair
  with the IR: where a module's ONNX nodes of one type are exactly as many as its inline IR nodes
  that become one node of that type (_ONE_NODE: a ReLU, an add, a concat, a flatten, ...), they
  pair in order and take those instance paths (`layer1.0.relu1/Relu`, `layer1.0.add1/Add`);
  otherwise (an op that became several nodes: a GELU below opset 20) they are the module's
  (`layer1.0/Erf`, or just `Erf` at the network's top level). Repeated names get `_2`, `_3`.
  Submodule paths go back to instance paths through Generated.module_paths;
- initializers keep the state_dict's keys.

The opset is DEFAULT_OPSET unless asked. Failures of the exporter (an op ONNX cannot express, an
opset it cannot target) are CnncErrors naming the network; the exporter's progress lines are not
printed.
"""
from __future__ import annotations

import ast
import contextlib
import io
import warnings

from cnnc.diagnostics import CnncError

DEFAULT_OPSET = 20
_SCOPES = "pkg.torch.onnx.name_scopes"
_REWRITTEN = "pkg.onnxscript.rewriter.rule_name"


def input_names(graph) -> list[str]:
    """The network's inputs as forward takes them: its `input` nodes' instance paths, in order."""
    return [n.path for n in graph.nodes if n.op == "input"]


def output_names(graph) -> list[str]:
    """The outputs forward returns in eval mode, in order."""
    return [o.name for o in graph.outputs if not o.train_only]


def export(module: torch.nn.Module, graph, module_paths: dict, opset: int = DEFAULT_OPSET, batch: int = 2):
    """The ONNX ModelProto of `module` (built from `graph`), with the spec's names (see above)."""
    import torch  # (here: the command line builds its parser, which names DEFAULT_OPSET, without torch)

    inputs = [n for n in graph.nodes if n.op == "input"]
    args = tuple(torch.randn(batch, *n.shape) for n in inputs)
    batch_dim = torch.export.Dim("batch")
    names_in, names_out = input_names(graph), output_names(graph)
    module = module.eval()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, args, None, input_names=names_in, output_names=names_out,
                                        dynamic_shapes=tuple({0: batch_dim} for _ in inputs),
                                        opset_version=opset, dynamo=True, optimize=True, verbose=False)
            model = program.model_proto
    except Exception as e:  # the exporter's errors are many types, with long messages
        raise CnncError(f"cannot export network '{graph.name}' to ONNX (opset {opset}): {_first_line(e)}") from None
    made = {o.domain or "ai.onnx": o.version for o in model.opset_import}.get("ai.onnx")
    if made != opset:  # the exporter falls back to its own opset where its version converter fails
        raise CnncError(f"cannot export network '{graph.name}' to ONNX opset {opset}: the exporter made opset {made} "
                        f"instead (torch's exporter targets opset 18 and later; the default is {DEFAULT_OPSET})")
    got_in = [v.name for v in model.graph.input]
    got_out = [v.name for v in model.graph.output]
    if got_in != names_in or got_out != names_out:
        raise CnncError(f"cannot export network '{graph.name}' to ONNX: the exporter made inputs {got_in} and outputs "
                        f"{got_out}, not the spec's {names_in} and {names_out}")
    model.graph.name = graph.name
    submodules = {name for name, _ in module.named_modules()}
    name_nodes(model, module_paths, set(module.state_dict()), inline_ops(graph, module_paths, submodules))
    return model


def _first_line(e: Exception) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = lines[0] if lines else type(e).__name__
    return text if len(text) <= 300 else text[:300] + "..."


# IR ops that the exporter makes exactly one ONNX node of, of this type
_ONE_NODE = {"relu": "Relu", "relu6": "Clip", "add": "Add", "sub": "Sub", "mul": "Mul", "sigmoid": "Sigmoid",
             "tanh": "Tanh", "hardswish": "HardSwish", "hardsigmoid": "HardSigmoid", "leaky_relu": "LeakyRelu",
             "concat": "Concat", "softmax": "Softmax", "flatten": "Reshape", "gelu": "Gelu",
             "layerscale": "Mul"}  # a parameter of its block (runtime.layer_scale), multiplied inline


def inline_ops(graph, module_paths: dict, submodules: set) -> dict:
    """(submodule path, ONNX op type) -> the instance paths, in node order, of the IR nodes that
    the submodule's forward computes inline (they are no module of their own; an instance without
    layers, written inline in its parent's forward, adds no module either) as one ONNX node of
    that type (_ONE_NODE). Train-only nodes are left out (the export is in eval mode)."""
    from cnnc.ir.liveness import inference_nodes

    out: dict = {}
    exported = inference_nodes(graph)
    for n in graph.nodes:
        op_type = _ONE_NODE.get(n.op)
        if op_type is None or n.id not in exported or module_paths.get(n.path) in submodules:
            continue
        prefix = n.path.rpartition(".")[0]
        while prefix and module_paths.get(prefix) not in submodules:
            prefix = prefix.rpartition(".")[0]
        out.setdefault((module_paths[prefix] if prefix else "", op_type), []).append(n.path)
    return out


def name_nodes(model, module_paths: dict, state_keys: set, inline: dict | None = None) -> None:
    """Rename every node of the graph `<instance path>/<op type>` (see the module docstring).
    `inline` (from inline_ops): where a module's ONNX nodes of one type are exactly as many as its
    inline IR nodes of that type, they take those nodes' instance paths, in order."""
    instance_of = {attr: path for path, attr in module_paths.items()}
    # parameters that are nodes themselves (a layer_scale held by its block): the node using one
    # is inline in its block's forward, which the exporter may also have merged with an equal
    # tensor of another block, so such a parameter names no module
    node_params = {attr for attr in instance_of if attr in state_keys}
    owners = [_module_of(node, state_keys - node_params) for node in model.graph.node]
    counts: dict = {}
    for node, (attr, by_param) in zip(model.graph.node, owners):
        if not by_param:
            counts[attr, node.op_type] = counts.get((attr, node.op_type), 0) + 1
    inline = {key: iter(paths) for key, paths in (inline or {}).items() if counts.get(key) == len(paths)}
    taken: dict[str, int] = {}
    for node, (attr, by_param) in zip(model.graph.node, owners):
        exact = None if by_param else next(inline.get((attr, node.op_type), iter(())), None)
        path = exact or instance_of.get(attr, attr)
        base = f"{path}/{node.op_type}" if path else node.op_type
        k = taken.get(base, 0) + 1
        taken[base] = k
        node.name = base if k == 1 else f"{base}_{k}"


def _module_of(node, state_keys: set) -> tuple[str, bool]:
    """(the submodule path a node belongs to, whether a parameter says so): the innermost module
    the exporter says the node ran in ('' for the network itself), unless it reads a parameter of
    a module that is one of those, or, in a node an optimizer rule rewrote (a BatchNorm folded into
    the conv before it, a sibling), a child of one: that module. (The optimizer also merges equal
    initializers, such as two fresh LayerNorms' weights, so a node may read another module's
    tensor: that alone names nothing.)"""
    scopes, rewritten = [""], False
    for prop in node.metadata_props:
        if prop.key == _SCOPES:
            with contextlib.suppress(ValueError, SyntaxError):
                listed = ast.literal_eval(prop.value)  # a list of str: '', 'layer1', 'layer1.0', ..., the op
                scopes += [s for s in listed[:-1] if isinstance(s, str) and s and not s.startswith("_")]
        rewritten = rewritten or prop.key == _REWRITTEN
    for name in node.input:
        owner = name.rpartition(".")[0]
        if name in state_keys and (owner in scopes or (rewritten and owner.rpartition(".")[0] in scopes)):
            return owner, True
    return scopes[-1], False
