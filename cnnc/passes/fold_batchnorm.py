"""fold_batchnorm: conv -> batchnorm  ==>  fused:conv(bn=true).

In eval mode a BatchNorm is a per-channel affine map, so it folds into the conv's epilogue as
scale = gamma / sqrt(var + eps), shift = beta - mean * scale (+ bias * scale).
Fires only when the conv's result has exactly one user, the BatchNorm, and is not a graph output
(like torch.fx's fuser: folding would change what the other users see). Inference only: in
training a BatchNorm normalises with batch statistics and must stay a separate op.
"""
from __future__ import annotations

from cnnc.ir.graph import Graph
from cnnc.ir.ops import FUSED_CONV
from .fusion_util import as_fused, fused_attrs, rewrite, single_user


def fold_batchnorm(g: Graph) -> Graph:
    users = g.users()
    replacements, removed = {}, set()
    for n in g.nodes:
        if n.op != "batchnorm" or len(n.shape) != 3:
            continue
        src = g.nodes[n.inputs[0]]
        if src.op != "conv" or not single_user(g, users, src.id):
            continue
        attrs = as_fused(src)
        attrs.update(bn=True, eps=n.attr("eps"), members=attrs["members"] + (n.path,))
        replacements[n.id] = (FUSED_CONV, src.inputs, fused_attrs(attrs), src.path, src.loc)
        removed.add(src.id)
    return rewrite(g, replacements, removed) if replacements else g
