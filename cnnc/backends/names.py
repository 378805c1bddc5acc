"""Names and strings in generated source: every identifier valid and collision-free, every string
escaped for where it goes. Nothing a spec, its file name or a flag says reaches generated source
except through these functions.

Identifiers a spec chooses (block, label, output and network names) become:
- submodule attributes (`attribute_names`): an instance name is its attribute, unless it starts
  with `_` (`_modules`, `__class__`, ...) or is an attribute of `nn.Module` (`train`, `forward`,
  `register_forward_hook`, ...: MODULE_ATTRS). Those get the name without its leading and
  trailing underscores plus `_` (`train` -> `train_`, `__class__` -> `class_`), with more `_`
  until no sibling has it. The state_dict keys follow the attributes; `Generated.module_paths`
  maps every instance path (what the summary shows) to its attribute path. Names Python cannot
  spell (`0`, `1a`, `class`) are attributes as they are, set and read with setattr/getattr;
- class names (`class_name`): CamelCase, never a keyword, a builtin or a name the generated
  module imports (`F`, `Tensor`, `NamedTuple`, ...), never another class's;
- local variables and constructor parameters (`identifier`): valid, not a keyword, not a
  builtin, not a module-level name of the generated file;
- fields of the outputs NamedTuple (`field_names`): valid, not a keyword, not starting with `_`.

Strings go through `literal` (Python literals, by repr; non-finite floats spelled out) or `doc`
(a docstring whose value is the text itself: backslashes, quotes and unprintable characters
escaped, so no text can end it early).

MODULE_ATTRS is written out rather than read from torch, so that code generation imports no torch
(`cnnc build` writes a module without loading it); tests/test_codegen_names.py checks it against
`dir(nn.Module)`, `dir(nn.Sequential)` and a module's own attributes, so a torch that adds one fails
the test rather than a build. Private attributes need no list: every name starting with `_` is
renamed.
"""
from __future__ import annotations

import builtins
import keyword
import math
import re

# the public attributes of torch.nn.Module and nn.Sequential (instances included), torch 2.14
MODULE_ATTRS = frozenset({
    "T_destination", "add_module", "append", "apply", "bfloat16", "buffers", "call_super_init", "children",
    "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extend", "extra_repr", "float", "forward",
    "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "insert", "ipu", "load_state_dict",
    "modules", "mtia", "named_buffers", "named_children", "named_modules", "named_parameters", "parameters", "pop",
    "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter", "register_state_dict_post_hook",
    "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule", "share_memory",
    "state_dict", "to", "to_empty", "train", "training", "type", "xpu", "zero_grad",
})
# names the generated module defines or imports at module level
GENERATED_GLOBALS = frozenset({"torch", "nn", "F", "runtime", "Tensor", "NamedTuple"})
# what no identifier of the generated code may be
RESERVED = (frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))
            | GENERATED_GLOBALS | {"self"})


def plain_attribute(name: str) -> bool:
    """Whether an instance name can be its submodule's attribute as it is."""
    return bool(name) and not name.startswith("_") and name not in MODULE_ATTRS


def attribute_names(names) -> dict[str, str]:
    """name -> attribute for the child instances of one module (their names are unique)."""
    names = list(names)
    out = {n: n for n in names if plain_attribute(n)}
    taken = set(out)
    for n in names:
        if n in out:
            continue
        attr = (n.strip("_") or "m") + "_"
        while attr in taken or attr in names or not plain_attribute(attr):
            attr += "_"
        out[n] = attr
        taken.add(attr)
    return out


def identifier(name: str, reserved=RESERVED) -> str:
    """A local variable or parameter named after `name`: letters, digits and _, not starting
    with a digit, not reserved (a trailing _ added)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not name or name[0].isdigit():
        name = "m" + name
    while name in reserved or keyword.iskeyword(name):
        name += "_"
    return name


def class_name(name: str, taken) -> str:
    """A CamelCase class name from a block, group or network name, not reserved and not in
    `taken` (numbered from 2 on)."""
    text = "".join(p[:1].upper() + p[1:] for p in re.split(r"_+", re.sub(r"[^A-Za-z0-9_]", "_", name)) if p)
    base = text if text[:1].isalpha() else "Block" + text
    if base in RESERVED:
        base += "_"
    out, k = base, 2
    while out in taken:
        out, k = f"{base}{'_' if base[-1].isdigit() else ''}{k}", k + 1
    return out


def field_names(names) -> dict[str, str]:
    """name -> field of the outputs NamedTuple (valid, not a keyword, not starting with _)."""
    names = list(names)
    out, taken = {}, set()
    for n in names:
        f = n
        if not (n.isidentifier() and not keyword.iskeyword(n) and not n.startswith("_")):
            f = re.sub(r"[^A-Za-z0-9_]", "_", n.strip("_") or "output") + "_"
            f = "m" + f if f[0].isdigit() else f
        while f in taken or (f != n and f in names) or keyword.iskeyword(f):
            f += "_"
        out[n] = f
        taken.add(f)
    return out


def literal(v) -> str:
    """Python source for a constructor argument or attribute value."""
    if isinstance(v, float) and not math.isfinite(v):
        return f'float("{v}")'
    if isinstance(v, tuple):
        inner = ", ".join(literal(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if v is None or isinstance(v, (bool, int, float, str)):
        return repr(v)
    raise TypeError(f"no literal for {type(v).__name__}")


def doc(text: str) -> str:
    """A triple-quoted docstring whose value is `text`: backslashes escaped, a quote escaped
    where it could join others into a closing one (before a quote, or last), unprintable
    characters as escapes."""
    out = []
    for i, ch in enumerate(text):
        if ch == "\\" or (ch == '"' and text[i + 1:i + 2] in ('"', "")):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ascii(ch)[1:-1])
    return '"""' + "".join(out) + '"""'
