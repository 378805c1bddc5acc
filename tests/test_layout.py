"""The tree shows the pipeline: the module graph, derived from the source, flows one way.

Every `import` in cnnc (at module level or inside a function) is an edge. The stages are the
packages in pipeline order; a module may import its own stage, an earlier one, or the base
modules every stage uses, never a later stage. The front end and the IR never reach torch, and
the kernels are a library of their own: they import nothing of cnnc outside cnnc.kernels.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import zipfile

import pytest

from cnnc_testlib import ROOT

PACKAGE = ROOT / "cnnc"

# Stages in pipeline order (cnnc/pipeline.py); everything else is the driver, which comes last:
# the modules directly in cnnc/ that are not base (pipeline, api, the package itself) and cnnc/cli/.
STAGES = ["frontend", "ir", "passes", "kernels", "backends"]
BASE = {"cnnc.diagnostics", "cnnc.version", "cnnc.outfile"}
NO_TORCH = ("frontend", "ir")


def module_name(path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path, known) -> set:
    """The cnnc modules and the third-party top-level packages one module imports."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                target = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module
            for a in node.names:  # `from pkg import module` imports the module; otherwise pkg itself
                out.add(f"{target}.{a.name}" if f"{target}.{a.name}" in known else target)
    return out


@pytest.fixture(scope="module")
def graph():
    known = modules()
    edges = {}
    for name, path in known.items():
        edges[name] = imports_of(name, path, known)
    return known, edges


def stage(name: str) -> int:
    """Rank in the pipeline: base modules 0, stages 1..len(STAGES), the driver last."""
    if name in BASE:
        return 0
    parts = name.split(".")
    if len(parts) > 1 and parts[1] in STAGES:
        return 1 + STAGES.index(parts[1])
    return len(STAGES) + 1


def test_the_tree_has_the_stage_packages(graph):
    known, _ = graph
    for s in STAGES + ["cli"]:
        assert f"cnnc.{s}" in known, f"cnnc/{s}/ is missing"
    assert {"cnnc.pipeline", "cnnc.api"} <= set(known)


def test_no_import_cycle(graph):
    known, edges = graph
    inner = {m: sorted(t for t in ts if t in known and t != m) for m, ts in edges.items()}
    state, stack_cycle = {}, []

    def visit(m, path):
        state[m] = "open"
        for t in inner[m]:
            if state.get(t) == "open":
                stack_cycle.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(inner):
        if m not in state:
            visit(m, [m])
    assert not stack_cycle, "import cycles: " + "; ".join(" -> ".join(c) for c in stack_cycle)


def test_no_stage_imports_a_later_one(graph):
    known, edges = graph
    upward = [f"{m} -> {t}" for m, ts in edges.items() for t in ts
              if t in known and stage(t) > stage(m)]
    assert not upward, "imports of a later stage: " + ", ".join(sorted(upward))


def test_every_cnnc_import_resolves(graph):
    """A typo in a relative import would otherwise hide an edge from the checks above."""
    known, edges = graph
    missing = [f"{m} -> {t}" for m, ts in edges.items() for t in ts if t.startswith("cnnc") and t not in known]
    assert not missing, missing


def test_front_end_and_ir_never_reach_torch(graph):
    known, edges = graph
    heavy = {"torch", "triton", "torchvision", "numpy"}
    for m in known:
        if m.count(".") == 0 or m.split(".")[1] not in NO_TORCH:
            continue
        seen, todo = set(), [m]
        while todo:
            x = todo.pop()
            if x in seen:
                continue
            seen.add(x)
            for t in edges.get(x, ()):
                assert t.split(".")[0] not in heavy, f"{m} reaches {t} (through {x})"
                if t in known:
                    todo.append(t)


def test_kernels_are_a_library_of_their_own(graph):
    known, edges = graph
    outside = [f"{m} -> {t}" for m, ts in edges.items() if m.startswith("cnnc.kernels")
               for t in ts if t.startswith("cnnc") and not t.startswith("cnnc.kernels")]
    assert not outside, outside


def test_the_wheel_installs_cnnc_alone(tmp_path):
    """What `pip install` puts on sys.path: the one top-level package cnnc, with its data files."""
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("cnnc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"cnnc"}, top
    assert "cnnc/frontend/grammar.lark" in names
    assert "cnnc/kernels/depthwise.py" in names
    # pyproject lists the packages: every module, and the spec library as cnnc/specs
    modules = {str(p.relative_to(ROOT).as_posix()) for p in PACKAGE.rglob("*.py")}
    assert modules <= set(names), sorted(modules - set(names))
    specs = {"cnnc/" + str(p.relative_to(ROOT).as_posix()) for p in (ROOT / "specs").rglob("*.cnn")}
    assert specs and specs <= set(names), sorted(specs - set(names))


DEPTHWISE_SPEC = """
network dw(classes=4) {
    x = input(8, 12, 12)
    x = x -> conv(8, 3, padding=1, groups=8, bias=false) -> bn -> relu
    x = x -> conv(16, 1) -> relu
    output logits = x -> global_avgpool -> flatten -> linear(classes)
}
"""


def test_a_package_named_kernels_on_the_path_changes_nothing(tmp_path):
    """PyPI's popular `kernels` package (or any module of that name) first on sys.path must not
    replace cnnc's own kernels: a depthwise model compiles, runs, and agrees with its plain twin."""
    fake = tmp_path / "kernels"
    fake.mkdir()
    (fake / "__init__.py").write_text("IMPOSTOR = True\n")
    script = f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
sys.path.insert(1, {str(ROOT)!r})
import kernels
assert kernels.IMPOSTOR
import torch, cnnc
spec = {DEPTHWISE_SPEC!r}
torch.manual_seed(0)
plain = cnnc.compile(spec).eval()
fused = cnnc.compile(spec, fused=True).eval()
cnnc.import_weights(fused, plain.state_dict())
x = torch.randn(2, 8, 12, 12)
with torch.no_grad():
    a, b = plain(x), fused(x)
torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
import cnnc.kernels
assert cnnc.kernels.__file__.startswith({str(PACKAGE)!r}), cnnc.kernels.__file__
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr[-3000:]
