"""cnnc: a declarative graph compiler for convolutional networks.

Importing cnnc imports no torch; `compile` and `import_weights` load it when called.
"""
from __future__ import annotations

from .version import __version__  # noqa: E402

from .diagnostics import CnncError  # noqa: E402


def summary(spec, depth: int | None = None, *, import_roots=(), **params) -> dict:
    """The data of `cnnc summary --format json` for a spec path or spec text (`import_roots`:
    more directories the spec may import from)."""
    from .pipeline import front_end
    from .backends.summary import summary_data

    return summary_data(front_end(spec, params, import_roots=import_roots).graph, depth)


def __getattr__(name):
    # compile / import_weights live in codegen, which needs torch: load on first use.
    if name in ("compile", "import_weights", "ReorderedWeights"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)


__all__ = ["CnncError", "summary", "compile", "import_weights", "ReorderedWeights"]
