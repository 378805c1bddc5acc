"""Bad arguments raise a ValueError/TypeError that names the argument, never a wrong result."""

import pytest
import torch

from cnnc import kernels
from kernels_testlib import DEVICE


def _args(**overrides):
    x = torch.randn(1, 4, 6, 6, device=DEVICE)
    w = torch.randn(4, 1, 3, 3, device=DEVICE)
    args = dict(x=x, weight=w, stride=1, padding=1, dilation=1, groups=4, scale=None,
                shift=None, activation=None, residual=None)
    args.update(overrides)
    return args


def _call(args):
    args = dict(args)
    return kernels.conv2d(args.pop("x"), args.pop("weight"), **args)


BAD_ARGUMENTS = [
    # (overrides, exception type, regex the message must match)
    (dict(activation="tanh"), ValueError, r"^activation: unknown activation 'tanh'"),
    (dict(activation="ReLU"), ValueError, r"^activation: unknown activation 'ReLU'"),
    (dict(scale=torch.ones(3)), ValueError, r"^scale: expected shape \(4,\).*got \(3,\)"),
    (dict(scale=torch.ones(4, 1)), ValueError, r"^scale: expected shape \(4,\)"),
    (dict(shift=torch.ones(5)), ValueError, r"^shift: expected shape \(4,\).*got \(5,\)"),
    (dict(shift=torch.ones(4, dtype=torch.int64)), TypeError, r"^shift: expected a floating-point tensor"),
    (dict(scale=[1.0, 1.0, 1.0, 1.0]), TypeError, r"^scale: expected a Tensor or None, got list"),
    (dict(weight=torch.randn(4, 1, 3, 3, dtype=torch.float16)), TypeError,
     r"^weight: dtype torch.float16 does not match x dtype torch.float32"),
    (dict(groups=3), ValueError, r"^groups: 3 does not divide the 4 input channels"),
    (dict(groups=0), ValueError, r"^groups: expected a positive int, got 0"),
    (dict(groups=2, weight=torch.randn(6, 1, 3, 3)), ValueError,
     r"^weight: expected 2 input channels per group"),
    (dict(groups=2, weight=torch.randn(5, 2, 3, 3)), ValueError, r"^groups: 2 does not divide the 5 output channels"),
    (dict(residual=torch.randn(1, 4, 5, 5)), ValueError,
     r"^residual: expected the output shape \(1, 4, 6, 6\), got \(1, 4, 5, 5\)"),
    (dict(residual=torch.randn(1, 4, 6, 6, dtype=torch.float64)), TypeError,
     r"^residual: dtype torch.float64 does not match x dtype torch.float32"),
    (dict(stride=0), ValueError, r"^stride: must be >= 1"),
    (dict(stride=(1, 2, 3)), TypeError, r"^stride: expected an int or a pair of ints"),
    (dict(padding=-1), ValueError, r"^padding: must be >= 0"),
    (dict(padding="same"), TypeError, r"^padding: expected an int or a pair of ints, got 'same'"),
    (dict(dilation=(1, 0)), ValueError, r"^dilation: must be >= 1"),
    (dict(x=torch.randn(4, 6, 6)), ValueError, r"^x: expected a 4-d \(N, C, H, W\) tensor"),
    (dict(x=torch.ones(1, 4, 6, 6, dtype=torch.int32), weight=torch.ones(4, 1, 3, 3, dtype=torch.int32)),
     TypeError, r"^x: expected a floating-point tensor"),
    (dict(weight=torch.randn(4, 3, 3)), ValueError, r"^weight: expected a 4-d"),
    (dict(padding=0, x=torch.randn(1, 4, 2, 2)), ValueError, r"^x: spatial size 2x2 is too small"),
    (dict(x="not a tensor"), TypeError, r"^x: expected a Tensor, got str"),
]


@pytest.mark.parametrize("overrides, error, message", BAD_ARGUMENTS,
                         ids=[m.split(":")[0].strip("^") + f"-{i}" for i, (_, _, m) in enumerate(BAD_ARGUMENTS)])
def test_bad_argument_is_named(overrides, error, message):
    args = _args(**{k: (v.to(DEVICE) if isinstance(v, torch.Tensor) else v) for k, v in overrides.items()})
    with pytest.raises(error, match=message):
        _call(args)


def test_good_arguments_pass():
    assert _call(_args(stride=(1, 1), padding=(1, 1), dilation=[1, 1])).shape == (1, 4, 6, 6)
