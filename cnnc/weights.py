"""Foreign weights: read a state_dict file and map it onto a generated module.

The mapping is structural: both state_dicts are walked in order (parameters and buffers, as
`state_dict()` lists them) and paired one by one; names are never compared, so torchvision's
`layer1.0.conv1.weight` lands on cnnc's `layer1.block0.conv1.weight`. A pair fits when the shapes
are equal, or when one is a Linear weight [out, in] and the other a 1x1 convolution weight
[out, in, 1, 1] (the same numbers; the tensor is reshaped). BatchNorm's `num_batches_tracked`
counters (0-d integer tensors) take part only when the foreign state_dict has some (older
checkpoints have none).

A state_dict lists tensors in the order their modules were *registered*, which is not always
the order they are *used*: torchvision's ConvNeXt block registers `layer_scale` before the
layers it scales, timm's pre-activation bottleneck registers `downsample` before the `norm1`
that feeds it. cnnc's modules are in dataflow order. So when the plain order does not fit,
the importer looks for a reordering that does, moving only whole modules (or single tensors)
among their siblings, never a tensor out of its module: the foreign names form a tree by their
dotted prefixes, and each node's entries may be permuted. Entries with the same shapes keep
their relative order. Every move is reported (a `ReorderedWeights` warning; a note from
`cnnc build --weights`), because a reordering could also hide an architecture that differs.

Import is all or nothing: when no order fits (or the counts differ), CnncError names the first
pair of the plain order that does not fit, with both names and shapes, and the module is left
untouched.
"""
from __future__ import annotations

import os
import pickle
import warnings
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


class ReorderedWeights(UserWarning):
    """`import_weights` matched some foreign tensors out of their state_dict order."""


# entries tried by the reordering search before it gives up (the import then fails as unfit)
_SEARCH_BUDGET = 200_000


class _Module:
    """A node of the foreign name tree: a dotted prefix and its entries (child modules, tensor
    indices), in order of first appearance."""

    __slots__ = ("name", "entries", "kids", "flat", "shapes")

    def __init__(self, name: str):
        self.name, self.entries, self.kids = name, [], {}


def _name_tree(names) -> _Module:
    root = _Module("")
    for i, name in enumerate(names):
        node, parts = root, name.split(".")
        for depth, part in enumerate(parts[:-1]):
            kid = node.kids.get(part)
            if kid is None:
                kid = node.kids[part] = _Module(".".join(parts[:depth + 1]))
                node.entries.append(kid)
            node = kid
        node.entries.append(i)
    return root


class _Matcher:
    """Finds an order of the foreign tensors that fits ours, permuting entries within modules."""

    def __init__(self, theirs, ours):
        self.theirs, self.ours = theirs, ours
        self.memo: dict = {}
        self.budget = _SEARCH_BUDGET
        self.root = _name_tree([k for k, _ in theirs])
        self._index(self.root)

    def _index(self, node: _Module) -> None:
        flat = []
        for e in node.entries:
            if isinstance(e, _Module):
                self._index(e)
                flat.extend(e.flat)
            else:
                flat.append(e)
        node.flat = flat
        node.shapes = tuple(tuple(self.theirs[i][1].shape) for i in flat)

    def _shapes(self, e) -> tuple:
        return e.shapes if isinstance(e, _Module) else (tuple(self.theirs[e][1].shape),)

    def fit(self, e, pos: int):
        """The foreign indices, in an order that fits ours[pos:], for entry `e`; None if none does."""
        if not isinstance(e, _Module):
            return [e] if pos < len(self.ours) and _fits(self.theirs[e][1], self.ours[pos][1]) else None
        key = (id(e), pos)
        if key not in self.memo:
            self.memo[key] = self._fit_entries(e, pos)
        got = self.memo[key]
        return None if got is None else got[0]

    def _fit_entries(self, node: _Module, pos: int):
        """Depth-first over permutations of node.entries, the given order first; among entries with
        the same shapes only the earliest unused one is tried, so they keep their relative order.
        Iterative, since a module may have thousands of entries. Returns (flat order, permutation)."""
        entries = node.entries
        used = [False] * len(entries)
        placed: list = []  # (entry index, its flat order, position after it)
        cursor = 0  # next candidate to try at the current level
        while len(placed) < len(entries):
            p = placed[-1][2] if placed else pos
            found = None
            seen = set()
            for j in range(len(entries)):
                if used[j]:
                    continue
                shapes = self._shapes(entries[j])
                if j < cursor or shapes in seen:
                    seen.add(shapes)
                    continue
                seen.add(shapes)
                self.budget -= 1
                if self.budget < 0:
                    return None
                got = self.fit(entries[j], p)
                if got is not None:
                    found = (j, got)
                    break
            if found is None:  # backtrack: the previous level tries its next candidate
                if not placed:
                    return None
                j, _, _ = placed.pop()
                used[j] = False
                cursor = j + 1
                continue
            j, got = found
            used[j] = True
            placed.append((j, got, p + len(got)))
            cursor = 0
        return [i for _, got, _ in placed for i in got], [j for j, _, _ in placed]

    def moves(self, node=None, pos=0) -> list[str]:
        """'<entry> after <entry>' for each entry the found order took out of its place."""
        node = node or self.root
        order, perm = self.memo[(id(node), pos)]
        out = []
        keep = _longest_increasing(perm)
        names = [self._label(e) for e in node.entries]
        for k, j in enumerate(perm):
            if j not in keep:
                where = f"after {names[perm[k - 1]]}" if k else "first"
                out.append(f"{names[j]} {where}")
        p = pos
        for j in perm:
            e = node.entries[j]
            if isinstance(e, _Module):
                out.extend(self.moves(e, p))
            p += len(e.flat) if isinstance(e, _Module) else 1
        return out

    def _label(self, e) -> str:
        return f"'{e.name}'" if isinstance(e, _Module) else f"'{self.theirs[e][0]}'"


def _longest_increasing(seq) -> set:
    """The values of one longest increasing subsequence of `seq` (the entries that stayed put)."""
    best: list[list] = []
    for v in seq:
        chain = max((c for c in best if c[-1] < v), key=len, default=[])
        best.append(chain + [v])
    return set(max(best, key=len, default=[]))


def remap(module: torch.nn.Module, state_dict: Mapping, moves: list | None = None) -> dict:
    """The foreign tensors under the module's names (checked; nothing is loaded). If the foreign
    order had to be permuted to fit, one line per moved entry is appended to `moves`."""
    if not isinstance(state_dict, Mapping):
        raise CnncError(f"weights must be a state_dict (a mapping of names to tensors), got {type(state_dict).__name__}")
    theirs = list(state_dict.items())
    for name, t in theirs:
        if not isinstance(t, torch.Tensor):
            raise CnncError(f"weights: '{name}' is a {type(t).__name__}, not a tensor")
    ours = list(module.state_dict().items())
    if not any(_is_counter(t) for _, t in theirs):
        ours = [(k, t) for k, t in ours if not _is_counter(t)]
    misfit = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if not _fits(a[1], b[1])), None)
    if len(theirs) != len(ours):  # no reordering can help
        if misfit is not None:
            raise _misfit_error(theirs, ours, misfit, "")
        n = min(len(theirs), len(ours))
        extra = (f"first unmatched: '{theirs[n][0]}' {_shape(theirs[n][1])} in the weights" if len(theirs) > n
                 else f"first unmatched: '{ours[n][0]}' {_shape(ours[n][1])} in the module")
        raise CnncError(f"weights do not fit: {len(theirs)} tensors in the weights, {len(ours)} in the module; "
                        f"{extra}; nothing was loaded")
    order = list(range(len(theirs)))
    if misfit is not None:
        matcher = _Matcher(theirs, ours)
        found = matcher.fit(matcher.root, 0)
        if found is None:
            raise _misfit_error(theirs, ours, misfit, " (nor does any reordering within modules)")
        order = found
        if moves is not None:
            moves.extend(matcher.moves())
    return {ok: theirs[i][1].reshape(ot.shape) for i, (ok, ot) in zip(order, ours)}


def _misfit_error(theirs, ours, i, why) -> CnncError:
    (tk, tt), (ok, ot) = theirs[i], ours[i]
    return CnncError(f"weights do not fit: tensor #{i} '{tk}' {_shape(tt)} in the weights, "
                     f"'{ok}' {_shape(ot)} in the module{why}; nothing was loaded")


def import_weights(module: torch.nn.Module, state_dict: Mapping) -> torch.nn.Module:
    """Load a foreign state_dict into `module` by structural order and shape; returns the module.
    Warns (ReorderedWeights) when entries had to be matched out of the state_dict's order."""
    moves: list[str] = []
    mapped = remap(module, state_dict, moves)
    full = dict(module.state_dict())
    full.update(mapped)
    module.load_state_dict(full)
    if moves:
        warnings.warn(ReorderedWeights(describe_moves(moves)), stacklevel=2)
    return module


def describe_moves(moves: list[str], shown: int = 3) -> str:
    """One line for a warning or note: how many entries moved, and the first few."""
    more = f"; and {len(moves) - shown} more" if len(moves) > shown else ""
    return (f"{len(moves)} foreign entr{'y' if len(moves) == 1 else 'ies'} matched out of state_dict order "
            f"(registered in another order than used): {'; '.join(moves[:shown])}{more}")


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
