"""`cnnc build FILE [-o OUT.py] [--weights W.pth] [--explain ...]`: write the generated nn.Module source.

Writes `build/<spec stem>.py` by default (`build/<spec stem>_fused.py` with `--fused`; for a spec
on standard input, `-`, the stem is its network's name). With `--weights`, the foreign state_dict is mapped onto
the module by structural order (weights.py; entries it had to reorder are listed in a note on
stderr) and saved, under the module's own names, as
`OUT.pth` next to `OUT.py`; `Net().load_state_dict(torch.load("OUT.pth"))` then loads it. With `--skip-mismatched`, tensors pair by
name instead (a reference state_dict for the same spec built with another head, cnnc.load_weights):
those whose shapes differ keep the module's initial values, and a note lists each.
Everything that can fail (front end, code generation, reading and fitting the weights) runs
before anything is written, and each file is written atomically (a temporary file in the
destination directory, then os.replace), so a failed build leaves no half-written output.
An output must be a regular file or not exist yet (never a directory, device, FIFO or symbolic
link) and never one of the inputs (the spec, its imports, the weights). Identical inputs give
byte-identical files (the .pth is serialised in memory, so its archive name is not the temporary
file's).

`--explain` then prints, for each convolution, where the module will run it (a cnnc Triton kernel
or cuDNN) and why (backends/explain.py), for the device, dtype, layout and batch the options name;
the kernel policy is the process default (CNNC_KERNELS_POLICY).
"""
from __future__ import annotations

import io
import sys

from cnnc.diagnostics import CnncError, printable
from cnnc.outfile import prepare_output, write_atomically

from .common import add_output, default_output, graph_and_inputs, positive

NAME = "build"
HELP = "generate a PyTorch nn.Module (.py) from a spec; --weights also writes remapped weights (.pth)"


def add_arguments(p) -> None:
    add_output(p, "py", "module", "build/<spec stem>_fused.py with --fused")
    p.add_argument("--weights", metavar="W.pth",
                   help="a torchvision/timm-style state_dict to map onto the module, saved as OUT.pth")
    p.add_argument("--skip-mismatched", action="store_true",
                   help="with --weights: pair tensors by name (a reference state_dict for the same spec with another "
                        "head) and skip those whose shapes differ, listing them (cnnc.load_weights)")
    p.add_argument("--fused", action="store_true",
                   help="apply the fusion passes first: conv + BatchNorm + residual add + activation become one "
                        "kernels.conv2d call (same weights)")
    p.add_argument("--explain", action="store_true",
                   help="also print, for each convolution, whether a cnnc Triton kernel or cuDNN runs it, and why")
    p.add_argument("--device", default="none", metavar="NAME",
                   help="for --explain: the GPU's name as torch reports it (e.g. 'NVIDIA H200'), cuda:N to ask "
                        "that device (needs it), or cpu; default none: no measurement applies")
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32", "float64"],
                   help="for --explain (default float16)")
    p.add_argument("--layout", default="channels_last", choices=["channels_last", "nchw"],
                   help="for --explain (default channels_last)")
    p.add_argument("--batch", type=positive, default=1, help="for --explain (default 1)")


def run(args) -> int:
    from cnnc.backends.codegen import generate
    from cnnc.backends.summary import one_line

    graph, inputs = graph_and_inputs(args, fused=args.fused)
    gen = generate(graph)
    out = default_output(args, "py", graph.name, "_fused" if args.fused else "")
    if args.skip_mismatched and not args.weights:
        raise CnncError("--skip-mismatched applies to --weights; give the weights file with --weights W.pth")
    weights, notes = remapped_weights(gen, args.weights, args.skip_mismatched) if args.weights else (None, [])
    inputs += [args.weights] if args.weights else []
    out = prepare_output(out, "model.py", inputs)
    if weights is not None:
        import torch

        pth = out.with_suffix(".pth")
        if pth == out:
            raise CnncError(f"output '{out}' ends in .pth, where --weights writes the weights; name the module .py")
        pth = prepare_output(pth, "model.pth", inputs)
        data = io.BytesIO()
        torch.save(weights, data)  # in memory: the archive is named "archive", not after a file
        write_atomically(pth, data.getvalue())
    write_atomically(out, gen.source.encode())
    for note in notes:
        print(f"cnnc: note: {printable(note)}", file=sys.stderr)
    print(one_line(graph))
    print(f"wrote {out}" + (f" and {pth}" if weights is not None else ""))
    if args.explain:
        print(_explanation(graph, args), end="")
    return 0


def _explanation(graph, args) -> str:
    from cnnc.backends import explain
    from cnnc.kernels import default_policy

    device = args.device
    if device.startswith("cuda"):  # ask the device itself
        import torch

        if not torch.cuda.is_available():
            raise CnncError(f"--device {device}: no CUDA device here; name the GPU instead, e.g. --device 'NVIDIA H200'")
        device = torch.cuda.get_device_name(torch.device(device))
    rows = explain.explain(graph, device, args.dtype, args.layout, args.batch, default_policy())
    return explain.render(rows, device, args.dtype, args.layout, args.batch)


def remapped_weights(gen, path, skip_mismatched: bool = False) -> tuple[dict, list[str]]:
    """The weights under the module's names, and the notes for stderr: the entries that had to be
    reordered to fit, or with `skip_mismatched` (pairing by name) what was skipped, missing and
    unexpected (skipped and missing tensors keep the module's initial values)."""
    from cnnc.api import load_source
    from cnnc.backends.weights import describe_moves, load_file, load_matching, remapped_state

    state_dict = load_file(path)
    module = getattr(load_source(gen.source, gen.name), gen.class_name)()
    if skip_mismatched:
        report = load_matching(module, state_dict, skip_mismatched=True)
        return module.state_dict(), str(report).splitlines()
    moves: list[str] = []
    module.load_state_dict(remapped_state(module, state_dict, moves))  # in the module's dtypes, checked
    return module.state_dict(), [describe_moves(moves)] if moves else []
