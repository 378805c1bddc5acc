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
import os
import sys
import types
import warnings
from dataclasses import dataclass, field

import torch

from .backends.codegen import Generated, generate
from .diagnostics import CnncError
from .pipeline import front_end, is_path
from .backends.weights import ReorderedWeights, import_weights

__all__ = ["compile", "import_weights", "ReorderedWeights", "generate_source", "load_source", "CnncError"]


def generate_source(spec, /, *, fused: bool = False, import_roots=(), **params) -> Generated:
    """Front end (+ the fusion passes when `fused`) + code generation: the module source for a
    spec path, a catalog name or spec text. `import_roots`: more directories the spec may import from."""
    return _generate_source(spec, fused, import_roots, params, "cnnc.api.generate_source()")


def _generate_source(spec, fused: bool, import_roots, params: dict, api: str) -> Generated:
    """generate_source for the API function `api`, which errors in `params` name."""
    result = front_end(spec, params, import_roots=import_roots, api=api)
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


def compile(spec, /, *, fused: bool = False, kernel_policy=None, cuda_graphs: bool = False,  # noqa: A001
            import_roots=(),
            **params) -> torch.nn.Module:
    """Build the nn.Module a spec describes: `spec` is a path to a .cnn file, the name of a
    catalog entry (`cnnc list`) or spec text; keyword arguments override network parameters
    (`cnnc.compile("resnet18", classes=10)`).
    `fused=True` runs the fusion passes first (like `cnnc build --fused`): conv + BatchNorm
    (+ residual add) (+ activation) become one `kernels.conv2d` call in eval mode, with the
    same state_dict. `kernel_policy`: the kernel policy of the module's `kernels.conv2d` calls
    (a `cnnc.kernels.Policy` or its key string, e.g. "dw_forward=rows"; None: the process
    default, `cnnc.kernels.default_policy()`), set by `runtime.set_kernel_policy`: it changes
    speed, never results, state_dict or generated source. `cuda_graphs=True` returns the module
    wrapped in `backends.cuda_graphs.CUDAGraphed` (inference as CUDA graph replays, captured at
    the first call per input shape; same state_dict; its limits are in that module's docstring),
    with the kernel policy's dispatch_timing set to "device" (dispatch decided by device time, as
    replays pay no host time). `import_roots` adds directories the spec may import
    from (like the command line's --import-root). (`fused`, `kernel_policy`, `cuda_graphs` and
    `import_roots` are therefore not available as network parameter names here.)"""
    gen = _generate_source(spec, fused, import_roots, params, "cnnc.compile()")
    module = load_source(gen.source, gen.name)
    model = getattr(module, gen.class_name)()
    if "cnnc_spec" not in model._modules:  # (a submodule of that name keeps it)
        model.cnnc_spec = SpecRef(_spec_ref(spec), tuple(sorted(params.items())), fused,
                                  tuple(gen.module_paths.items()))
    if kernel_policy is None and not cuda_graphs:
        return model
    from .backends import runtime  # (imports the kernels, and with them triton: only when asked)

    if not cuda_graphs:
        return runtime.set_kernel_policy(model, kernel_policy)
    import dataclasses

    from .backends.cuda_graphs import CUDAGraphed
    from .kernels.policy import resolve

    runtime.set_kernel_policy(model, dataclasses.replace(resolve(kernel_policy), dispatch_timing="device"))
    graphed = CUDAGraphed(model)
    graphed.cnnc_spec = model.cnnc_spec
    return graphed


@dataclass(frozen=True)
class SpecRef:
    """`model.cnnc_spec`: what a module from `compile` was built from, so that it can be drawn
    (`model.cnnc_spec.render()`, or `cnnc.render(model)`) and summarised again. Pickles with it."""

    spec: str  # an absolute path, or the spec text
    params: tuple  # ((name, value), ...) given to compile
    fused: bool = False
    # (instance path, submodule path) pairs: Generated.module_paths, for `cnnc.freeze` and friends
    module_paths: tuple = field(default=(), compare=False, repr=False)

    def render(self, **options):
        from .display import render

        return render(self.spec, fused=options.pop("fused", self.fused), **{**dict(self.params), **options})

    def summary(self, **options):
        from .display import summary

        return summary(self.spec, **{**dict(self.params), **options})


def _spec_ref(spec) -> str:
    """A spec file as an absolute path (so that it is found from another directory); a catalog
    name or spec text as it is."""
    return os.path.abspath(spec) if is_path(spec) and os.path.isfile(spec) else os.fspath(spec)
