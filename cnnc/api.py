"""The Python API: `cnnc.compile(spec, **params)` and `cnnc.import_weights(module, state_dict)`.

`compile` runs the front end, generates the module source (codegen.py) and executes it in a
fresh module registered in `sys.modules` and `linecache` under a file name like
`<cnnc:resnet18-1a2b3c4d.py>`, so tracebacks show the generated lines and `inspect.getsource` works.

Modules from `compile` pickle whole (`torch.save(model, f)`, multiprocessing): each generated
class reduces to "load this source, take this class", so a fresh process that can import cnnc
and torch rebuilds the classes from the source carried in the pickle (once per pickle: pickle
stores the shared source string once) and then restores the state as usual.
"""
from __future__ import annotations

import builtins
import hashlib
import linecache
import sys
import types
import warnings

import torch

from .backends.codegen import Generated, generate
from .diagnostics import CnncError
from .pipeline import front_end
from .backends.weights import ReorderedWeights, import_weights

__all__ = ["compile", "import_weights", "ReorderedWeights", "generate_source", "load_source", "CnncError"]


def generate_source(spec, /, *, fused: bool = False, import_roots=(), **params) -> Generated:
    """Front end (+ the fusion passes when `fused`) + code generation: the module source for a
    spec path or spec text. `import_roots`: more directories the spec may import from."""
    result = front_end(spec, params, import_roots=import_roots)
    for w in result.warnings:
        warnings.warn(w, stacklevel=3)
    graph = result.graph
    if fused:
        from .pipeline import fuse

        graph = fuse(graph)
    return generate(graph)


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
    module.__cnnc_source__, module.__cnnc_name__ = source, name
    for value in list(vars(module).values()):
        if isinstance(value, type) and issubclass(value, torch.nn.Module) and value.__module__ == modname:
            value.__reduce_ex__ = _reduce_generated
    sys.modules[modname] = module
    return module


def _reduce_generated(self, protocol):
    """Pickle an instance of a generated class: rebuild the class from its source, then the state."""
    module = sys.modules[type(self).__module__]
    return (_new_generated, (module.__cnnc_source__, module.__cnnc_name__, type(self).__qualname__),
            self.__getstate__())


def _new_generated(source: str, name: str, qualname: str):
    cls = getattr(load_source(source, name), qualname)
    return cls.__new__(cls)


def compile(spec, /, *, fused: bool = False, import_roots=(), **params) -> torch.nn.Module:  # noqa: A001
    """Build the nn.Module a spec describes: `spec` is a path to a .cnn file or spec text;
    keyword arguments override network parameters (`cnnc.compile("resnet18.cnn", classes=10)`).
    `fused=True` runs the fusion passes first (like `cnnc build --fused`): conv + BatchNorm
    (+ residual add) (+ activation) become one `kernels.conv2d` call in eval mode, with the
    same state_dict. `import_roots` adds directories the spec may import from (like the command
    line's --import-root). (`fused` and `import_roots` are therefore not available as network
    parameter names here.)"""
    gen = generate_source(spec, fused=fused, import_roots=import_roots, **params)
    module = load_source(gen.source, gen.name)
    return getattr(module, gen.class_name)()
