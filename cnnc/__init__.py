"""cnnc: a declarative graph compiler for convolutional networks.

Importing cnnc imports no torch; `compile` and `import_weights` load it when called.
"""
from __future__ import annotations

from .version import __version__  # noqa: E402

from .diagnostics import CnncError  # noqa: E402


def summary(spec, depth: int | None = None, *, columns=None, dtype: str = "float32", **params) -> dict:
    """The data of `cnnc summary --format json` for a spec path or spec text: a dict, which a
    notebook shows as a table. `columns` (names as for `--columns`) keeps only those row fields
    (and the table shows them); `dtype` sizes the byte counts."""
    from .pipeline import front_end
    from .backends.summary import Summary, parse_columns, select, summary_data

    if isinstance(columns, str):
        columns = parse_columns(columns)
    elif columns is not None:
        columns = parse_columns(",".join(columns))
    data = summary_data(front_end(spec, params).graph, depth, dtype)
    data["layers"] = select(data, columns)
    return Summary(data, columns)


def __getattr__(name):
    # compile / import_weights live in codegen, which needs torch: load on first use.
    if name in ("compile", "import_weights", "ReorderedWeights"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)


__all__ = ["CnncError", "summary", "compile", "import_weights", "ReorderedWeights"]
