"""fuse_residual_add: add(fused:conv(x), r)  ==>  fused:conv(x, r, residual=true).

The skip connection of a residual block is added in the conv's epilogue while the accumulator is
still in registers, saving one full read and write of the activation.
Fires when one input of an `add` is a conv or fused conv with exactly one user (the add), no
activation yet (the add must come before it) and no residual already, and the other input has
exactly the add's shape, as does the conv (no broadcasting: the kernel reads the residual elementwise).
If both inputs qualify, the later one (the main path, computed last) absorbs the add.
"""
from __future__ import annotations

from cnnc.ir.graph import Graph
from cnnc.ir.ops import FUSED_CONV
from .fusion_util import as_fused, fused_attrs, rewrite, single_user


def fuse_residual_add(g: Graph) -> Graph:
    users = g.users()
    replacements, removed = {}, set()
    for n in g.nodes:
        if n.op != "add":
            continue
        for conv_id, other_id in sorted(((n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])), reverse=True):
            c = g.nodes[conv_id]
            if c.op not in ("conv", FUSED_CONV) or conv_id in removed or conv_id in replacements:
                continue
            if c.op == FUSED_CONV and (c.attr("act") is not None or c.attr("residual")):
                continue
            if not single_user(g, users, conv_id) or not (c.shape == g.nodes[other_id].shape == n.shape):
                continue
            attrs = as_fused(c)
            attrs.update(residual=True, members=attrs["members"] + (n.path,))
            replacements[n.id] = (FUSED_CONV, (c.inputs[0], other_id), fused_attrs(attrs), c.path, c.loc)
            removed.add(conv_id)
            break
    return rewrite(g, replacements, removed) if replacements else g
