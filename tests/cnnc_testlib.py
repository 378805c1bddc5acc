"""Paths and golden-file helpers shared by the test modules."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
TEST_SPECS = ROOT / "tests" / "specs"
GOLDEN = ROOT / "tests" / "golden"

def examples(n: int) -> int:
    """Hypothesis examples for a harness: `n` per CI run, 25 times as many under
    HYPOTHESIS_PROFILE=thorough (tests/conftest.py registers the profiles)."""
    return n * 25 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else n


def check_golden(path: Path, text: str) -> None:
    """Compare text with a golden file; CNNC_UPDATE_GOLDEN=1 rewrites it instead."""
    if os.environ.get("CNNC_UPDATE_GOLDEN") == "1" or not path.exists():
        if not path.exists() and os.environ.get("CI"):
            raise AssertionError(f"golden file {path} is missing")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    expected = path.read_text()
    assert text == expected, f"{path.name} differs from its golden file (CNNC_UPDATE_GOLDEN=1 to accept)"


def param_layers_in_ir_order(graph):
    """What module_prefixes gives for a module built from the graph: the instance paths of the
    nodes that own state_dict entries, in IR order. A layer scale is a parameter of its enclosing
    module, not a module: its key is its path, and it comes where torch lists a module's own
    parameters, after its earlier layer scales and before everything else inside that module."""
    out, scales = [], set()
    for n in graph.nodes:
        if not (graph.params_of(n) or n.op == "batchnorm"):
            continue
        if n.op != "layerscale":
            out.append(n.path)
            continue
        parent = n.path.rpartition(".")[0]
        own = f"{parent}." if parent else ""
        inside = [i for i, p in enumerate(out) if p.startswith(own)
                  and not (p in scales and p.rpartition(".")[0] == parent)]
        out.insert(inside[0] if inside else len(out), n.path)
        scales.add(n.path)
    return _key_prefixes(out, scales)


def _key_prefixes(paths, scales):
    """A layer scale's key is its own path: its prefix (module_prefixes' rule) is its parent's
    path, or the key itself at the top level; runs of one prefix count once."""
    out = []
    for p in paths:
        prefix = p.rsplit(".", 1)[0] if p in scales else p
        if not out or out[-1] != prefix:
            out.append(prefix)
    return out


def module_prefixes(module):
    """The module paths of a state_dict's keys, in order, each run listed once."""
    seen = []
    for key in module.state_dict():
        prefix = key.rsplit(".", 1)[0]
        if not seen or seen[-1] != prefix:
            seen.append(prefix)
    return seen


def imported_modules(*argv) -> list:
    """The modules `python -m cnnc ARGV...` imports (from -X importtime), after checking it succeeds."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "cnnc", *argv], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    modules = [line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line]
    assert modules
    return modules


SMALL_SIZES = (64, 96, 112, 128, 160, 192, 224, 256, 299)


def small_graph(spec):
    """(graph, overrides) of a spec at the smallest input size it accepts (trying SMALL_SIZES up to
    its default) with 10 classes: whole-network tests on CPU in seconds."""
    import pytest

    from cnnc.diagnostics import CnncError
    from cnnc.pipeline import front_end

    params = dict(front_end(spec).graph.params)
    overrides = {"classes": 10} if "classes" in params else {}
    if "size" not in params:
        return front_end(spec, overrides).graph, overrides
    for size in sorted({s for s in SMALL_SIZES if s < params["size"]} | {params["size"]}):
        try:
            return front_end(spec, {**overrides, "size": size}).graph, {**overrides, "size": size}
        except CnncError:
            continue
    pytest.fail(f"{spec.name} accepts none of the sizes {SMALL_SIZES}")


def randomize_batchnorm(module, seed=1):
    """Non-trivial BatchNorm statistics and affine parameters in every BatchNorm of `module` (itself
    included), so a folded or misplaced one shows: mean and bias in [-0.5, 0.5), variance in
    [0.5, 2), weight in [0.5, 1.5). Returns `module`."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                for t, low, high in ((m.running_mean, -0.5, 0.5), (m.running_var, 0.5, 2.0), (m.weight, 0.5, 1.5),
                                     (m.bias, -0.5, 0.5)):
                    t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) * (high - low) + low)
    return module


def listed_entries(spec: str) -> dict:
    """Name -> row of `cnnc list --format json` (run from the checkout), for the entries of the
    library file `spec` ("specs/regnet.cnn")."""
    import contextlib
    import io
    import json

    from cnnc.cli import main

    out = io.StringIO()
    with contextlib.chdir(ROOT), contextlib.redirect_stdout(out):
        assert main(["list", "--format", "json"]) == 0
    return {r["name"]: r for r in json.loads(out.getvalue()) if r["spec"] == spec}
