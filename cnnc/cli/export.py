"""`cnnc export FILE [-o OUT.onnx] [--opset N]`: the network as an ONNX model with the spec's names.

Builds the module as `cnnc build` does (with its initial weights, or `--weights` mapped onto it
as `build --weights` maps them) and exports it in eval mode (backends/onnx_export.py): graph inputs
and outputs named as in the spec, a dynamic batch dimension, nodes named after instance paths.
Writes `build/<spec stem>.onnx` by default; the output rules are build's (a regular file or a new
one, never a link or an input, written atomically), and nothing is written when the export fails.
"""
from __future__ import annotations

import sys

from cnnc.diagnostics import printable
from cnnc.outfile import prepare_output, write_atomically

from .build import remapped_weights
from .common import add_output, default_output, graph_and_inputs, positive

NAME = "export"
HELP = "export the network as an ONNX model (.onnx) named after the spec: inputs, outputs, nodes"


def add_arguments(p) -> None:
    from cnnc.backends.onnx_export import DEFAULT_OPSET

    add_output(p, "onnx", "model")
    p.add_argument("--opset", type=positive, default=DEFAULT_OPSET,
                   help=f"the ONNX opset to target (default {DEFAULT_OPSET})")
    p.add_argument("--weights", metavar="W.pth",
                   help="a torchvision/timm-style state_dict to map onto the module first (as build --weights)")


def run(args) -> int:
    from cnnc.api import load_source
    from cnnc.backends import onnx_export
    from cnnc.backends.codegen import generate
    from cnnc.backends.summary import one_line

    graph, inputs = graph_and_inputs(args)
    gen = generate(graph)
    out = default_output(args, "onnx", graph.name)
    inputs += [args.weights] if args.weights else []
    out = prepare_output(out, "model.onnx", inputs)
    module = getattr(load_source(gen.source, gen.name), gen.class_name)()
    notes = []
    if args.weights:
        state, notes = remapped_weights(gen, args.weights)
        module.load_state_dict(state)
    model = onnx_export.export(module, graph, gen.module_paths, opset=args.opset)
    write_atomically(out, model.SerializeToString())
    for note in notes:
        print(f"cnnc: note: {printable(note)}", file=sys.stderr)
    print(one_line(graph))
    print(f"wrote {out} (opset {args.opset}; inputs {', '.join(onnx_export.input_names(graph))}; "
          f"outputs {', '.join(onnx_export.output_names(graph))}; batch dynamic)")
    return 0
