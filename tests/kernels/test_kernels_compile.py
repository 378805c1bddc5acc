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


def test_every_kernel_compiles_for_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # conftest sets it
    env["CUDA_VISIBLE_DEVICES"] = ""
    run = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tools", "compile_kernels.py"), "--quick",
                          "--dtypes", "float16"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                         timeout=1200)
    if run.returncode == 3:  # the script's own verdict: this Triton's internals differ
        pytest.skip(run.stdout.strip().splitlines()[-1])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    compiled = re.findall(r"^ok +(\w+) ", run.stdout, flags=re.M)
    assert sorted(set(compiled)) == sorted(KERNELS), sorted(set(compiled))
    # both grouped inner products: the block-diagonal packed tl.dot and the per-group tl.dot
    assert re.search(r"^ok +grouped_conv2d_kernel .*PACK=4 .*USE_DOT=True", run.stdout, flags=re.M)
    assert re.search(r"^ok +grouped_conv2d_kernel .*PACK=1 .*USE_DOT=True", run.stdout, flags=re.M)
    assert "0 failed" in run.stdout.splitlines()[-1]
