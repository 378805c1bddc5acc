"""Hostile names and strings in every position a spec (or its file name, or a --set value) can put
them: the generated module compiles, runs, and executes nothing injected; attribute renames are
stable and the summary's instance paths map onto the state_dict (cnnc/backends/names.py)."""
import ast
import builtins
import keyword

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import cnnc  # noqa: E402
from cnnc.api import generate_source, load_source  # noqa: E402
from cnnc.backends import names  # noqa: E402
from cnnc.frontend.parser import _KEYWORDS as KEYWORDS  # noqa: E402
from cnnc_testlib import examples  # noqa: E402

# each would set builtins.CNNC_PWNED if it ever ran as code
PAYLOADS = [
    '"""+__import__("builtins").__setattr__("CNNC_PWNED",1)+"""',
    "'''+__import__('builtins').__setattr__('CNNC_PWNED',1)+'''",
    '\\"""\nimport builtins; builtins.CNNC_PWNED = 1\n"""',
    '"; import builtins; builtins.CNNC_PWNED = 1; "',
    "C:\\x",  # a backslash escape Python would reject
    "end\\",  # a trailing backslash would swallow the closing quotes
    'quote"',  # a trailing quote would make four
    "{0}{all}}{",  # format fields, where templates are formatted
    "\x00\x1b[2J\u2028\u202e\x85",  # characters that cannot stand raw in source or on a terminal
]
# names Python, torch or the generated module reserve ("_" alone is the language's own: `as _`, a
# block call that adds no path level, an error on an op; test_language_reach covers it)
HOSTILE = ["_modules", "_parameters", "__class__", "__dict__", "__init__", "__", "_x", "x_", "training",
           "forward", "train", "train_", "eval", "register_forward_hook", "state_dict", "to", "T_destination",
           "class", "None", "True", "def", "lambda", "self", "super", "getattr", "setattr", "F", "torch", "nn",
           "runtime", "Tensor", "NamedTuple", "x", "out", "out2", "object", "print", "0", "1a", "match", "count"]


@pytest.fixture(autouse=True)
def no_canary():
    assert not hasattr(builtins, "CNNC_PWNED")
    yield
    assert not hasattr(builtins, "CNNC_PWNED"), "injected code ran"


def spec_text(net="n", block="b", labels=("c1", "b1", "c2", "b2", "g", "fc"), outs=("logits", "feat"),
              param="p", string="s"):
    l1, l2, l3, l4, l5, l6 = labels
    text = (f'block {block}(x, c) {{\n'
            f'    y = x -> conv(c, 3, padding=1) as "{l1}" -> bn as "{l2}"\n'
            f'    return relu(y + x)\n}}\n'
            f'network {net}(c=4, {param}=1, text="{string}") {{\n'
            f'    x = input(4, 6, 6)\n'
            f'    x = x -> {block}(c) as "{l3}" -> {block}(c) as "{l4}"\n'
            f'    x = (x -> conv(4, 1) as "{l1}") as "{l5}"\n'
            f'    output {outs[0]} = x -> global_avgpool -> flatten -> linear(3) as "{l6}"\n'
            f'    output {outs[1]} = x\n}}\n')
    return text


def check_module(text_or_path, n_outputs=2, **params):
    """Compile, run in train and eval mode, and check that summary paths map onto the state_dict."""
    gen = generate_source(text_or_path, **params)
    compile(gen.source, "<generated>", "exec")
    model = getattr(load_source(gen.source, gen.name), gen.class_name)()
    x = torch.randn(2, 4, 6, 6)
    model.train()
    out = model(x)
    model.eval()
    with torch.no_grad():
        out = model(x)
    fields = gen.output_fields
    assert len(fields) == n_outputs and out._fields == tuple(fields.values())
    assert all(f.isidentifier() and not keyword.iskeyword(f) and not f.startswith("_") for f in out._fields)
    keys = set(model.state_dict())
    for row in cnnc.summary(text_or_path, **params)["layers"]:
        if row["params"]:
            assert f"{gen.module_paths[row['path']]}.weight" in keys, (row["path"], sorted(keys))
    assert {k.rsplit(".", 1)[0] for k in keys} <= set(gen.module_paths.values())
    return gen, model


def test_module_attrs_are_torchs():
    """names.MODULE_ATTRS is written out (code generation imports no torch): it must be what this
    torch has."""
    from torch import nn

    public = {n for n in dir(nn.Module) if not n.startswith("_")} | {n for n in dir(nn.Sequential)
                                                                     if not n.startswith("_")}
    public |= {n for n in vars(nn.Module()) if not n.startswith("_")}
    assert names.MODULE_ATTRS == public


def test_hostile_labels():
    """Every hostile name as a label: of block instances at the root, of a conv inside a group,
    and of layers inside a block (one module holds them all, side by side)."""
    chain = " -> ".join(f'conv(4, 1) as "{n}"' for n in HOSTILE)
    root = "\n".join(f'    x = x -> b as "{n}"' for n in HOSTILE)
    groups = "\n".join(f'    x = (x -> conv(4, 1) as "{n}") as "g{i}"' for i, n in enumerate(HOSTILE))
    text = (f"block chain(x) {{\n    return x -> {chain}\n}}\nblock b(x) {{\n    return x -> conv(4, 1)\n}}\n"
            f"network n() {{\n    x = input(4, 6, 6)\n{root}\n{groups}\n    x = x -> chain\n"
            "    output o = x -> global_avgpool -> flatten -> linear(3) as \"_fc\"\n    output p = x\n}\n")
    gen, model = check_module(text)
    attrs = [name for name, _ in model.named_children()]
    assert len(attrs) == 2 * len(HOSTILE) + 3 and len(set(attrs)) == len(attrs)  # and chain, the pool, fc
    assert all(names.plain_attribute(a) or not a.isidentifier() for a in attrs)
    inner = [name for name, _ in model.chain1.named_children()]
    assert len(inner) == len(set(inner)) == len(HOSTILE)


def test_hostile_block_and_network_names():
    usable = [n for n in HOSTILE if n.isidentifier() and n not in KEYWORDS]
    blocks = "".join(f"block {n}(x) {{ return x -> conv(4, 1) }}\n" for n in usable)
    calls = "\n".join(f"    x = x -> {n}" for n in usable)
    text = blocks + f"network n() {{\n    x = input(4, 6, 6)\n{calls}\n    output o = x\n    output p = x -> relu\n}}\n"
    gen, _ = check_module(text)
    classes = [node.name for node in ast.parse(gen.source).body if isinstance(node, ast.ClassDef)]
    assert len(set(classes)) == len(classes) and not set(classes) & names.RESERVED
    for name in usable:  # the network's class (and its outputs class)
        gen = generate_source(f"network {name}() {{\n    x = input(1, 2, 2)\n    output o = x -> relu\n"
                              "    output p = x\n}\n")
        module = load_source(gen.source, gen.name)
        assert gen.class_name not in names.RESERVED and gen.outputs_class not in names.RESERVED
        out = getattr(module, gen.class_name)()(torch.ones(1, 1, 2, 2))
        assert type(out).__name__ == gen.outputs_class and out.o.sum() == 4


def test_hostile_output_names():
    outs = ["class", "def", "_x", "x_", "None", "self", "_fields", "count", "training", "F", "_", "__", "x", "out",
            "o", "o_", "_o"]
    lines = "\n".join(f"    output {o} = x -> conv(4, 1)" for o in outs)
    gen, _ = check_module(f"network n() {{\n    x = input(4, 6, 6)\n{lines}\n}}\n", n_outputs=len(outs))
    assert len(set(gen.output_fields.values())) == len(outs)
    assert gen.output_fields["_x"] != gen.output_fields["x_"] and gen.output_fields["class"] == "class_"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_strings_and_file_names(tmp_path, payload):
    # a --set / keyword string value, and the spec's own string default (where the language allows it)
    check_module(spec_text(), text=payload)
    if '"' not in payload and "\n" not in payload and not any(ord(c) < 32 for c in payload):
        check_module(spec_text(string=payload))
    # the spec's file name (what a file system allows in one)
    name = payload.replace("/", "_").replace("\x00", "_")
    path = tmp_path / f"{name}.cnn"
    path.write_text(spec_text())
    gen, _ = check_module(path)
    assert f" from {name}.cnn; " in ast.get_docstring(ast.parse(gen.source))  # the name itself, escaped


def test_hostile_parameter_names():
    for param in ("__import__", "self", "class_", "F", "_modules"):
        check_module(spec_text(param=param))


def test_renamed_attributes_are_stable_and_collision_free():
    assert names.attribute_names(["train", "train_", "_modules", "modules_", "conv1", "0"]) == {
        "train": "train__", "train_": "train_", "_modules": "modules__", "modules_": "modules_", "conv1": "conv1",
        "0": "0"}
    assert names.attribute_names(["__class__"]) == {"__class__": "class_"}
    assert names.attribute_names(["_", "__"]) == {"_": "m_", "__": "m__"}
    gen1, _ = check_module(spec_text(labels=("train", "eval", "c2", "b2", "forward", "fc")))
    gen2, _ = check_module(spec_text(labels=("train", "eval", "c2", "b2", "forward", "fc")))
    assert gen1.module_paths == gen2.module_paths
    assert gen1.module_paths["forward"] == "forward_" and gen1.module_paths["forward.train"] == "forward_.train_"


identifiers = st.sampled_from(HOSTILE) | st.from_regex(r"_{0,2}[a-z][a-z0-9_]{0,6}", fullmatch=True)


@pytest.mark.slow
@settings(max_examples=examples(30), deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(labels=st.lists(identifiers, min_size=6, max_size=6), outs=st.lists(identifiers, min_size=2, max_size=2,
                                                                             unique=True),
       payload=st.sampled_from(PAYLOADS) | st.text(max_size=12))
def test_random_hostile_names_everywhere(labels, outs, payload):
    """Hostile names in every position at once: labels (two pairs must differ within their scope),
    outputs (the language's own keywords excluded) and a string value."""
    from hypothesis import assume

    assume(labels[0] != labels[1] and len(set(labels[2:])) == 4)  # names within one scope differ
    assume(all(o.isidentifier() and o not in KEYWORDS for o in outs))
    assume(all(label.replace("_", "a").isalnum() for label in labels))
    check_module(spec_text(labels=labels, outs=outs), text=payload)
