"""Every pass is linear in the number of nodes: counted, not timed. The work of a stage is the
number of Python and builtin function calls it makes (sys.setprofile); at four times the size a
linear stage makes about four times as many, a quadratic one sixteen. tools/scale.py measures
the times."""
import sys

import pytest

from cnnc.backends.summary import rows
from cnnc.frontend.loader import load_text
from cnnc.ir.irgen import generate as irgen
from cnnc.ir.verify import verify
from cnnc.passes.prune_unused import prune_unused
from cnnc.pipeline import front_end, fuse

SMALL = 300


def block_chain(n):  # a scope per node: what made the verifier quadratic
    return ("block b(x) { return x -> relu }\n"
            f"network chain() {{\n    x = input(8, 4, 4)\n    for i in range({n}) {{ x = x -> b }}\n    output o = x\n}}\n")


def conv_chain(n):
    return ("block cbr(x) { return x -> conv(8, 3, padding=1, bias=false) -> bn -> relu }\n"
            f"network chain() {{\n    x = input(8, 4, 4)\n    for i in range({n // 3}) {{ x = x -> cbr }}\n"
            "    output o = x\n    output side = x -> relu\n}\n")


def relu_chain(n):
    return f"network chain() {{\n    x = input(8, 4, 4)\n    for i in range({n}) {{ x = x -> relu }}\n    output o = x\n}}\n"


def wide_concat(n):  # n values alive at once: what made forward's variable naming quadratic
    return "network wide() {\n    x = input(1, 4, 4)\n    output o = concat(" + ", ".join(["x -> relu"] * n) + ")\n}\n"


def calls(fn) -> int:
    count = 0

    def profile(frame, event, arg):
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def _codegen(g):
    from cnnc.backends.codegen import generate

    return generate(g)


STAGES = {  # stage -> (spec maker, what to run on the front end's graph; None: the stage takes the text)
    "irgen": (block_chain, None),
    "verify": (block_chain, verify),
    "prune_unused": (block_chain, prune_unused),
    "fuse": (conv_chain, fuse),
    "summary": (block_chain, rows),
    "codegen-chain": (relu_chain, _codegen),
    "codegen-blocks": (block_chain, _codegen),
    "codegen-wide": (wide_concat, _codegen),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_is_linear(stage):
    make, run = STAGES[stage]
    work = []
    for n in (SMALL, 4 * SMALL):
        if run is None:
            prog = load_text(make(n))
            work.append(calls(lambda: irgen(prog)))
        else:
            g = front_end(make(n)).graph
            work.append(calls(lambda: run(g)))
    assert work[1] / work[0] < 5, f"{stage}: {work[0]:,} calls at {SMALL}, {work[1]:,} at {4 * SMALL}"
