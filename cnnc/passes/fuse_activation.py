"""fuse_activation: act(fused:conv(...))  ==>  fused:conv(..., act=act).

The activation is applied in the conv's epilogue. Fires for the activations the Triton kernels
implement (relu, relu6, silu, gelu, hardswish, sigmoid) when the conv (plain or fused) has exactly
one user, the activation, and has no activation yet. A plain conv becomes a fused conv.
"""
from __future__ import annotations

from cnnc.ir.graph import Graph
from cnnc.ir.ops import FUSED_CONV, KERNEL_ACTIVATIONS
from .fusion_util import as_fused, fused_attrs, rewrite, single_user


def fuse_activation(g: Graph) -> Graph:
    users = g.users()
    replacements, removed = {}, set()
    for n in g.nodes:
        if n.op not in KERNEL_ACTIVATIONS:
            continue
        c = g.nodes[n.inputs[0]]
        if c.op not in ("conv", FUSED_CONV) or not single_user(g, users, c.id):
            continue
        if c.op == FUSED_CONV and c.attr("act") is not None:
            continue
        attrs = as_fused(c)
        attrs.update(act=n.op, members=attrs["members"] + (n.path,))
        replacements[n.id] = (FUSED_CONV, c.inputs, fused_attrs(attrs), c.path, c.loc)
        removed.add(c.id)
    return rewrite(g, replacements, removed) if replacements else g
