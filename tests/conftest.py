import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
TEST_SPECS = ROOT / "tests" / "specs"
GOLDEN = ROOT / "tests" / "golden"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_collection_modifyitems(config, items):
    if not any(item.get_closest_marker("cuda") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none available)")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)


def check_golden(path: Path, text: str) -> None:
    """Compare text with a golden file; CNNC_UPDATE_GOLDEN=1 rewrites it instead."""
    if os.environ.get("CNNC_UPDATE_GOLDEN") == "1" or not path.exists():
        if not path.exists() and os.environ.get("CI"):
            raise AssertionError(f"golden file {path} is missing")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    expected = path.read_text()
    assert text == expected, f"{path.name} differs from its golden file (CNNC_UPDATE_GOLDEN=1 to accept)"
