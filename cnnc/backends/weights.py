"""Foreign weights: read a state_dict file and map it onto a generated module.

The mapping is structural: both state_dicts are walked in order (parameters and buffers, as
`state_dict()` lists them) and paired one by one; names are never compared, so torchvision's
`layer1.0.conv1.weight` lands on cnnc's `layer1.block0.conv1.weight`. A pair fits when the shapes
are equal, or when one is a Linear weight [out, in] and the other a 1x1 convolution weight
[out, in, 1, 1] (the same numbers; the tensor is reshaped), and when the last parts of the two
names do not contradict each other: `weight`, `bias`, `running_mean`, `running_var` and
`num_batches_tracked` (the names torch's layers use) never pair with another of these five, so
a BatchNorm's four [C] tensors cannot be paired crosswise (as with a state_dict whose keys were
sorted: `bias` before `weight`); other last parts (`gamma`, `beta`, `layer_scale`) pair with
anything of their shape. BatchNorm's `num_batches_tracked`
counters (0-d integer tensors) take part only when the foreign state_dict has some (older
checkpoints have none).

A state_dict lists tensors in the order their modules were *registered*, which is not always
the order they are *used*: timm's pre-activation bottleneck registers `downsample` before the
`norm1` that feeds it. cnnc's modules are in dataflow order (but for a layer scale, a parameter
of its block listed first in it, as torchvision's ConvNeXt block lists `layer_scale`). So when the plain order does not fit,
the importer looks for a reordering that does, moving only whole modules (or single tensors)
among their siblings, never a tensor out of its module: the foreign names form a tree by their
dotted prefixes, and each node's entries may be permuted (`_Matcher` has the rules: module
boundaries on both sides respected, interchangeable entries kept in order, fewest moves).
Every move is reported (a `ReorderedWeights` warning; a note from `cnnc build --weights`),
because a reordering could also hide an architecture that differs.

Import is all or nothing: when no order fits (or the counts differ), CnncError names the first
pair of the plain order that does not fit, with both names and shapes, and the module is left
untouched (`import_weights` also puts every parameter and buffer back if loading fails midway).

Order is what pairs tensors, but names can contradict it, and then the import is refused rather
than guessed (`_check_names`), with an error naming both keys:
- the foreign state_dict is first regrouped by module (its tensors in the order their modules
  first appear): a module's tensors are contiguous in any real state_dict;
- entries of one module that are interchangeable (the same shapes) and whose names number them
  in a series (`layer1.0`/`layer1.1`, `conv1`/`conv2`, `features.2`/`features.10`) must be listed
  in the order of that number: otherwise the state_dict was shuffled or sorted, and which one goes
  where cannot be told from it (a same-shape swap);
- where a foreign module and the module of ours it lands in have parents with the same set of
  child names, the names must be equal: `conv2` landing on our `conv1` beside our `conv2` is a swap.
When the foreign keys are exactly the module's own, they pair by name, whatever their order.
Tensors must be dense floating-point and finite (BatchNorm's integer counters excepted): integer,
bool, complex, quantized, sparse and meta tensors, and NaN or infinite values, are refused.
"""
from __future__ import annotations

import os
import pickle
import re
import stat
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from cnnc.diagnostics import CnncError

# wrappers training scripts put around a state_dict
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


def _shape(t) -> str:
    return _dims(t.shape)


def _dims(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _is_counter(t: torch.Tensor) -> bool:
    """BatchNorm's num_batches_tracked: the only 0-d integer tensors in a state_dict."""
    return t.dim() == 0 and not t.is_floating_point()


# last parts of state_dict names that torch's layers give their tensors: each pairs only with itself
_ROLES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def fit_key(t: torch.Tensor, name: str = "") -> tuple:
    """(shape, role): the shape, except that a 1x1 convolution weight [out, in, 1, 1] counts as
    the Linear weight [out, in] it equals; the role is the name's last part if it is one of
    _ROLES, else "". Entries whose keys are all equal are interchangeable to the matcher."""
    shape = tuple(t.shape)
    leaf = name.rsplit(".", 1)[-1]
    return (shape[:2] if len(shape) == 4 and shape[2:] == (1, 1) else shape), (leaf if leaf in _ROLES else "")


def _fits(theirs: tuple, ours: tuple) -> bool:
    """Whether foreign (name, tensor) `theirs` may take the place of the module's `ours`: equal
    shapes (`fit_key`) and roles that do not contradict each other ("" fits any)."""
    (shape_a, role_a), (shape_b, role_b) = fit_key(theirs[1], theirs[0]), fit_key(ours[1], ours[0])
    return shape_a == shape_b and (role_a == role_b or not role_a or not role_b)


class ReorderedWeights(UserWarning):
    """`import_weights` matched some foreign tensors out of their state_dict order."""


# candidate placements the reordering search may try; past it, the best order found so far
# stands (or, if none was found, the weights do not fit)
_SEARCH_BUDGET = 200_000
_NO_COST = (0, 0)


class _Module:
    """A node of the foreign name tree: a dotted prefix, its depth, and its entries (child
    modules, tensor indices), in order of first appearance."""

    __slots__ = ("name", "depth", "entries", "kids", "flat", "shapes", "bag")

    def __init__(self, name: str, depth: int):
        self.name, self.depth, self.entries, self.kids = name, depth, [], {}


def _name_tree(names) -> _Module:
    root = _Module("", 0)
    for i, name in enumerate(names):
        node, parts = root, name.split(".")
        for depth, part in enumerate(parts[:-1]):
            kid = node.kids.get(part)
            if kid is None:
                kid = node.kids[part] = _Module(".".join(parts[:depth + 1]), depth + 1)
                node.entries.append(kid)
            node = kid
        node.entries.append(i)
    return root


def _module_ranges(names) -> list[tuple[int, int]]:
    """[start, end) of every dotted prefix (module) over a list of tensor names in order."""
    ranges: dict = {}
    for i, name in enumerate(names):
        parts = name.split(".")
        for depth in range(1, len(parts)):
            start, _ = ranges.get(".".join(parts[:depth]), (i, i))
            ranges[".".join(parts[:depth])] = (start, i + 1)
    return list(ranges.values())


def _add(a: tuple, b: tuple) -> tuple:
    return (a[0] + b[0], a[1] + b[1])


class _Matcher:
    """Finds an order of the foreign tensors that fits ours, permuting entries within modules.

    Of the orders that fit, it takes the one with the fewest moves, and among those the one
    whose moves sit nearest the root: cost = (moves, sum of the moves' depths), where a move
    is an entry placed before one that preceded it (a descent in the node's permutation).
    Depth-first branch and bound per node, cheapest candidates first, memoized per (module,
    position); entries holding the same shapes (in any order) are interchangeable to it and
    keep their given order."""

    def __init__(self, theirs, ours):
        self.theirs, self.ours = theirs, ours
        self.memo: dict = {}
        self.budget = _SEARCH_BUDGET
        self.stay_put = True  # the pass `match` is in
        self.root = _name_tree([k for k, _ in theirs])
        self._index(self.root)
        self.our_modules = _module_ranges([k for k, _ in ours])
        self.aligned_memo: dict = {}

    def _index(self, node: _Module) -> None:
        flat = []
        for e in node.entries:
            if isinstance(e, _Module):
                self._index(e)
                flat.extend(e.flat)
            else:
                flat.append(e)
        node.flat = flat
        node.shapes = tuple(fit_key(self.theirs[i][1], self.theirs[i][0]) for i in flat)
        node.bag = tuple(sorted(node.shapes))

    def _bag(self, e) -> tuple:
        """The shapes an entry holds, in any order: entries with equal bags are interchangeable
        (each could be reordered to fit where the other does), so they keep their given order."""
        return e.bag if isinstance(e, _Module) else (fit_key(self.theirs[e][1], self.theirs[e][0]),)

    def fit(self, e, pos: int):
        """(cost, foreign indices in an order that fits ours[pos:]) for entry `e`, or None."""
        if not isinstance(e, _Module):
            fits = pos < len(self.ours) and _fits(self.theirs[e], self.ours[pos])
            return (_NO_COST, [e]) if fits else None
        key = (id(e), pos)
        if key not in self.memo:
            aligned = self._aligned(pos, pos + len(e.flat))
            self.memo[key] = self._fit_entries(e, pos) if aligned else None
        got = self.memo[key]
        return None if got is None else got[:2]

    def _aligned(self, a: int, b: int) -> bool:
        """Whether ours[a:b] respects our own module boundaries: each of our modules lies inside
        it, contains it, or is apart from it. A foreign module never straddles two of ours (one
        of theirs holding a layer of ours and half of the next is a coincidence of shapes)."""
        key = (a, b)
        if key not in self.aligned_memo:
            self.aligned_memo[key] = not any(s < a < e < b or a < s < b < e for s, e in self.our_modules)
        return self.aligned_memo[key]

    def _fit_entries(self, node: _Module, pos: int):
        """The cheapest (cost, flat order, permutation) of node.entries that fits at pos, or
        None. Iterative (a module may have thousands of entries); stops at a zero-cost order
        or when the budget is spent, keeping the best order found."""
        entries = node.entries
        move = (1, node.depth)
        used = [False] * len(entries)
        placed: list = []  # (entry index, flat order, cost so far), one per level
        levels: list = []  # per level: [candidates, next one to try]
        best = None
        p = pos
        while True:
            if len(placed) == len(entries):
                cost = placed[-1][2] if placed else _NO_COST
                if best is None or cost < best[0]:
                    best = (cost, [i for _, got, _ in placed for i in got], [j for j, _, _ in placed])
                if cost == _NO_COST:
                    return best
            elif len(levels) == len(placed):
                so_far = placed[-1][2] if placed else _NO_COST
                last = placed[-1][0] if placed else -1
                candidates = self._candidates(entries, used, p, so_far, last, move)
                if candidates is None:
                    return best  # budget spent
                levels.append([candidates, 0])
            if len(levels) > len(placed):
                candidates, k = levels[-1]
                if k < len(candidates) and (best is None or candidates[k][0] < best[0]):
                    levels[-1][1] += 1
                    cost, j, got = candidates[k]
                    used[j] = True
                    placed.append((j, got, cost))
                    p += len(got)
                    continue
                levels.pop()  # exhausted, or nothing cheaper left: back to the level before
            if not placed:
                return best
            j, got, _ = placed.pop()
            used[j] = False
            p -= len(got)

    def _candidates(self, entries, used, p, so_far, last, move):
        """(cost after placing it, entry index, flat order) of each unused entry that fits at
        p, cheapest first; None when the budget is spent."""
        out, seen = [], set()
        for j, e in enumerate(entries):
            bag = self._bag(e)
            if used[j] or bag in seen:
                continue
            first_in_line = not seen
            seen.add(bag)
            self.budget -= 1
            if self.budget < 0:
                return None
            got = self.fit(e, p)
            if got is None:
                continue
            if self.stay_put and first_in_line and got[0] == _NO_COST:
                # the first entry still in line fits as it is: in the first pass it stays put,
                # which keeps the search narrow (see `match`)
                return [(_add(so_far, move if j < last else _NO_COST), j, got[1])]
            out.append((_add(_add(so_far, got[0]), move if j < last else _NO_COST), j, got[1]))
        out.sort(key=lambda c: (c[0], c[1]))
        return out

    def match(self):
        """The cheapest fitting order of all foreign tensors, or None. A first pass lets an
        entry be passed over only where the first one in line does not fit as it is (so
        nothing moves that could stay, and the search stays narrow even over thousands of
        entries); if that finds nothing, a second pass lets any entry move."""
        for stay_put in (True, False):
            self.stay_put, self.memo, self.budget = stay_put, {}, _SEARCH_BUDGET
            found = self.fit(self.root, 0)
            if found is not None:
                return found[1]
        return None

    def moves(self, node=None, pos=0) -> list[str]:
        """'<entry> after <entry>' for each entry the found order took out of its place."""
        node = node or self.root
        _, _, perm = self.memo[(id(node), pos)]
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


def check_tensor(name: str, t) -> None:
    """A foreign tensor that can be a weight: dense, on a real device, floating-point and finite
    (or a BatchNorm counter: a 0-d integer)."""
    if not isinstance(t, torch.Tensor):
        raise CnncError(f"weights: '{name}' is a {type(t).__name__}, not a tensor")
    what = None
    if t.layout != torch.strided:
        what = f"a sparse tensor ({t.layout})"
    elif t.is_meta or t.device.type == "meta":
        what = "a meta tensor (it holds no values)"
    elif t.is_quantized:
        what = f"a quantized tensor ({t.dtype})"
    elif t.is_complex():
        what = f"a complex tensor ({t.dtype})"
    elif t.dtype == torch.bool:
        what = "a bool tensor"
    elif not t.is_floating_point() and not _is_counter(t):
        what = f"an integer tensor ({t.dtype})"
    elif t.is_floating_point() and not _finite(t):
        bad = t[~torch.isfinite(t)].flatten()[0].item()
        what = f"a tensor holding {bad} values"
    if what is not None:
        raise CnncError(f"weights: '{name}' is {what}; weights must be dense, finite floating-point tensors; "
                        "nothing was loaded")


def _finite(t: torch.Tensor) -> bool:
    """No NaN or infinity in t: one float64 sum (finite exactly when every value is, since no sum
    of finite float32 or float16 values overflows float64), elementwise only to say which."""
    return bool(torch.isfinite(t.sum(dtype=torch.float64))) or bool(torch.isfinite(t).all())


def remap(module: torch.nn.Module, state_dict: Mapping, moves: list | None = None) -> dict:
    """The foreign tensors under the module's names (checked; nothing is loaded). If the foreign
    order had to be permuted to fit, one line per moved entry is appended to `moves`."""
    if not isinstance(state_dict, Mapping):
        raise CnncError(f"weights must be a state_dict (a mapping of names to tensors), got {type(state_dict).__name__}")
    theirs = list(state_dict.items())
    for name, t in theirs:
        check_tensor(name, t)
    ours = list(module.state_dict().items())
    if not any(_is_counter(t) for _, t in theirs):
        ours = [(k, t) for k, t in ours if not _is_counter(t)]
    if {k for k, _ in theirs} == {k for k, _ in ours} and len(theirs) == len(ours):  # our own names: by name
        by_name = dict(theirs)
        theirs = [(k, by_name[k]) for k, _ in ours]
    tree = _name_tree([k for k, _ in theirs])
    theirs = [theirs[i] for i in _flat(tree)]  # regrouped by module (a no-op for any real state_dict)
    _check_numbered_order(theirs)
    misfit = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if not _fits(a, b)), None)
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
        found = matcher.match()
        if found is None:
            raise _misfit_error(theirs, ours, misfit, " (nor does any reordering within modules)")
        order = found
        if moves is not None:
            moves.extend(matcher.moves())
    _check_names([theirs[i][0] for i in order], [k for k, _ in ours])
    return {ok: theirs[i][1].reshape(ot.shape) for i, (ok, ot) in zip(order, ours)}


def _flat(node: "_Module") -> list:
    """The tensor indices of a name tree, module by module (iterative: trees can be deep)."""
    out, stack = [], [iter(node.entries)]
    while stack:
        e = next(stack[-1], None)
        if e is None:
            stack.pop()
        elif isinstance(e, _Module):
            stack.append(iter(e.entries))
        else:
            out.append(e)
    return out


_NUMBER = re.compile(r"[0-9]+")


def _check_numbered_order(theirs) -> None:
    """Interchangeable entries of one foreign module (the same shapes) whose names differ in one
    number must come in that number's order; otherwise the order, which is all that pairs them,
    was shuffled: refused, naming both. A numbered series is names that are numbers (`0`, `1`,
    `10`: Sequential and ModuleList children) or names whose numbers run without a gap (`conv1`,
    `conv2`; `layer1` .. `layer4`), since a name may also end in digits of its own (cnnc names
    the first instance of `relu6` `relu61`)."""
    root = _name_tree([k for k, _ in theirs])
    stack = [root]
    while stack:
        node = stack.pop()
        groups: dict = {}
        for e in node.entries:
            if isinstance(e, _Module):
                stack.append(e)
                name, label = e.name.rsplit(".", 1)[-1], e.name
                bag = tuple(sorted(fit_key(theirs[i][1], theirs[i][0]) for i in _flat(e)))
            else:
                label = theirs[e][0]
                name, bag = label.rsplit(".", 1)[-1], (fit_key(theirs[e][1], label),)
            numbers = tuple(int(n) for n in _NUMBER.findall(name))
            for j in range(len(numbers)):  # entries whose names differ in the j-th number only
                key = (bag, _NUMBER.sub("#", name), j, numbers[:j] + numbers[j + 1:])
                groups.setdefault(key, []).append((numbers[j], label))
        for (_, pattern, _, _), seen in groups.items():
            numbers = sorted({n for n, _ in seen})
            if pattern != "#" and numbers != list(range(numbers[0], numbers[0] + len(numbers))):
                continue  # not a numbered series: `relu61` (a relu6's first) beside `relu1`
            for (a, label_a), (b, label_b) in zip(seen, seen[1:]):
                if b < a:
                    raise CnncError(f"weights are out of order: '{label_a}' is listed before '{label_b}', and both fit "
                                    "the same places, so which goes where cannot be told (a state_dict lists tensors "
                                    "as the model registers them; this one was shuffled or sorted); nothing was loaded")


def _check_names(theirs: list, ours: list) -> None:
    """Pairs whose names contradict each other: where the two parents of a foreign and our module
    (or tensor) have the same set of child names, the names must be equal."""
    kids_theirs, kids_ours = _children(theirs), _children(ours)
    for a, b in zip(theirs, ours):
        pa, pb = a.split("."), b.split(".")
        for k in range(1, min(len(pa), len(pb)) + 1):
            name_a, name_b = pa[-k], pb[-k]
            parent_a, parent_b = ".".join(pa[:-k]), ".".join(pb[:-k])
            if name_a != name_b and kids_theirs.get(parent_a) == kids_ours.get(parent_b):
                raise CnncError(f"weights contradict their names: '{a}' would load into '{b}', but both sides have "
                                f"'{name_a}' and '{name_b}' side by side (shuffled or swapped entries?); nothing was "
                                "loaded")


def _children(keys) -> dict:
    """dotted prefix -> frozenset of the names directly under it."""
    out: dict = {}
    for key in keys:
        parts = key.split(".")
        for k in range(len(parts)):
            out.setdefault(".".join(parts[:k]), set()).add(parts[k])
    return {p: frozenset(v) for p, v in out.items()}


def _misfit_error(theirs, ours, i, why) -> CnncError:
    (tk, tt), (ok, ot) = theirs[i], ours[i]
    if fit_key(tt) == fit_key(ot):  # the shapes fit, the names' roles do not
        why = f" (a {tk.rsplit('.', 1)[-1]} where a {ok.rsplit('.', 1)[-1]} belongs){why}"
    return CnncError(f"weights do not fit: tensor #{i} '{tk}' {_shape(tt)} in the weights, "
                     f"'{ok}' {_shape(ot)} in the module{why}; nothing was loaded")


def remapped_state(module: torch.nn.Module, state_dict: Mapping, moves: list | None = None) -> dict:
    """The module's whole state_dict with the foreign tensors in place (`remap`; counters the
    foreign dict lacks keep the module's values). Nothing is loaded."""
    full = dict(module.state_dict())
    full.update(remap(module, state_dict, moves))
    return full


def import_weights(module: torch.nn.Module, state_dict: Mapping) -> torch.nn.Module:
    """Load a foreign state_dict into `module` by structural order and shape; returns the module.
    Warns (ReorderedWeights) when entries had to be matched out of the state_dict's order. All or
    nothing: after any error every parameter and buffer is as it was."""
    moves: list[str] = []
    _load_all_or_nothing(module, remapped_state(module, state_dict, moves))
    if moves:
        warnings.warn(ReorderedWeights(describe_moves(moves)), stacklevel=2)
    return module


def _load_all_or_nothing(module: torch.nn.Module, state: Mapping, strict: bool = True) -> None:
    """module.load_state_dict(state); if it fails midway, every parameter and buffer is put back."""
    current = module.state_dict(keep_vars=True)
    saved = {k: t.detach().clone() for k, t in current.items()}
    try:
        module.load_state_dict(state, strict=strict)
    except BaseException:
        with torch.no_grad():
            for k, t in current.items():
                t.copy_(saved[k])
        raise


@dataclass(frozen=True)
class LoadReport:
    """What `load_matching` did, by state_dict key: `loaded` the keys taken from the weights;
    `skipped` (key, shape in the weights, shape in the module) for keys on both sides whose shapes
    differ (a new head: `fc.weight` [1000, 512] against [10, 512]); `missing` the module's keys the
    weights lack (they keep their values); `unexpected` the weights' keys the module lacks (ignored)."""

    loaded: tuple = ()
    skipped: tuple = ()
    missing: tuple = ()
    unexpected: tuple = ()

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} of the module's {len(self.loaded) + len(self.skipped) + len(self.missing)} "
                 f"tensors"]
        lines += [f"skipped '{k}': {_dims(a)} in the weights, {_dims(b)} in the module" for k, a, b in self.skipped]
        lines += [f"missing '{k}': not in the weights (keeps its value)" for k in self.missing]
        lines += [f"unexpected '{k}': not in the module (ignored)" for k in self.unexpected]
        return "\n".join(lines)


def load_matching(module: torch.nn.Module, state_dict: Mapping, skip_mismatched: bool = True) -> LoadReport:
    """Load the tensors of a state_dict whose keys are the module's own (a reference state_dict
    into the same spec built with another `classes` or another head), pairing by key; returns
    the LoadReport. Keys on both sides load when their shapes fit (`fit_key`: a 1x1 convolution
    weight fits the Linear weight of its numbers); keys whose shapes differ are skipped and
    reported, or, with `skip_mismatched=False`, refused (CnncError naming them all). BatchNorm
    counters the weights lack are not reported missing (older checkpoints have none). Every
    tensor is checked first (`check_tensor`), and loading is all or nothing.
    For a state_dict named otherwise (a foreign model's names), see `import_weights`, which
    pairs by structure."""
    if not isinstance(state_dict, Mapping):
        raise CnncError(f"weights must be a state_dict (a mapping of names to tensors), got {type(state_dict).__name__}")
    for name, t in state_dict.items():
        check_tensor(name, t)
    ours = module.state_dict()
    if not set(state_dict) & set(ours):
        first_theirs, first_ours = next(iter(state_dict), None), next(iter(ours), None)
        raise CnncError(f"weights: none of the {len(state_dict)} keys is a key of the module (the weights' first "
                        f"is '{first_theirs}', the module's '{first_ours}'); load_weights pairs tensors by name: "
                        "for a state_dict named otherwise use import_weights, which pairs them by structure; "
                        "nothing was loaded")
    counters = any(_is_counter(t) for t in state_dict.values())
    state, loaded, skipped = {}, [], []
    for key, t in state_dict.items():
        if key not in ours:
            continue
        mine = ours[key]
        if fit_key(t) == fit_key(mine) and _is_counter(t) == _is_counter(mine):
            state[key] = t.reshape(mine.shape)
            loaded.append(key)
        else:
            skipped.append((key, tuple(t.shape), tuple(mine.shape)))
    if skipped and not skip_mismatched:
        listed = "; ".join(f"'{k}' {_dims(a)} in the weights, {_dims(b)} in the module" for k, a, b in skipped)
        raise CnncError(f"weights do not fit: {len(skipped)} tensor{'s' if len(skipped) > 1 else ''} of other "
                        f"shapes: {listed}; nothing was loaded (skip_mismatched=True loads the others)")
    missing = tuple(k for k, t in ours.items()
                    if k not in state_dict and (counters or not _is_counter(t)))
    unexpected = tuple(k for k in state_dict if k not in ours)
    _load_all_or_nothing(module, state, strict=False)
    return LoadReport(tuple(loaded), tuple(skipped), missing, unexpected)


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
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise CnncError(f"cannot read weights '{path}': not a regular file (a device, FIFO or socket)")
        if zipfile.is_zipfile(path):  # torch.load does not check the archive's checksums
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                raise CnncError(f"cannot read weights '{path}': the archive is corrupted (the checksum of '{bad}' "
                                "does not match)")
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
    except CnncError:
        raise
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
