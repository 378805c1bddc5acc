"""Foreign weights: read a state_dict file and map it onto a generated module.

The mapping is structural: both state_dicts are walked in order (parameters and buffers, as
`state_dict()` lists them) and paired one by one; names are never compared, so torchvision's
`layer1.0.conv1.weight` lands on cnnc's `layer1.block0.conv1.weight`. A pair fits when the shapes
are equal, or when one is a Linear weight [out, in] and the other a 1x1 convolution weight
[out, in, 1, 1] (the same numbers; the tensor is reshaped). BatchNorm's `num_batches_tracked`
counters (0-d integer tensors) take part only when the foreign state_dict has some (older
checkpoints have none).

Import is all or nothing: the first pair that does not fit (or a count mismatch) raises
CnncError naming both tensors and both shapes, and the module is left untouched.
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Mapping

import torch

from .diagnostics import CnncError

# wrappers training scripts put around a state_dict
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


def _shape(t) -> str:
    return "[" + ", ".join(str(d) for d in t.shape) + "]"


def _is_counter(t: torch.Tensor) -> bool:
    """BatchNorm's num_batches_tracked: the only 0-d integer tensors in a state_dict."""
    return t.dim() == 0 and not t.is_floating_point()


def _fits(theirs: torch.Tensor, ours: torch.Tensor) -> bool:
    if theirs.shape == ours.shape:
        return True
    a, b = sorted((tuple(theirs.shape), tuple(ours.shape)), key=len)
    return len(a) == 2 and len(b) == 4 and b == a + (1, 1)  # Linear [o, i] <-> 1x1 conv [o, i, 1, 1]


def remap(module: torch.nn.Module, state_dict: Mapping) -> dict:
    """The foreign tensors under the module's names (checked; nothing is loaded)."""
    if not isinstance(state_dict, Mapping):
        raise CnncError(f"weights must be a state_dict (a mapping of names to tensors), got {type(state_dict).__name__}")
    theirs = list(state_dict.items())
    for name, t in theirs:
        if not isinstance(t, torch.Tensor):
            raise CnncError(f"weights: '{name}' is a {type(t).__name__}, not a tensor")
    ours = list(module.state_dict().items())
    if not any(_is_counter(t) for _, t in theirs):
        ours = [(k, t) for k, t in ours if not _is_counter(t)]
    out = {}
    for i, ((tk, tt), (ok, ot)) in enumerate(zip(theirs, ours)):
        if not _fits(tt, ot):
            raise CnncError(f"weights do not fit: tensor #{i} '{tk}' {_shape(tt)} in the weights, "
                            f"'{ok}' {_shape(ot)} in the module; nothing was loaded")
        out[ok] = tt.reshape(ot.shape)
    if len(theirs) != len(ours):
        n = len(out)
        extra = (f"first unmatched: '{theirs[n][0]}' {_shape(theirs[n][1])} in the weights" if len(theirs) > n
                 else f"first unmatched: '{ours[n][0]}' {_shape(ours[n][1])} in the module")
        raise CnncError(f"weights do not fit: {len(theirs)} tensors in the weights, {len(ours)} in the module; "
                        f"{extra}; nothing was loaded")
    return out


def import_weights(module: torch.nn.Module, state_dict: Mapping) -> torch.nn.Module:
    """Load a foreign state_dict into `module` by structural order and shape; returns the module."""
    mapped = remap(module, state_dict)
    full = dict(module.state_dict())
    full.update(mapped)
    module.load_state_dict(full)
    return module


def load_file(path) -> dict:
    """Read a .pth state_dict (tensors only: weights_only loading); one-line CnncError otherwise."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CnncError(f"cannot read weights '{path}': it is a directory")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CnncError(f"cannot read weights '{path}': no such file") from None
    except OSError as e:
        raise CnncError(f"cannot read weights '{path}': {e.strerror or e}") from None
    except pickle.UnpicklingError:
        raise CnncError(f"cannot read weights '{path}': not a PyTorch weights file, or it holds Python objects "
                        "other than tensors (loading with weights_only=True refused it)") from None
    except EOFError:
        raise CnncError(f"cannot read weights '{path}': the file is empty or truncated") from None
    except Exception as e:  # truncated or damaged zip archives, other formats
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        what = "corrupted or truncated" if "zip" in first.lower() or "archive" in first.lower() else first[:160]
        raise CnncError(f"cannot read weights '{path}': not a readable PyTorch weights file ({what})") from None
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and not isinstance(inner, torch.Tensor):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        what = "an empty mapping" if isinstance(obj, Mapping) else f"a {type(obj).__name__}"
        raise CnncError(f"cannot read weights '{path}': it holds {what}, not a state_dict")
    for name, t in obj.items():
        if not isinstance(t, torch.Tensor):
            raise CnncError(f"cannot read weights '{path}': '{name}' is a {type(t).__name__}, not a tensor")
    return dict(obj)
