"""cnnc: a declarative graph compiler for convolutional networks.

Importing cnnc imports no torch; `compile` and `import_weights` load it when called.
"""
from __future__ import annotations

from .version import __version__  # noqa: E402

from .diagnostics import CnncError  # noqa: E402
from .display import render, summary  # noqa: E402


def __getattr__(name):
    # compile / import_weights live in codegen, which needs torch: load on first use.
    if name in ("compile", "import_weights", "ReorderedWeights"):
        from . import api

        return getattr(api, name)
    if name in ("load_weights", "freeze", "unfreeze", "LoadReport"):
        from . import transfer

        return getattr(transfer, name)
    raise AttributeError(name)


__all__ = ["CnncError", "summary", "render", "compile", "import_weights", "ReorderedWeights", "load_weights",
           "freeze", "unfreeze", "LoadReport"]
