"""What the reference libraries say about the catalog's references: tests/references/<spec>.json.

For every catalog entry whose reference is a library model (`torchvision:resnet50`,
`timm:legacy_xception`), the library's own numbers: the parameter count of the model as the
library builds it (on the meta device: no memory, no weights), and for torchvision the
multiply-adds it publishes in its weights metadata (`_ops`, GFLOPS, read offline). One file per
spec file of the library, so that families added in parallel never edit the same file.

The fast tests (tests/test_specs.py) compare cnnc's torch-free counts with these files; the slow
test `test_reference_data_is_current` reruns this script with --check, so the files cannot drift
from the libraries.

    python tools/reference_data.py            # rewrite tests/references/*.json
    python tools/reference_data.py --check    # exit 1 (and say which) if a file differs
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "references"
sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def meta_device():
    """Build models on the meta device (no memory, no weights). torchvision's RegNet computes its
    stage widths with tensors (BlockParams.from_init_params, which reads them back with
    .tolist()): that arithmetic runs on the CPU, the modules are built on the meta device."""
    import torch
    from torchvision.models.regnet import BlockParams

    on_meta = BlockParams.from_init_params.__func__

    def on_cpu(cls, *args, **kwargs):
        with torch.device("cpu"):
            return on_meta(cls, *args, **kwargs)

    BlockParams.from_init_params = classmethod(on_cpu)
    try:
        with torch.device("meta"):
            yield
    finally:
        BlockParams.from_init_params = classmethod(on_meta)


def library_facts(reference: str) -> dict:
    """{"params": ...} (and "gflops" for torchvision) for `library:model`."""
    import torch

    library, _, model = reference.partition(":")
    with meta_device(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GoogLeNet's init_weights FutureWarning
        if library == "torchvision":
            import inspect

            import torchvision

            # segmentation builders load ImageNet weights into their backbone by default: none
            # here (the same parameters, and no download)
            builder = torchvision.models.get_model_builder(model)
            none = {"weights_backbone": None} if "weights_backbone" in inspect.signature(builder).parameters else {}
            net = torchvision.models.get_model(model, weights=None, **none)
        else:
            import timm

            net = timm.create_model(model, pretrained=False)
    facts = {"params": sum(p.numel() for p in net.parameters())}
    if library == "torchvision":
        import torchvision

        facts["gflops"] = torchvision.models.get_model_weights(model).DEFAULT.meta["_ops"]
    return facts


def expected_files() -> dict[str, str]:
    """File name -> its text, for every library spec file with a library reference."""
    from cnnc.frontend.catalog import entries

    files: dict[str, dict] = {}
    for _, items in entries():
        for e in items:
            if e.reference.split(":")[0] in ("torchvision", "timm"):
                files.setdefault(e.spec.stem + ".json", {})[e.reference] = library_facts(e.reference)
    return {name: json.dumps(dict(sorted(data.items())), indent=1) + "\n" for name, data in files.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = ap.parse_args(argv)
    want = expected_files()
    have = {p.name: p.read_text() for p in OUT.glob("*.json")} if OUT.is_dir() else {}
    if args.check:
        stale = sorted(n for n in set(want) | set(have) if want.get(n) != have.get(n))
        for n in stale:
            print(f"tests/references/{n}: differs from the libraries (rerun tools/reference_data.py)")
        return 1 if stale else 0
    OUT.mkdir(exist_ok=True)
    for name in set(have) - set(want):
        (OUT / name).unlink()
    for name, text in want.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(want)} files in {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
