import dataclasses
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnc_testlib import GOLDEN, ROOT, SPECS, TEST_SPECS, check_golden  # noqa: E402,F401  (re-exported)

try:  # hypothesis profiles: "ci" (the default: small and fast) and "thorough" (thousands of examples)
    from hypothesis import HealthCheck, settings

    settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("thorough", deadline=None, max_examples=5000, suppress_health_check=list(HealthCheck))
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # pragma: no cover
    pass


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


@pytest.fixture(autouse=True)
def _kernels_cpu_backend(request, monkeypatch):
    """Whole-model tests run the kernels' torch path on CPU (the kernel policy's
    interpret_cpu=false, in this process and in the subprocesses a test starts); only
    tests/kernels use the interpreter.

    (If tests/kernels set TRITON_INTERPRET=1 before `kernels` was imported, every CPU depthwise
    conv of a later model test would otherwise crawl through Triton's interpreter.) `kernels` is
    imported here, at the first test, never at collection: tests/kernels/conftest.py must set
    TRITON_INTERPRET before it is.
    """
    if "kernels" in Path(str(request.node.fspath)).parts:
        yield
        return
    try:
        from cnnc.kernels import default_policy, using_policy
    except ImportError:  # no triton: every call takes the torch path anyway
        yield
        return
    # the process default is built (from the real environment) before the variable is set below
    policy = dataclasses.replace(default_policy(), interpret_cpu=False)
    monkeypatch.setenv("CNNC_KERNELS_POLICY", policy.key)
    with using_policy(policy):
        yield


def _vm(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024  # MiB
    return -1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """CNNC_TEST_MEMLOG=FILE: append each test's peak resident memory (MiB, Linux) to FILE, one
    line per test: the resident size before it, its peak and its duration. Used to size the slow
    tier's xdist groups: two workers' peaks together must stay under the machine's memory."""
    log = os.environ.get("CNNC_TEST_MEMLOG")
    if not log or not os.path.exists("/proc/self/clear_refs"):
        yield
        return
    import time

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current resident size
    before, t = _vm("VmRSS"), time.time()
    yield
    with open(log, "a") as f:
        f.write(f"{item.nodeid}\t{before}\t{_vm('VmHWM')}\t{time.time() - t:.1f}\n")
