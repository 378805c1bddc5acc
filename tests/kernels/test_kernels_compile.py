"""Every Triton kernel compiles for the H100 (sm_90) through Triton's full pipeline, down to a
cubin from ptxas, on this machine without a GPU (tools/compile_kernels.py).

The interpreter tests run the kernels as numpy code and never lower them, so without this check a
kernel could pass all of CI and fail to compile on the first GPU it meets. fp16, first autotune
config of each launch, to keep CI quick; `python tools/compile_kernels.py` compiles every dtype
and config.
"""
import os
import re
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KERNELS = ["depthwise_conv2d_kernel", "depthwise_epilogue_grad_kernel", "depthwise_input_grad_kernel",
           "depthwise_weight_grad_kernel", "grouped_conv2d_kernel"]


def _compile_kernels(*args):
    """tools/compile_kernels.py's output, run without the interpreter; skips where the script
    says this Triton's internals differ from what it uses, fails where a compile failed."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # conftest sets it
    env["CUDA_VISIBLE_DEVICES"] = ""
    run = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tools", "compile_kernels.py"), *args],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200)
    if run.returncode == 3:
        pytest.skip(run.stdout.strip().splitlines()[-1])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.mark.slow
def test_every_kernel_compiles_for_sm90():
    run = _compile_kernels("--quick", "--dtypes", "float16")
    compiled = re.findall(r"^ok +(\w+) ", run.stdout, flags=re.M)
    assert sorted(set(compiled)) == sorted(KERNELS), sorted(set(compiled))
    # both grouped inner products: the block-diagonal packed tl.dot and the per-group tl.dot
    assert re.search(r"^ok +grouped_conv2d_kernel .*PACK=4 .*USE_DOT=True", run.stdout, flags=re.M)
    assert re.search(r"^ok +grouped_conv2d_kernel .*PACK=1 .*USE_DOT=True", run.stdout, flags=re.M)
    assert "0 failed" in run.stdout.splitlines()[-1]


@pytest.mark.slow
def test_weight_grad_loop_has_no_division_or_cross_thread_sum():
    """The depthwise weight gradient's innermost loop, in sm_90 SASS, for every tile of its
    autotune space (fp16, channels_last): no division by a run-time value (the kernel once split
    flattened pixel indices into (n, oh, ow) there, 3 divisions per trip) and, for one tap per
    program and channel multiplier 1, no shared-memory or shuffle traffic (the all-taps kernel of the time summed each
    tap across threads there: 280-392 such instructions per trip)."""
    run = _compile_kernels("--loops", "--dtypes", "float16", "--layout", "nhwc", "--channels", "96",
                           "--kernels", "depthwise_weight_grad_kernel")
    loops = re.findall(r"MULT=(\d+) .*TAP_BLOCK=(\d+) .*innermost loop (\d+) instructions \((\d+) fma, (\d+) ldg, "
                       r"(\d+) shared/sync, (\d+) div\)", run.stdout)
    assert len(loops) >= 8, run.stdout[-3000:]
    for mult, tap_block, instructions, fma, ldg, shared, div in loops:
        assert int(div) == 0 and int(fma) > 0 and int(ldg) > 0, (tap_block, instructions, fma, ldg, shared, div)
        if tap_block == "1" and mult == "1":  # (multiplier 2 loads x channel by channel and exchanges it)
            assert int(shared) == 0, (tap_block, instructions, shared)
