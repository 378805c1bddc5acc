"""Resource bombs: specs and command lines built to make cnnc run long or grow large.

Each bomb runs `python -m cnnc ...` in a subprocess of its own, in a scratch directory, under a
CPU-time and address-space limit (defaults 60 s and 4 GiB, so that an old cnnc that does not
refuse a bomb is stopped), and the script prints per bomb: the exit status, the first line of
stderr, the wall time, the CPU time (user + system, of the child alone) and the peak resident
memory. The target (issue 13): every bomb refused with a located error within 5 s and 1 GB on
one core. Two are accepted: `round-huge-ndigits` (computed: 0) and `tokens-just-under-cap` (the
largest spec the token budget admits, to show what that costs). This is a measurement, not a
test: tests/test_budget.py checks that each bomb is refused with the right message, without
timing anything.

    python3 tools/bombs.py                   # this checkout
    python3 tools/bombs.py --root /old/cnnc  # another checkout, for comparison
    python3 tools/bombs.py --only string-doubling,lists-compare
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _net(body: str, pre: str = "") -> str:
    return pre + "network n() {\n    x = input(3, 8, 8)\n" + body + "\n    output o = x\n}\n"


def _sum(terms: int) -> str:
    return "c = " + " + ".join(["1"] * terms) + "\n"


def _constants(size: int) -> str:
    lines, n = [], 0
    while n < size:
        line = f"c{len(lines)} = {len(lines)} * 3 + 1\n"
        lines.append(line)
        n += len(line)
    return "".join(lines)


# name -> (files to write: {relative path: text or bytes, or a callable that makes the path}, argv after `cnnc`)
BOMBS = {
    "round-huge-ndigits": ({"b.cnn": _net("    y = round(5, -1000000000)")}, ["check", "b.cnn"]),
    "power": ({"b.cnn": _net("    y = 7 ** 1000000000")}, ["check", "b.cnn"]),
    "floor-division-huge": ({"b.cnn": _net("    y = (2 ** 62) * (2 ** 62) // 3")}, ["check", "b.cnn"]),
    "modulo-huge-literal": ({"b.cnn": _net("    y = 99999999999999999999999999 % 7")}, ["check", "b.cnn"]),
    "int-of-huge-float": ({"b.cnn": _net("    y = int(1e308)")}, ["check", "b.cnn"]),
    "huge-range": ({"b.cnn": _net("    for i in range(99999999999999999999) { y = i }")}, ["check", "b.cnn"]),
    "string-doubling": ({"b.cnn": _net('    s = "ab"\n    for i in range(40) { s = s + s }')}, ["check", "b.cnn"]),
    "list-doubling": ({"b.cnn": _net("    a = [1]\n    for i in range(40) { a = a + a }")}, ["check", "b.cnn"]),
    "lists-compare": ({"b.cnn": _net("    a = [1] * 1000000\n    b = [1] * 1000000\n"
                                     "    for i in range(1000) { c = a == b }")}, ["check", "b.cnn"]),
    "shared-lists-compare": ({"b.cnn": _net("    a = [1]\n    b = [1]\n"
                                            "    for i in range(60) { a = [a, a]\n b = [b, b] }\n    c = a == b")},
                             ["check", "b.cnn"]),
    "min-of-long-lists": ({"b.cnn": _net("    a = [1] * 1000000\n    for i in range(1000) { m = min(a) }")},
                          ["check", "b.cnn"]),
    "step-budget": ({"b.cnn": _net("    for i in range(1999999) { y = i }")}, ["check", "b.cnn"]),
    "nested-lists": ({"b.cnn": _net("", "c = " + "[" * 5000 + "1" + "]" * 5000 + "\n")}, ["check", "b.cnn"]),
    "deep-expression": ({"b.cnn": _net("    y = " + "-" * 20000 + "1")}, ["check", "b.cnn"]),
    "constants-file-4mib": ({"b.cnn": _net("", 'import "c.cnn"\n'), "c.cnn": _constants(4 * 1024 * 1024 - 100)},
                            ["check", "b.cnn"]),
    "sum-500000-terms": ({"b.cnn": _net("", _sum(500_000))}, ["check", "b.cnn"]),
    # accepted: the most tokens a spec may hold (constants), to see what the largest accepted costs
    "tokens-just-under-cap": ({"b.cnn": _net("", "".join(f"c{i} = {i} * 3 + 1\n" for i in range(5_709)))},
                              ["check", "b.cnn"]),
    "many-imports": ({"b.cnn": _net("", "".join(f'import "f{i}.cnn"\n' for i in range(2000))),
                      **{f"f{i}.cnn": f"# {i}\n" for i in range(2000)}}, ["check", "b.cnn"]),
    "import-dev-zero": ({"b.cnn": _net("", 'import "/dev/zero"\n')}, ["check", "b.cnn", "--import-root", "/dev"]),
    "import-fifo": ({"b.cnn": _net("", 'import "f.cnn"\n'), "f.cnn": "fifo"}, ["check", "b.cnn"]),
    "import-outside": ({"b.cnn": _net("", 'import "/proc/self/environ"\n')}, ["check", "b.cnn"]),
    "wide-concat": ({"b.cnn": _net("    y = concat([x] * 100000)")}, ["check", "b.cnn"]),
    "node-budget": ({"b.cnn": _net("    for i in range(1000000) { x = x -> relu }")}, ["check", "b.cnn"]),
    "instance-budget": ({"b.cnn": _net('    for i in range(1000000) { x = x -> same as "b{i}" }',
                                       "block same(x) { return x }\n")}, ["check", "b.cnn"]),
    "long-label": ({"b.cnn": _net('    s = "a"\n    for i in range(13) { s = s + s }\n    x = x -> relu as "{s}"')},
                   ["check", "b.cnn"]),
    "set-huge-integer": ({"b.cnn": "network n(c=1) {\n    output o = input(3, 8, 8)\n}\n"},
                         ["check", "b.cnn", "--set", "c=" + "9" * 90]),
}


def _write(directory: Path, files: dict) -> None:
    for rel, content in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content == "fifo":
            os.mkfifo(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def measure(argv: list, cwd, root: Path, cpu_limit: int | None = None, memory_limit: int | None = None,
            wall_limit: float | None = None) -> dict:
    """Run `python -m cnnc argv` from checkout `root` in `cwd`, under the given limits; its exit
    status, stderr, wall time, and the child's own CPU time and peak RSS (from wait4, so nothing
    else is counted). tools/scale.py uses it too."""

    def limits():
        if cpu_limit:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_limit, cpu_limit))
        if memory_limit:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    env = {**os.environ, "PYTHONPATH": str(root)}
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "cnnc", *argv], cwd=cwd, env=env, preexec_fn=limits,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        timer = threading.Timer(wall_limit, proc.kill) if wall_limit else None
        if timer:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer:
                timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    return {"status": proc.returncode, "stderr": stderr, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "peak_mb": usage.ru_maxrss / 1024}


def machine(root: Path) -> str:
    return (f"cnnc at {root}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs; "
            f"load average {os.getloadavg()[0]:.2f}")


def run_bomb(name: str, root: Path, cpu_limit: int, memory_limit: int, wall_limit: int) -> dict:
    files, argv = BOMBS[name]
    with tempfile.TemporaryDirectory(prefix="cnnc-bomb-") as tmp:
        _write(Path(tmp), files)
        return measure(argv, tmp, root, cpu_limit, memory_limit, wall_limit)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT, help="the cnnc checkout to run (default: this one)")
    ap.add_argument("--only", help="comma-separated bomb names")
    ap.add_argument("--cpu", type=int, default=60, help="CPU-time limit per bomb, seconds")
    ap.add_argument("--memory", type=int, default=4096, help="address-space limit per bomb, MiB")
    ap.add_argument("--wall", type=int, default=180, help="wall-clock limit per bomb, seconds")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(BOMBS)
    print(machine(args.root))
    print(f"{'bomb':<24} {'exit':>4} {'wall s':>7} {'cpu s':>6} {'peak MB':>8}  first line of stderr")
    for name in names:
        r = run_bomb(name, args.root, args.cpu, args.memory * 1024 * 1024, args.wall)
        first = (r["stderr"].strip().splitlines() or [""])[0]
        print(f"{name:<24} {r['status']:>4} {r['wall']:>7.2f} {r['cpu']:>6.2f} {r['peak_mb']:>8.0f}  {first[:110]}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
