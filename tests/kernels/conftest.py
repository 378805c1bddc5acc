"""Kernel tests run everywhere: natively on a GPU, else under Triton's interpreter.

TRITON_INTERPRET=1 must be in the environment before `kernels` (and its `triton.jit`
decorators) is imported, so it is set here, at conftest import time, when CUDA is absent.
If something imported `kernels` earlier in the same process without it, the interpreter
tests fail with a message saying so (see `require_triton_path` in kernels_testlib.py).
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# References must be exact: cuDNN's float32 convolutions default to TF32 (10-bit mantissa)
# on Ampere and later, and on an H100 that made eager float32 gradients differ from the
# kernels' (IEEE float32) by 5e-3 relative. The kernels never use TF32 for float32.
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False


def pytest_runtest_logreport(report):
    """CNNC_TEST_FAILURES=<file>: append each failure's report there as it happens (a run cut off
    by a time limit, as on a lent GPU, prints no summary). Written by the xdist controller only."""
    path = os.environ.get("CNNC_TEST_FAILURES")
    if path and report.failed and "PYTEST_XDIST_WORKER" not in os.environ:
        with open(path, "a") as f:
            f.write(f"===== {report.nodeid} ({report.when}, {report.duration:.1f} s)\n{report.longreprtext}\n")
