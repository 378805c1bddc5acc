"""`cnnc list [--format text|json]`: the spec library's catalog, one row per preset.

Each entry runs through the front end (torch-free) for its parameter and MAC totals, as
`cnnc summary` counts them. A malformed entry anywhere in the library is a located error and
exit status 1, before anything is printed.
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace

NAME = "list"
HELP = "list the spec library's catalog: every preset with its reference, parameters and MACs"


def add_arguments(p) -> None:
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="json: a list of objects with name, spec, overrides, reference, params and macs")


def catalog_rows() -> list[dict]:
    """One row per catalog entry, in library file order."""
    from cnnc.backends.summary import totals
    from cnnc.frontend.catalog import entries
    from cnnc.frontend.loader import display_path
    from cnnc.pipeline import front_end

    rows = []
    for program, items in entries():
        for e in items:
            params, macs = totals(front_end(replace(program, preset=e.preset)).graph)
            rows.append({"name": e.name, "spec": display_path(e.spec), "overrides": e.overrides,
                         "reference": e.reference, "params": params, "macs": macs})
    return rows


def run(args) -> int:
    rows = catalog_rows()
    if args.format == "json":
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return 0
    from tabulate import tabulate

    from cnnc.backends.summary import human
    from cnnc.frontend.loader import library_root

    table = [[r["name"], r["reference"], f"{r['params']:,}", human(r["macs"]), r["spec"]] for r in rows]
    sys.stdout.write(tabulate(table, headers=["name", "reference", "params", "MACs", "spec"], tablefmt="simple",
                              colalign=("left", "left", "right", "right", "left")) + "\n")
    files = len({r["spec"] for r in rows})
    print(f"\n{len(rows)} entries in {files} spec files of the library ({library_root()}); "
          "`cnnc check NAME` builds one")
    return 0
