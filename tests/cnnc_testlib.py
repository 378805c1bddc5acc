"""Paths and golden-file helpers shared by the test modules."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
TEST_SPECS = ROOT / "tests" / "specs"
GOLDEN = ROOT / "tests" / "golden"

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
