"""`cnnc build FILE [-o OUT.py] [--weights W.pth]`: write the generated nn.Module source.

Writes `build/<spec stem>.py` by default. With `--weights`, the foreign state_dict is mapped onto
the module by structural order (weights.py; entries it had to reorder are listed in a note on
stderr) and saved, under the module's own names, as
`OUT.pth` next to `OUT.py`; `Net().load_state_dict(torch.load("OUT.pth"))` then loads it.
Everything that can fail (front end, code generation, reading and fitting the weights) runs
before anything is written, and each file is written atomically (a temporary file in the
destination directory, then os.replace), so a failed build leaves no half-written output.
An output must be a regular file or not exist yet (never a directory, device, FIFO or symbolic
link) and never one of the inputs (the spec, its imports, the weights). Identical inputs give
byte-identical files (the .pth is serialised in memory, so its archive name is not the temporary
file's).
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

from cnnc.diagnostics import CnncError
from cnnc.outfile import prepare_output, write_atomically

from .common import graph_and_inputs

NAME = "build"
HELP = "generate a PyTorch nn.Module (.py) from a spec; --weights also writes remapped weights (.pth)"


def add_arguments(p) -> None:
    p.add_argument("-o", "--output", metavar="OUT.py",
                   help="where to write the module (default: build/<spec stem>.py); a regular file or a new "
                        "one, never a symbolic link (cnnc does not write through links) or an input")
    p.add_argument("--weights", metavar="W.pth",
                   help="a torchvision/timm-style state_dict to map onto the module, saved as OUT.pth")
    p.add_argument("--fused", action="store_true",
                   help="apply the fusion passes first: conv + BatchNorm + residual add + activation become one "
                        "kernels.conv2d call (same weights)")


def run(args) -> int:
    from cnnc.backends.codegen import generate
    from cnnc.backends.summary import one_line

    graph, inputs = graph_and_inputs(args, fused=args.fused)
    gen = generate(graph)
    out = args.output or Path("build") / (Path(args.file).stem + ".py")
    weights, moves = _remapped_weights(gen, args.weights) if args.weights else (None, [])
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
    if moves:
        from cnnc.backends.weights import describe_moves

        print(f"cnnc: note: {describe_moves(moves)}", file=sys.stderr)
    print(one_line(graph))
    print(f"wrote {out}" + (f" and {pth}" if weights is not None else ""))
    return 0


def _remapped_weights(gen, path) -> tuple[dict, list[str]]:
    """The weights under the module's names, and the entries that had to be reordered to fit."""
    from cnnc.api import load_source
    from cnnc.backends.weights import load_file, remapped_state

    state_dict = load_file(path)
    module = getattr(load_source(gen.source, gen.name), gen.class_name)()
    moves: list[str] = []
    module.load_state_dict(remapped_state(module, state_dict, moves))  # in the module's dtypes, checked
    return module.state_dict(), moves
