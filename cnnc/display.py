"""What a notebook shows: `cnnc.summary` (a dict, displayed as a table) and `cnnc.render` (a
Picture, displayed as SVG). Both read a spec path, spec text, or a module from `cnnc.compile`
(which remembers its spec in `model.cnnc_spec`). No torch is imported here.
"""
from __future__ import annotations


def _spec_of(spec, params: dict, fused: bool = False):
    """(spec, params, fused), taking a compiled module's own, under the parameters given here."""
    ref = getattr(spec, "cnnc_spec", None)
    if ref is None:
        return spec, params, fused
    return ref.spec, {**dict(ref.params), **params}, fused or ref.fused


def summary(spec, depth: int | None = None, *, columns=None, dtype: str = "float32", import_roots=(),
            **params) -> dict:
    """The data of `cnnc summary --format json` for a spec (or a compiled module): a dict, which a
    notebook shows as a table. `columns` (names as for `--columns`) keeps only those row fields
    (and the table shows them); `dtype` sizes the byte counts; `import_roots`: more directories
    the spec may import from."""
    from .backends.summary import Summary, parse_columns, select, summary_data
    from .pipeline import front_end

    spec, params, _ = _spec_of(spec, params)
    if isinstance(columns, str):
        columns = parse_columns(columns)
    elif columns is not None:
        columns = parse_columns(",".join(columns))
    data = summary_data(front_end(spec, params, import_roots=import_roots, api="cnnc.summary()").graph, depth, dtype)
    data["layers"] = select(data, columns)
    return Summary(data, columns)


def render(spec, depth: int | None = None, *, fused: bool = False, rankdir: str = "TB", legend: bool = True,
           merge: bool = True, collapse_repeats: bool | None = None, max_height: int | None = None,
           dpi: int | None = None, import_roots=(), **params):
    """The picture `cnnc render` draws, for a spec path, spec text or a module from `cnnc.compile`
    (which remembers its spec, parameters and `fused`): a Picture with `.dot` and `.save(path)`,
    shown inline as SVG in a notebook. The options are those of `cnnc render`; without `depth`, the
    most detailed depth whose picture fits `max_height` pixels (default 2,500) is drawn."""
    from .backends import render as R
    from .pipeline import front_end, fuse

    spec, params, fused = _spec_of(spec, params, fused)
    g = front_end(spec, params, import_roots=import_roots, api="cnnc.render()").graph
    if fused:
        g = fuse(g)
    if depth is None:
        depth, _ = R.choose_depth(g, max_height or R.DEFAULT_MAX_HEIGHT, merge, collapse_repeats, rankdir, legend)
    dot = R.to_dot(g, depth, collapse_repeats, merge, rankdir, legend=legend, dpi=dpi)
    return R.Picture(dot, g.name, R.plan(g, depth).depth)
