"""Code generation (cnnc/backends/codegen.py), the Python API (cnnc/api.py), weight import
(cnnc/backends/weights.py) and `cnnc build` (cnnc/cli/build.py): golden sources, op coverage, train/eval semantics, errors."""
import ast
import inspect
import os
import subprocess
import sys
import textwrap
import traceback

import pytest

torch = pytest.importorskip("torch")

import cnnc  # noqa: E402
from cnnc import cli  # noqa: E402
from cnnc.api import generate_source, load_source  # noqa: E402
from cnnc.backends.codegen import EMIT, generate  # noqa: E402
from cnnc.diagnostics import CnncError  # noqa: E402
from cnnc.ir.ops import OPS  # noqa: E402
from cnnc.pipeline import front_end, fuse  # noqa: E402
from cnnc_testlib import GOLDEN, ROOT, SPECS, TEST_SPECS, check_golden  # noqa: E402
from cnnc_testlib import module_prefixes, param_layers_in_ir_order

torch.set_num_threads(2)
TINY = TEST_SPECS / "codegen_tiny.cnn"
OPS_SPEC = TEST_SPECS / "codegen_ops.cnn"
ALLOWED_IMPORTS = {"torch", "torch.nn", "torch.nn.functional", "typing", "cnnc.backends"}


# ---- generated source -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["codegen_tiny", "codegen_ops"])
def test_golden_source(name):
    check_golden(GOLDEN / "codegen" / f"{name}.py", generate_source(TEST_SPECS / f"{name}.cnn").source)


def test_golden_fused_source():
    gen = generate(fuse(front_end(TINY).graph))
    check_golden(GOLDEN / "codegen" / "codegen_tiny.fused.py", gen.source)


def test_generated_source_imports_only_torch_and_runtime():
    for spec in (TINY, OPS_SPEC, SPECS / "resnet18.cnn"):
        tree = ast.parse(generate_source(spec).source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert {a.name for a in node.names} <= ALLOWED_IMPORTS
            elif isinstance(node, ast.ImportFrom):
                assert node.module in ALLOWED_IMPORTS, node.module


def test_every_op_has_an_emission_rule():
    missing = sorted(set(OPS) - set(EMIT))
    assert not missing, f"ops without an emission rule in cnnc/backends/codegen.py EMIT: {missing}"


def test_ops_spec_uses_every_op():
    """codegen_ops.cnn keeps every emission rule exercised (fused:conv: test_fused_module_*)."""
    used = {n.op for n in front_end(OPS_SPEC).graph.nodes} | {"fused:conv"}
    assert set(EMIT) - {"input"} <= used, sorted(set(EMIT) - used - {"input"})


def test_op_without_rule_is_a_clear_error(monkeypatch):
    monkeypatch.delitem(EMIT, "relu")
    with pytest.raises(CnncError) as e:
        generate(front_end(TINY).graph)
    assert "op 'relu'" in e.value.message and "no emission rule" in e.value.message
    assert e.value.loc is not None and e.value.loc.line >= 1


def test_instances_with_one_structure_share_a_parameterized_class():
    src = generate_source(SPECS / "resnet18.cnn").source
    assert "class Basic(nn.Module)" in src and "def __init__(self, channels)" in src
    # Stage (layer1): Basic(64) twice; Stage2 (layer2..4): Basic2(in, out), then Basic(out)
    assert src.count("            Basic(") == 3 and src.count("            Basic2(") == 1
    assert '"""Block `basic` at layer1.0, layer1.1, layer2.1, layer3.1 and 1 more."""' in src
    assert "class Stage2(nn.Sequential):" in src and "self.layer2 = Stage2(64, 128)" in src
    assert "        out = out + x\n" in src and "        x = self.layer1(x)\n" in src


# ---- the module: structure, state_dict order, train/eval ----------------------------------------



@pytest.mark.parametrize("spec", [TINY, OPS_SPEC, SPECS / "resnet18.cnn"], ids=lambda p: p.stem)
def test_state_dict_order_is_ir_order(spec):
    graph = front_end(spec).graph
    model = cnnc.compile(spec)
    assert module_prefixes(model) == param_layers_in_ir_order(graph)
    assert sum(p.numel() for p in model.parameters()) == sum(graph.params_of(n) for n in graph.nodes)


def test_ops_module_runs_forward_and_backward():
    torch.manual_seed(0)
    model = cnnc.compile(OPS_SPEC).train()
    out = model(torch.randn(4, 3, 16, 16))
    assert out.probs.shape == (4, 5) and out.features.shape == (4, 3)
    (out.probs.sum() + out.features.square().sum()).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        again = model(torch.randn(2, 3, 16, 16))
    assert torch.allclose(again.probs.sum(1), torch.ones(2))


def test_train_only_outputs_and_return_convention():
    torch.manual_seed(0)
    model = cnnc.compile(TINY)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    out = model(x)
    assert type(out).__name__ == "CodegenTinyOutputs" and out._fields == ("aux", "logits")
    assert out.aux.shape == out.logits.shape == (2, 10)
    model.eval()
    with torch.no_grad():
        y = model(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 10)
    with torch.no_grad():  # eval is deterministic (dropout, droppath off; BN running stats)
        assert torch.equal(model(x), y)


def test_train_mode_uses_batch_statistics_and_updates_running_stats():
    torch.manual_seed(0)
    model = cnnc.compile(SPECS / "resnet18.cnn", size=32, classes=4).train()
    bn = model.bn1
    before = bn.running_mean.clone()
    model(torch.randn(3, 3, 32, 32) + 2)
    assert not torch.equal(before, bn.running_mean) and int(bn.num_batches_tracked) == 1


def test_droppath_and_dropout_follow_the_mode():
    from cnnc.backends.runtime import DropPath

    torch.manual_seed(0)
    dp = DropPath(0.5)
    x = torch.ones(64, 2, 3, 3)
    y = dp(x)
    per_sample = y.flatten(1)
    assert set(per_sample[:, 0].tolist()) <= {0.0, 2.0} and (per_sample == per_sample[:, :1]).all()
    assert torch.equal(dp.eval()(x), x)


def test_params_override_and_spec_text():
    model = cnnc.compile(SPECS / "resnet18.cnn", classes=7, width=16, size=64)
    assert model.fc.out_features == 7 and model.conv1.out_channels == 16
    text = "network t(c=4) {\n x = input(3, 8, 8)\n output y = x -> conv(c, 3) -> global_avgpool -> flatten\n}\n"
    assert cnnc.compile(text, c=5)(torch.randn(1, 3, 8, 8)).shape == (1, 5)
    with pytest.raises(CnncError, match="keyword 'nope' is not a parameter of network 't'"):
        cnnc.compile(text, nope=1)


def test_generated_code_is_inspectable_and_tracebacks_show_it():
    model = cnnc.compile(TINY)
    src = inspect.getsource(type(model))
    assert src.startswith("class CodegenTiny(nn.Module):")
    assert inspect.getsourcefile(type(model)).startswith("<cnnc:codegen_tiny")
    with pytest.raises(RuntimeError) as e:
        model.eval()(torch.randn(1, 4, 32, 32))  # wrong channel count
    frames = traceback.extract_tb(e.value.__traceback__)
    ours = [f for f in frames if f.filename.startswith("<cnnc:codegen_tiny")]
    assert ours and ours[0].line.strip() == "x = self.stem(x)"


def test_state_dict_round_trips_into_a_fresh_compile():
    torch.manual_seed(0)
    a = cnnc.compile(TINY).eval()
    for m in a.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    torch.manual_seed(1)
    b = cnnc.compile(TINY).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_compiled_module_pickles_whole_into_a_fresh_process(tmp_path):
    """torch.save(model) of a cnnc.compile module loads in a process that never compiled the spec."""
    import copy
    import pickle

    torch.manual_seed(0)
    model = cnnc.compile(TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = model(x)
        for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
            assert torch.equal(clone(x), want) and clone is not model
    data = pickle.dumps(model)
    source = sys.modules[type(model).__module__].__cnnc_source__
    assert data.count(source.encode()) == 1  # the source travels once, however many generated modules
    torch.save(model, tmp_path / "model.pt")
    torch.save({"x": x, "want": want}, tmp_path / "io.pt")
    script = textwrap.dedent(f"""
        import sys, torch
        model = torch.load({str(tmp_path / "model.pt")!r}, weights_only=False)
        io = torch.load({str(tmp_path / "io.pt")!r})
        assert "cnnc_generated" in type(model).__module__ and not model.training
        with torch.no_grad():
            assert torch.equal(model(io["x"]), io["want"])
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


# ---- weights ------------------------------------------------------------------------------------


def _renamed(state_dict, prefix="foreign"):
    return {f"{prefix}.{i}": t.clone() for i, t in enumerate(state_dict.values())}


def test_import_weights_by_structural_order():
    torch.manual_seed(0)
    src = cnnc.compile(TINY).eval()
    dst = cnnc.compile(TINY).eval()
    assert cnnc.import_weights(dst, _renamed(src.state_dict())) is dst
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_import_weights_mismatch_loads_nothing():
    model = cnnc.compile(TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    foreign = _renamed(model.state_dict())
    keys = list(foreign)
    foreign[keys[5]] = torch.zeros(3, 3)
    for v in foreign.values():
        v.fill_(7) if v.is_floating_point() else None
    with pytest.raises(CnncError) as e:
        cnnc.import_weights(model, foreign)
    ours = list(model.state_dict())[5]
    assert f"tensor #5 'foreign.5' [3, 3] in the weights, '{ours}'" in e.value.message
    assert "nothing was loaded" in e.value.message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_import_weights_count_mismatch_names_first_unmatched():
    model = cnnc.compile(TINY)
    foreign = _renamed(model.state_dict())
    foreign["extra.weight"] = torch.zeros(2)
    with pytest.raises(CnncError, match=r"in the weights, \d+ in the module; first unmatched: 'extra.weight' \[2\]"):
        cnnc.import_weights(model, foreign)
    fewer = dict(list(_renamed(model.state_dict()).items())[:-1])
    last = list(model.state_dict())[-1]
    with pytest.raises(CnncError, match=f"first unmatched: '{last}'"):
        cnnc.import_weights(model, fewer)


def test_import_weights_linear_conv1x1_reshape_and_missing_counters():
    text = "network t() {\n x = input(4, 2, 2)\n output y = x -> conv(3, 1) -> bn -> flatten -> linear(2)\n}\n"
    model = cnnc.compile(text)
    theirs = {"a.weight": torch.randn(3, 4), "a.bias": torch.randn(3), "b.weight": torch.rand(3),
              "b.bias": torch.rand(3), "b.running_mean": torch.rand(3), "b.running_var": torch.rand(3),
              "c.weight": torch.randn(2, 12, 1, 1).flatten(1), "c.bias": torch.randn(2)}
    cnnc.import_weights(model, theirs)  # no num_batches_tracked in the foreign dict
    assert torch.equal(model.conv1.weight, theirs["a.weight"].reshape(3, 4, 1, 1))
    with pytest.raises(CnncError, match="is a str, not a tensor"):
        cnnc.import_weights(model, {**theirs, "a.weight": "x"})
    with pytest.raises(CnncError, match="a mapping of names to tensors"):
        cnnc.import_weights(model, [1, 2])


class _Scaled(torch.nn.Module):
    """A block with a per-channel scale after its body. With `scale_first` the scale is a parameter
    of the block itself, so (like torchvision's CNBlock) its state_dict lists it before the body;
    otherwise it is a module of its own registered after the body (like cnnc's LayerScale)."""

    def __init__(self, scale_first=True):
        super().__init__()
        gamma = torch.nn.Parameter(torch.randn(8, 1, 1))
        if scale_first:
            self.gamma = gamma
        self.body = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3), torch.nn.BatchNorm2d(8))
        if not scale_first:
            self.scale = torch.nn.ParameterDict({"gamma": gamma})
        self.head = torch.nn.Linear(8, 2)


def test_import_weights_reorders_entries_within_a_module_and_warns():
    theirs, ours = torch.nn.Sequential(_Scaled(True), _Scaled(True)), torch.nn.Sequential(_Scaled(False),
                                                                                           _Scaled(False))
    assert [tuple(t.shape) for t in theirs.state_dict().values()] != [
        tuple(t.shape) for t in ours.state_dict().values()]
    with pytest.warns(cnnc.ReorderedWeights) as record:
        cnnc.import_weights(ours, theirs.state_dict())
    message = str(record[0].message)
    assert message.startswith("2 foreign entries matched out of state_dict order")
    assert "'0.gamma' after '0.body'; '1.gamma' after '1.body'" in message
    mine, reference = ours.state_dict(), theirs.state_dict()
    for i in range(2):
        assert torch.equal(mine[f"{i}.scale.gamma"], reference[f"{i}.gamma"])
        for k in ("body.0.weight", "body.1.running_var", "head.weight"):
            assert torch.equal(mine[f"{i}.{k}"], reference[f"{i}.{k}"])


def test_import_weights_never_moves_a_tensor_out_of_its_module():
    ours = torch.nn.Sequential(_Scaled(False), _Scaled(False))
    theirs = torch.nn.Sequential(_Scaled(True), _Scaled(True)).state_dict()
    # block 0's scale filed under block 1: it may not travel back to block 0
    moved = {("1.gamma0" if k == "0.gamma" else k): v for k, v in theirs.items()}
    with pytest.raises(CnncError, match=r"tensor #0 '1.gamma0' \[8, 1, 1\] in the weights, '0.body.0.weight' "
                                        r"\[8, 4, 3, 3\] in the module \(nor does any reordering within modules\)"):
        cnnc.import_weights(ours, moved)


def test_import_weights_in_plain_order_does_not_warn(recwarn):
    theirs, ours = _Scaled(True), _Scaled(True)
    cnnc.import_weights(ours, theirs.state_dict())
    assert not [w for w in recwarn if issubclass(w.category, cnnc.ReorderedWeights)]


# ---- fused modules ----------------------------------------------------------------------------------


def test_fused_module_matches_unfused_with_the_same_weights():
    torch.manual_seed(0)
    plain = cnnc.compile(TINY).eval()
    for m in plain.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
    gen = generate(fuse(front_end(TINY).graph))
    fused = cnnc.compile(TINY, fused=True)  # the API's spelling of `cnnc build --fused`
    assert "runtime.FusedConv2d" in gen.source and inspect.getsource(type(fused)) in gen.source
    assert any(type(m).__name__ == "FusedConv2d" for m in fused.modules())
    cnnc.import_weights(fused, plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b = fused.eval()(x), plain(x)
    assert ((a - b).norm() / b.norm()).item() < 1e-5
    out = fused.train()(x)  # training mode runs the layers unfused, with batch statistics
    out.logits.sum().backward()


# ---- cnnc build -------------------------------------------------------------------------------------


def _build(capsys, *argv):
    code = cli.main(["build", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_build_writes_default_path_and_prints_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = _build(capsys, SPECS / "resnet18.cnn")
    assert code == 0, err
    target = tmp_path / "build" / "resnet18.py"
    assert target.read_text() == generate_source(SPECS / "resnet18.cnn").source
    assert out.splitlines() == ["resnet18: 70 layers, 11,689,512 parameters, 1.81 GMACs (1,814,073,344)",
                                f"wrote {os.path.join('build', 'resnet18.py')}"]
    assert [p.name for p in target.parent.iterdir()] == ["resnet18.py"]  # no temporary files left


def test_build_output_and_set(tmp_path, capsys):
    target = tmp_path / "a" / "b" / "net.py"
    code, out, _ = _build(capsys, TINY, "-o", target, "--set", "classes=3")
    assert code == 0 and target.exists() and "nn.Linear(16, 3)" in target.read_text()
    assert out.splitlines()[-1] == f"wrote {target}"


def test_build_fused(tmp_path, capsys):
    target = tmp_path / "net.py"
    code, out, _ = _build(capsys, TINY, "-o", target, "--fused")
    assert code == 0 and target.read_text() == generate(fuse(front_end(TINY).graph)).source


@pytest.mark.parametrize("case", ["directory", "parent_is_file", "unknown_param", "bad_value"])
def test_build_refusals_are_one_line_exit_1(tmp_path, capsys, case):
    (tmp_path / "afile").write_text("x")
    args = {"directory": ["-o", tmp_path],
            "parent_is_file": ["-o", tmp_path / "afile" / "x.py"],
            "unknown_param": ["-o", tmp_path / "x.py", "--set", "klasses=3"],
            "bad_value": ["-o", tmp_path / "x.py", "--set", "width=0"]}[case]
    code, out, err = _build(capsys, SPECS / "resnet18.cnn", *args)
    assert code == 1 and out == ""
    assert "error:" in err.splitlines()[0] and "Traceback" not in err
    if case != "bad_value":  # a spec error quotes the spec line under the message
        assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.py").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def _weights_files(tmp_path):
    good = cnnc.compile(TINY).state_dict()
    files = {"missing": tmp_path / "missing.pth", "dir": tmp_path}
    torch.save(good, tmp_path / "good.pth")
    data = (tmp_path / "good.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "text.pth").write_text("not weights\n")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    torch.save({"a": torch.zeros(1), "b": 3}, tmp_path / "notensor.pth")
    shrunk = dict(good)
    shrunk[next(iter(shrunk))] = torch.zeros(1)
    torch.save(shrunk, tmp_path / "mismatch.pth")
    for name in ("truncated", "empty", "text", "list", "notensor", "mismatch"):
        files[name] = tmp_path / f"{name}.pth"
    return files


def test_build_bad_weights_are_one_line_exit_1_and_keep_the_old_output(tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "net.py"
    target.write_text("old\n")
    messages = {}
    for name, path in _weights_files(tmp_path).items():
        code, out, err = _build(capsys, TINY, "-o", target, "--weights", path)
        assert code == 1 and out == "", name
        assert len(err.strip().splitlines()) == 1 and err.startswith("cnnc: error: "), (name, err)
        messages[name] = err
        assert target.read_text() == "old\n" and sorted(p.name for p in out_dir.iterdir()) == ["net.py"]
    assert "no such file" in messages["missing"] and "is a directory" in messages["dir"]
    assert "truncated" in messages["truncated"] and "empty or truncated" in messages["empty"]
    assert "holds a list" in messages["list"] and "'b' is a int" in messages["notensor"]
    assert "weights do not fit: tensor #0" in messages["mismatch"]


def test_build_with_weights_writes_a_loadable_pth(tmp_path, capsys):
    torch.manual_seed(0)
    source = cnnc.compile(TINY).eval()
    torch.save({"state_dict": _renamed(source.state_dict())}, tmp_path / "w.pth")
    target = tmp_path / "net.py"
    code, out, err = _build(capsys, TINY, "-o", target, "--weights", tmp_path / "w.pth")
    assert code == 0, err
    assert out.splitlines()[-1] == f"wrote {target} and {tmp_path / 'net.pth'}"
    module = load_source(target.read_text(), "codegen_tiny")
    model = module.CodegenTiny().eval()
    model.load_state_dict(torch.load(tmp_path / "net.pth", weights_only=True))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), source(x))


def test_build_with_weights_registered_out_of_order_notes_the_moves(tmp_path, capsys):
    torch.manual_seed(0)
    source = cnnc.compile(TINY)
    foreign = _renamed(source.state_dict(), prefix="mixer")  # one module: its entries may be permuted
    keys = list(foreign)
    scale = next(k for k, (name, t) in zip(keys, source.state_dict().items()) if "layerscale" in name)
    foreign = {scale: foreign.pop(scale), **foreign}  # registered first, like torchvision's layer_scale
    torch.save(foreign, tmp_path / "w.pth")
    code, out, err = _build(capsys, TINY, "-o", tmp_path / "net.py", "--weights", tmp_path / "w.pth")
    assert code == 0, err
    assert err == (f"cnnc: note: 1 foreign entry matched out of state_dict order (registered in another order "
                   f"than used): '{scale}' after '{keys[keys.index(scale) - 1]}'\n")
    loaded = torch.load(tmp_path / "net.pth", weights_only=True)
    assert all(torch.equal(a, b) for a, b in zip(loaded.values(), source.state_dict().values()))


def test_failed_write_leaves_no_temporary_file(tmp_path, capsys, monkeypatch):
    target = tmp_path / "net.py"
    target.write_text("old\n")

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    code, _, err = _build(capsys, TINY, "-o", target)
    assert code == 1 and err.strip() == f"cnnc: error: cannot write '{target}': Permission denied"
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["net.py"]


def test_built_file_runs_in_a_fresh_process_with_only_torch_and_cnnc(tmp_path):
    spec = SPECS / "inception_v1.cnn"
    if not spec.exists():
        spec = SPECS / "resnet18.cnn"
    target = tmp_path / "tmp" / "x.py"
    run = subprocess.run([sys.executable, "-m", "cnnc", "build", str(spec), "-o", str(target)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    script = textwrap.dedent(f"""
        import importlib.util, sys
        for blocked in ("torchvision", "timm", "onnx", "onnxscript", "lark", "tabulate"):
            sys.modules[blocked] = None  # importing any of these now fails
        import torch
        spec = importlib.util.spec_from_file_location("x", {str(target)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        names = [n for n, c in vars(module).items() if isinstance(c, type) and issubclass(c, torch.nn.Module)
                 and c.__module__ == "x"]
        model = getattr(module, names[-1])().eval()
        with torch.no_grad():
            y = model(torch.randn(1, 3, 224, 224))
        assert y.shape == (1, 1000) and torch.isfinite(y).all(), y.shape
        print("ok", names[-1])
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
