"""Front end: golden dumps of each stage, semantics, and the verifier."""
import json
import re
from dataclasses import replace

import pytest

from cnnc.frontend.ast import dump_ast
from cnnc.ir.graph import dump_ir
from cnnc.pipeline import front_end, load
from cnnc.backends.summary import summary_data
from cnnc.ir.verify import verify
from cnnc_testlib import GOLDEN, TEST_SPECS, check_golden, imported_modules

GOLDEN_SPECS = ["tiny_resnet", "tiny_inception", "tiny_unet"]


@pytest.mark.parametrize("name", GOLDEN_SPECS)
def test_golden_ast(name):
    prog = load(TEST_SPECS / f"{name}.cnn")
    text = "".join(dump_ast(m) for m in prog.modules)
    check_golden(GOLDEN / "frontend" / f"{name}.ast", text)


@pytest.mark.parametrize("name", GOLDEN_SPECS)
def test_golden_ir(name):
    check_golden(GOLDEN / "frontend" / f"{name}.ir", dump_ir(front_end(TEST_SPECS / f"{name}.cnn").graph))


def test_emit_flags_match_dumps(capsys):
    from cnnc.cli import main

    spec = str(TEST_SPECS / "tiny_inception.cnn")
    assert main(["check", spec, "--emit", "ir"]) == 0
    assert capsys.readouterr().out == (GOLDEN / "frontend" / "tiny_inception.ir").read_text()
    assert main(["summary", spec, "--emit", "ast"]) == 0
    assert capsys.readouterr().out == (GOLDEN / "frontend" / "tiny_inception.ast").read_text()


def _counts(spec, **params):
    d = summary_data(front_end(spec, params).graph)
    return d["params"], d["macs"], d


def test_hand_counted_module():
    # mixed_a of tiny_inception, counted by hand: 16 input channels;
    # branch1 1x1 16->8 (136), branch2 1x1 16->8 (136), 1x3 8->16 (400), 3x1 16->16 (784),
    # branch3 1x1 16->8 (136), gate 1x1 32->8 (264) and 8->32 (288).
    _, _, d = _counts(TEST_SPECS / "tiny_inception.cnn")
    rows = {r["path"]: r for r in d["layers"]}
    assert sum(r["params"] for p, r in rows.items() if p.startswith("mixed_a.")) == 2144
    assert rows["mixed_a.concat1"]["shape"] == [32, 12, 12]
    assert rows["mixed_a.branch2.conv2"]["shape"] == [16, 12, 12]
    # ceil_mode: 12 -> ceil((12 - 3) / 2) + 1 = 6 (floor would also give 5 + 1 = 6 only with ceil)
    assert rows["maxpool1"]["shape"] == [32, 6, 6]
    assert d["outputs"] == [{"name": "logits", "shape": [5], "train_only": False},
                            {"name": "aux1", "shape": [5], "train_only": True}]


def test_overrides_change_shapes_and_counts():
    p1, m1, _ = _counts(TEST_SPECS / "tiny_resnet.cnn")
    p2, m2, d = _counts(TEST_SPECS / "tiny_resnet.cnn", classes=100, size=64)
    # only the classifier grows: (32 + 1) * (100 - 10) more parameters
    assert p2 - p1 == 33 * 90
    assert d["inputs"][0]["shape"] == [3, 64, 64]
    assert m2 > 3.9 * m1


def test_instance_paths_and_locations():
    g = front_end(TEST_SPECS / "tiny_resnet.cnn").graph
    paths = [n.path for n in g.nodes]
    assert "stage1_block0.shortcut.conv1" in paths  # projection only where the stride/width changes
    assert "stage0_block1.shortcut.conv1" not in paths
    assert "stage0_block0.shortcut.conv1" in paths  # 8 -> 16 channels
    by_path = {n.path: n for n in g.nodes}
    loc = by_path["stage1_block0.conv1"].loc
    assert loc.file.endswith("tiny.cnn") and loc.line == 5
    kinds = {s.path: (s.kind, s.name) for s in g.scopes}
    assert kinds["stage1_block0"] == ("block", "res")
    assert kinds["stage1_block0.shortcut"] == ("group", "shortcut")


def test_verifier_rejects_broken_graphs():
    g = front_end(TEST_SPECS / "tiny_resnet.cnn").graph
    verify(g)
    bad_shape = list(g.nodes)
    bad_shape[3] = replace(bad_shape[3], shape=(99, 1, 1))
    with pytest.raises(AssertionError, match="rule gives"):
        verify(replace(g, nodes=tuple(bad_shape)))
    cyclic = list(g.nodes)
    cyclic[2] = replace(cyclic[2], inputs=(5,))
    with pytest.raises(AssertionError, match="not all earlier"):
        verify(replace(g, nodes=tuple(cyclic)))
    dup = list(g.nodes)
    dup[4] = replace(dup[4], path=dup[3].path)
    with pytest.raises(AssertionError, match="duplicate"):
        verify(replace(g, nodes=tuple(dup)))


def test_unused_values_warn_and_are_pruned():
    fe = front_end("network n() {\n x = input(3, 8, 8)\n y = x -> conv(4, 3)\n output o = x -> relu\n}\n")
    assert [n.op for n in fe.graph.nodes] == ["input", "relu"]
    assert len(fe.warnings) == 1 and "<spec>:3:11: warning: result of conv 'conv1' is never used" in fe.warnings[0]


def test_builtins_and_arithmetic():
    spec = """
    network n(w=1.4) {
        x = input(3, 16, 16)
        c = divisible(32 * w, 8)          # 44.8 -> 48 (MobileNet's rounding)
        d = ceil(3 * 1.2) + floor(2.7) + round(2.5) + 7 // 2 + 7 % 3 + min(4, 9) + max([1, 5, 2]) + len([1, 2])
        x = x -> conv(c, 1) -> conv(d, 1)
        output o = x
    }
    """
    g = front_end(spec).graph
    assert g.nodes[1].shape == (48, 16, 16)
    assert g.nodes[2].shape == (4 + 2 + 2 + 3 + 1 + 4 + 5 + 2, 16, 16)


@pytest.mark.parametrize("expr, value", [
    ("2 ** 3 ** 2", 512),        # right-associative, as in Python
    ("-2 ** 2 + 8", 4),          # binds tighter than unary minus on its left: -(2 ** 2)
    ("(-2) ** 2", 4),
    ("int(2 ** -1 * 8)", 4),     # a negative exponent gives a float
    ("3 * 2 ** 2", 12),          # tighter than *
    ("int(10 ** 0.5 * 10)", 31),
    ("(-2) ** 62 // 2 ** 61", 2),  # the largest power within the integer range
])
def test_power_operator(expr, value):
    g = front_end(f"network n() {{\n x = input(1, 4, 4)\n output o = x -> conv({expr}, 1)\n}}\n").graph
    assert g.nodes[1].shape == (value, 4, 4)


def test_pool_rules_match_torch_formulas():
    spec = """
    network n() {
        x = input(3, 112, 112)
        a = x -> maxpool(3, stride=2, ceil_mode=true)            # ceil(109/2)+1 = 56
        b = x -> maxpool(3, stride=2)                            # floor(109/2)+1 = 55
        c = x -> avgpool(2, stride=2, padding=1, ceil_mode=true) # torch drops a window starting in padding: 57
        d = x -> conv(4, [1, 7], padding=[0, 3]) -> conv(4, 3, dilation=2, padding=2)
        output o = concat(a -> flatten, b -> flatten, c -> flatten, d -> flatten)
    }
    """
    g = front_end(spec).graph
    shapes = {n.path: n.shape for n in g.nodes}
    assert shapes["maxpool1"] == (3, 56, 56)
    assert shapes["maxpool2"] == (3, 55, 55)
    assert shapes["avgpool1"] == (3, 57, 57)
    assert shapes["conv2"] == (4, 112, 112)


def test_check_imports_no_torch():
    modules = imported_modules("check", "specs/densenet121.cnn")
    assert not [m for m in modules if m.split(".")[0] in ("torch", "triton", "numpy")]


def test_summary_json_schema(capsys):
    from cnnc.cli import main

    assert main(["summary", str(TEST_SPECS / "tiny_resnet.cnn"), "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert isinstance(d["params"], int) and isinstance(d["macs"], int)
    assert {"path", "op", "shape", "params", "macs"} <= set(d["layers"][0])  # the rest: tests/test_summary.py
    assert sum(r["params"] for r in d["layers"]) == d["params"]
    assert sum(r["macs"] for r in d["layers"]) == d["macs"]


@pytest.mark.parametrize("fmt", ["text", "markdown", "csv"])
def test_summary_formats_and_depth(capsys, fmt):
    from cnnc.cli import main

    assert main(["summary", str(TEST_SPECS / "tiny_resnet.cnn"), "--format", fmt, "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "stage1_block0" in out and "stage1_block0.conv1" not in out
    if fmt == "csv":
        assert out.splitlines()[0].startswith("path,op,in_shape,shape,")
    else:
        assert "42,002" in out


def test_api_summary_matches_cli_json(capsys):
    import cnnc
    from cnnc.cli import main

    main(["summary", str(TEST_SPECS / "tiny_resnet.cnn"), "--format", "json", "--set", "classes=7"])
    assert json.loads(capsys.readouterr().out) == cnnc.summary(str(TEST_SPECS / "tiny_resnet.cnn"), classes=7)


def test_block_returning_its_input_and_label_expressions():
    # A block that creates no node leaves no (empty) scope; labels may hold expressions.
    from cnnc.pipeline import fuse

    spec = ("block passthrough(x) { return x }\nblock bn3(x) { return x -> bn }\nnetwork n() {\n"
            " x = input(3, 8, 8) -> passthrough\n"
            " for i in range(2) { x = x -> conv(4, 3, padding=1) -> bn3 as \"b{i * 2 + 1}\" }\n"
            " output o = x -> relu as \"r{max(1, 2)}\"\n}\n")
    g = front_end(spec).graph
    assert [s.path for s in g.scopes] == ["b1", "b3"]
    assert [n.path for n in g.nodes][-1] == "r2"
    fused = fuse(g)  # the bn-only blocks fold away: their scopes go with them
    assert fused.scopes == () and len(fused.nodes) == 3


def test_labels_may_hold_a_hyphen_and_nothing_else_outside_a_name():
    """torchvision's RegNet names its blocks `block1-0`; a `.` or a space in a label is a
    located error."""
    from cnnc.diagnostics import CnncError

    spec = "network n() {{\n x = input(3, 8, 8)\n output o = x -> conv(4, 3) as \"{label}\"\n}}\n"
    assert front_end(spec.format(label="block{1 + 0}-{0}")).graph.nodes[-1].path == "block1-0"
    for label in ("a.b", "a b"):
        with pytest.raises(CnncError) as info:
            front_end(spec.format(label=label))
        assert info.value.message == f'label "{label}" must contain only letters, digits, _ and -'
        assert (info.value.loc.line, info.value.loc.col) == (3, 32)  # at the label's string


def test_block_nesting_past_the_recursion_limit_is_a_located_error():
    from cnnc.diagnostics import CnncError

    blocks = "block b0(x) { return x -> relu }\n" + "".join(
        f"block b{i}(x) {{ return x -> b{i - 1} }}\n" for i in range(1, 3000))
    spec = blocks + "network n() {\n x = input(3, 8, 8)\n output o = x -> b2999\n}\n"
    with pytest.raises(CnncError) as info:
        front_end(spec)
    err = info.value
    # the recursion limit, or before it the limit on instance paths (1,024 characters)
    assert err.message == "spec is nested too deeply (expressions or block calls)" or re.fullmatch(
        r"instance path of 1,0\d\d characters; the limit is 1,024 \(blocks and groups nested too deeply\)",
        err.message), err.message
    assert 1 < err.loc.line <= 3000  # at a block call inside the chain, not at the top of the file


def test_expression_too_deep_to_build_is_located_at_the_expression():
    """A chain of 15,000 additions nests the parse tree one level per operator, past what the
    AST builder can recurse through: the error points at the expression, not at 1:1."""
    from cnnc.diagnostics import CnncError

    chain = "+".join(["1"] * 15000)
    spec = f"network n() {{\n x = input(3, 8, 8)\n\n output o = x -> conv({chain}, 3)\n}}\n"
    with pytest.raises(CnncError) as info:
        front_end(spec)
    assert info.value.message == "expression is nested too deeply"
    assert (info.value.loc.line, info.value.loc.col) == (4, 23)  # the chain's first term


def test_deepest_bracket_is_where_parsing_ran_out_of_stack():
    from cnnc.frontend.parser import _deepest_bracket

    text = "a(b)\nc(d[(e)], [f])\n"
    loc = _deepest_bracket(text, "s.cnn")
    assert (loc.file, loc.line, loc.col) == ("s.cnn", 2, 5)  # the '(' inside the '[' inside c(


def test_defaults_statement_sets_op_arguments_in_its_body_and_the_blocks_it_calls():
    spec = """
    block unit(x) { return x -> conv(4, 3, padding=1) -> bn -> relu }
    block quiet(x) {
        defaults bn(momentum=0.5)
        return x -> bn -> unit
    }
    network n() {
        x = input(3, 8, 8) -> bn
        defaults batchnorm(eps=1e-3, momentum=0.01)
        defaults conv(bias=false)
        x = x -> bn -> unit -> bn(eps=0.1)
        x = x -> quiet
        output o = x -> bn -> conv(4, 1)
    }
    """
    g = front_end(spec).graph
    got = {n.path: (n.attr("eps"), n.attr("momentum")) for n in g.nodes if n.op == "batchnorm"}
    assert got == {
        "bn1": (1e-5, 0.1),             # before the statement
        "bn2": (1e-3, 0.01),            # after it (an alias: bn is batchnorm)
        "unit1.bn1": (1e-3, 0.01),      # inside a block it calls
        "bn3": (0.1, 0.01),             # an explicit argument wins
        "quiet1.bn1": (1e-3, 0.5),      # the block's own statement adds to the caller's
        "quiet1.unit1.bn1": (1e-3, 0.5),
        "bn4": (1e-3, 0.01),            # ... and ends with the block's body
    }
    assert all(n.attr("bias") is False for n in g.nodes if n.op == "conv")


def test_unpacking_assignment_and_list_values():
    spec = """
    network n() {
        x = input(6, 4, 4)
        a, b, c = split(x, [1, 2, 3])
        k, m = [2, 3]
        output o = concat(c, a, b -> conv(k * m, 1))
    }
    """
    g = front_end(spec).graph
    assert g.nodes[-1].shape == (3 + 1 + 6, 4, 4)


def test_automatic_names_get_a_separator_after_a_digit():
    spec = """
    block se_v3(x) { return x -> conv(x.channels, 1) }
    block b(x) { return x -> relu }
    network n() {
        x = input(3, 8, 8)
        x = x -> se_v3 -> se_v3 -> relu6 -> relu6 -> b -> b
        output o = x
    }
    """
    paths = [n.path for n in front_end(spec).graph.nodes]
    assert paths == ["input1", "se_v3_1.conv1", "se_v3_2.conv1", "relu6_1", "relu6_2", "b1.relu1", "b2.relu1"]


def test_as_underscore_names_a_blocks_contents_in_the_callers_scope():
    spec = """
    block stem(x) { return x -> conv(4, 3) as conv1 -> bn as bn1 -> relu }
    block twice(x) { return x -> stem as _ -> conv(4, 1) }
    network n() {
        x = input(3, 8, 8)
        x = x -> stem as _
        x = x -> twice as layer1
        output o = x -> conv(2, 1)
    }
    """
    g = front_end(spec).graph
    assert [n.path for n in g.nodes] == ["input1", "conv1", "bn1", "relu1", "layer1.conv1", "layer1.bn1",
                                         "layer1.relu1", "layer1.conv2", "conv2"]
    assert [(s.path, s.name) for s in g.scopes] == [("layer1", "twice")]  # no scope for the flat calls


def test_suggestions_are_typos_not_shared_letters():
    from cnnc.diagnostics import suggest

    assert suggest("upsampel", ["upsample", "scale", "size"]) == "; did you mean 'upsample'?"
    assert suggest("ReLU", ["relu", "relu6"]) == "; did you mean 'relu'?"
    assert suggest("conv_tranpose", ["conv", "conv_transpose"]) == "; did you mean 'conv_transpose'?"
    assert suggest("upsample", ["scale", "size", "mode", "sample_rate"]) == ""
    assert suggest("x", ["y", "z"]) == ""  # one letter: nothing of the name is kept


def test_import_path_with_a_nul_character_is_a_located_error():
    """Found by the mutation property test: os.stat raises ValueError on a NUL in a path. A NUL is
    no spec text at all, so the error is at the character, before the import is looked at."""
    from cnnc.diagnostics import CnncError

    with pytest.raises(CnncError) as info:
        front_end('import "\x00blocks/x.cnn"\nnetwork n() {\n output o = input(3, 8, 8)\n}\n')
    assert info.value.message == "control character U+0000: a spec is text"
    assert (info.value.loc.line, info.value.loc.col) == (1, 9)


def test_a_constant_added_to_a_tensor_is_a_shift():
    """`t + 0.5`, `0.5 + t`, `t - 0.5` are one `shift` node; `1 - t` is `-t` (scale -1) shifted
    by 1; a string or list with a tensor stays an error at the operator."""
    from cnnc.diagnostics import CnncError

    spec = "network n() {\n x = input(2, 4, 4)\n output o = concat(x + 0.5, 2 + x, x - 0.25, 1 - x)\n}\n"
    g = front_end(spec).graph
    ops = [(n.op, n.attrs, [g.nodes[i].op for i in n.inputs]) for n in g.nodes[1:-1]]
    assert ops == [("shift", (("offset", 0.5),), ["input"]), ("shift", (("offset", 2.0),), ["input"]),
                   ("shift", (("offset", -0.25),), ["input"]), ("scale", (("factor", -1.0),), ["input"]),
                   ("shift", (("offset", 1.0),), ["scale"])]
    with pytest.raises(CnncError) as info:
        front_end("network n() {\n x = input(2, 4, 4)\n output o = \"a\" - x\n}\n")
    assert info.value.message == "cannot apply '-' to the string \"a\" and a tensor 2x4x4"
    assert (info.value.loc.line, info.value.loc.col) == (3, 17)
