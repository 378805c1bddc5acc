"""Command-line and API conventions: --version, `-` for stdin, several files to check, every
error of a spec, errors as JSON, colour, build --fused's default output, API keyword errors."""
import json
import os
import re
import subprocess
import sys

import pytest

from cnnc.cli import main
from cnnc.version import __version__
from cnnc_testlib import ROOT, imported_modules


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"cnnc {__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_version_imports_no_torch():
    modules = imported_modules("--version")
    assert "cnnc.version" in modules
    assert not [m for m in modules if m.split(".")[0] in ("torch", "triton", "numpy")]
