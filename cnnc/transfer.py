"""Transfer learning on compiled modules: load a reference state_dict into the same spec built
with another head, and freeze or unfreeze parts of it by instance path.

`load_weights(model, state_dict, skip_mismatched=True)` pairs tensors by state_dict key
(backends/weights.py `load_matching`): a reference state_dict loads into `resnet50` built with
`classes=10` except `fc.weight` and `fc.bias`, whose shapes changed; the returned LoadReport
lists what was skipped (with both shapes), missing and unexpected.

`freeze(model, *paths)` / `unfreeze(model, *paths)` set `requires_grad` of every parameter under
the instances the paths name, as the spec and `cnnc summary` name them (`features`,
`layer4.2.conv3`). Code generation may rename an attribute (`train` -> `train_`,
backends/names.py); a module from `cnnc.compile` carries the mapping (`model.cnnc_spec`) and
paths go through it; for any other module (one loaded from `cnnc build`'s file) a path is its
submodule path. A path that names nothing is a CnncError with a did-you-mean. BatchNorm layers
under a frozen path still update their running statistics in training mode: put them in eval
mode (`model.features.eval()`) for a strict linear probe.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from .backends.weights import LoadReport, load_matching
from .diagnostics import CnncError, suggest

__all__ = ["load_weights", "freeze", "unfreeze", "LoadReport"]


def load_weights(model: torch.nn.Module, state_dict: Mapping, skip_mismatched: bool = True) -> LoadReport:
    """Load every tensor of `state_dict` whose key and shape are the model's; skip (and report)
    those whose shapes differ, or refuse them all with `skip_mismatched=False`. All or nothing."""
    return load_matching(model, state_dict, skip_mismatched=skip_mismatched)


def freeze(model: torch.nn.Module, *paths: str) -> list[str]:
    """Stop gradients for every parameter under the named instances; returns their names."""
    return _set_requires_grad(model, paths, False)


def unfreeze(model: torch.nn.Module, *paths: str) -> list[str]:
    """Let gradients through every parameter under the named instances again; returns their names."""
    return _set_requires_grad(model, paths, True)


def _set_requires_grad(model, paths, flag: bool) -> list[str]:
    if not paths:
        raise CnncError(f"{'unfreeze' if flag else 'freeze'}: name at least one instance path, e.g. 'features'")
    prefixes = [resolve(model, p) for p in paths]  # all resolved before any is changed
    changed = []
    for name, param in model.named_parameters():
        if any(not prefix or name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            param.requires_grad_(flag)
            changed.append(name)
    return changed


def resolve(model: torch.nn.Module, path: str) -> str:
    """The submodule path (the state_dict's prefix) of an instance path; CnncError if it names
    nothing in the model."""
    if not isinstance(path, str):
        raise CnncError(f"an instance path is a string such as 'features', got {type(path).__name__}")
    mapping = dict(getattr(getattr(model, "cnnc_spec", None), "module_paths", ()) or ())
    modules = dict(model.named_modules())
    if mapping:
        if path in mapping:
            return mapping[path]
        candidates = list(mapping)
    else:
        if path in modules and path:
            return path
        candidates = [name for name in modules if name]
    raise CnncError(f"no instance '{path}' in {type(model).__name__}{suggest(path, candidates)}")
