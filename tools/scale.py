"""How cnnc's time grows with the size of a spec: every pass should be linear in the nodes.

Each case is a spec generated at a size and at a quarter of it, run as a whole `python -m cnnc`
process (so parsing, expansion, verification, the passes and the back end all count), and
reported with its wall time, its CPU time (user + system of that process alone, which a loaded
machine inflates less) and its peak memory; `x4` is the ratio of the two CPU times, about 4 when
the growth is linear (less, since start-up costs the same at both sizes). The targets of issue
13: a 20,000-block chain checks in under 2 s, a 100,000-relu chain builds in under 10 s. This is
a measurement, not a test.

    python3 tools/scale.py                  # every case
    python3 tools/scale.py --only relu-chain-build
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bombs import machine, measure  # the same measured run, in tools/

ROOT = Path(__file__).resolve().parents[1]


def block_chain(n: int) -> str:
    return ("block b(x) { return x -> relu }\n"
            f"network chain() {{\n    x = input(8, 4, 4)\n    for i in range({n}) {{ x = x -> b }}\n"
            "    output o = x\n}\n")


def relu_chain(n: int) -> str:
    return f"network chain() {{\n    x = input(8, 4, 4)\n    for i in range({n}) {{ x = x -> relu }}\n    output o = x\n}}\n"


def conv_chain(n: int) -> str:
    return ("block cbr(x) { return x -> conv(8, 3, padding=1, bias=false) -> bn -> relu }\n"
            f"network chain() {{\n    x = input(8, 4, 4)\n    for i in range({n}) {{ x = x -> cbr }}\n"
            "    output o = x\n}\n")


def wide_concat(n: int) -> str:
    return ("network wide() {\n    x = input(1, 4, 4)\n    output o = concat(" + ", ".join(["x -> relu"] * n)
            + ")\n}\n")


# name -> (spec maker, full size, command after `cnnc`, target seconds at full size or None)
CASES = {
    "block-chain-check": (block_chain, 20_000, ["check"], 2.0),
    "relu-chain-build": (relu_chain, 100_000, ["build", "-o", "out.py"], 10.0),
    "conv-chain-fused-build": (conv_chain, 10_000, ["build", "--fused", "-o", "out.py"], None),
    "wide-concat-build": (wide_concat, 8_000, ["build", "-o", "out.py"], None),
    "block-chain-summary": (block_chain, 20_000, ["summary", "--format", "csv"], None),
}


def run(spec: str, command: list, root: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="cnnc-scale-") as tmp:
        path = Path(tmp) / "spec.cnn"
        path.write_text(spec)
        return measure([command[0], str(path), *command[1:]], tmp, root)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT, help="the cnnc checkout to run (default: this one)")
    ap.add_argument("--only", help="comma-separated case names")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(CASES)
    print(machine(args.root))
    print(f"{'case':<24} {'size':>8} {'wall s':>7} {'cpu s':>6} {'peak MB':>8} {'x4':>5}  target")
    for name in names:
        make, size, command, target = CASES[name]
        quarter = run(make(size // 4), command, args.root)
        full = run(make(size), command, args.root)
        for n, r in ((size // 4, quarter), (size, full)):
            if r["status"] != 0:
                print(f"{name:<24} {n:>8} exit {r['status']}: {r['stderr'].strip().splitlines()[:1]}")
        ratio = full["cpu"] / quarter["cpu"] if quarter["cpu"] else float("nan")
        goal = "" if target is None else f"< {target:g} s: {'met' if full['wall'] < target else 'MISSED'} (wall)"
        print(f"{name:<24} {size // 4:>8} {quarter['wall']:>7.2f} {quarter['cpu']:>6.2f} {quarter['peak_mb']:>8.0f}")
        print(f"{'':<24} {size:>8} {full['wall']:>7.2f} {full['cpu']:>6.2f} {full['peak_mb']:>8.0f} {ratio:>5.2f}  {goal}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
