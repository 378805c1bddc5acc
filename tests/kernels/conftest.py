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
