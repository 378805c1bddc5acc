"""The Python API: `cnnc.compile(spec, **params)` and `cnnc.import_weights(module, state_dict)`.

`compile` runs the front end, generates the module source (codegen.py) and executes it in a
fresh module registered in `sys.modules` and `linecache` under a file name like
`<cnnc:resnet18-1a2b3c4d.py>`, so tracebacks show the generated lines and `inspect.getsource` works.
"""
from __future__ import annotations

import builtins
import hashlib
import linecache
import sys
import types
import warnings

import torch

from .codegen import Generated, generate
from .diagnostics import CnncError
from .pipeline import front_end
from .weights import ReorderedWeights, import_weights

__all__ = ["compile", "import_weights", "ReorderedWeights", "generate_source", "load_source", "CnncError"]


def generate_source(spec, /, **params) -> Generated:
    """Front end + code generation: the module source for a spec path or spec text."""
    result = front_end(spec, params)
    for w in result.warnings:
        warnings.warn(w, stacklevel=3)
    return generate(result.graph)


def load_source(source: str, name: str) -> types.ModuleType:
    """Execute generated source as a new module named after the network (and the source's hash)."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:10]
    modname = f"cnnc_generated.{name}_{digest}"
    if modname in sys.modules:
        return sys.modules[modname]
    filename = f"<cnnc:{name}-{digest[:8]}.py>"
    module = types.ModuleType(modname)
    module.__file__ = filename
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(builtins.compile(source, filename, "exec"), module.__dict__)
    sys.modules[modname] = module
    return module


def compile(spec, /, **params) -> torch.nn.Module:  # noqa: A001 - the public name is cnnc.compile
    """Build the nn.Module a spec describes: `spec` is a path to a .cnn file or spec text;
    keyword arguments override network parameters (`cnnc.compile("resnet18.cnn", classes=10)`)."""
    gen = generate_source(spec, **params)
    module = load_source(gen.source, gen.name)
    return getattr(module, gen.class_name)()
