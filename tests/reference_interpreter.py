"""An independent reference for the differential tests: evaluates a cnnc Graph (the IR, before
fusion) node by node in float64, with torch.nn.functional and plain tensor arithmetic. It shares
nothing with code generation or the runtime layers: it reads the IR's ops and attributes and the
parameters by instance path, so a bug in codegen.py, runtime.py or the fusion passes shows up as
a difference.

    out = run(graph, params, inputs, train=False)

`params` maps an instance path to that node's tensors (`{"weight": ..., "bias": ...,
"running_mean": ..., "running_var": ...}`); `inputs` are the network's inputs in order. Returns
{output name: tensor}. In train mode BatchNorm normalises with the batch's statistics (and
dropout and droppath must have p = 0: they are random).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnc.ir.ops import conv_padding

ACTIVATIONS = {  # by their formulas
    "relu": lambda x: torch.where(x < 0, 0.0, x),
    "relu6": lambda x: torch.where(x < 0, 0.0, torch.where(x > 6, 6.0, x)),
    "silu": lambda x: x * torch.sigmoid(x),
    "gelu": lambda x: 0.5 * x * (1.0 + torch.erf(x / 2.0 ** 0.5)),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "hardswish": lambda x: x * torch.clamp(x + 3.0, 0.0, 6.0) / 6.0,
    "hardsigmoid": lambda x: torch.clamp(x + 3.0, 0.0, 6.0) / 6.0,
}


def run(graph, params: dict, inputs, train: bool = False) -> dict:
    values = {}
    it = iter(inputs)
    for n in graph.nodes:
        ins = [values[i] for i in n.inputs]
        a = dict(n.attrs)
        p = params.get(n.path, {})
        op = n.op
        if op == "input":
            y = next(it).double()
        elif op == "conv":
            y = F.conv2d(ins[0], p["weight"], p.get("bias"), a["stride"], conv_padding(n.attrs), a["dilation"],
                         a["groups"])
        elif op == "batchnorm":
            x = ins[0]
            dims = [0] + list(range(2, x.dim()))
            shape = (1, -1) + (1,) * (x.dim() - 2)
            if train:
                mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
            else:
                mean, var = p["running_mean"].view(shape), p["running_var"].view(shape)
            y = (x - mean) / torch.sqrt(var + a["eps"]) * p["weight"].view(shape) + p["bias"].view(shape)
        elif op == "layernorm":
            x = ins[0]
            shape = (1, -1) + (1,) * (x.dim() - 2)
            mean = x.mean(1, keepdim=True)
            var = ((x - mean) ** 2).mean(1, keepdim=True)
            y = (x - mean) / torch.sqrt(var + a["eps"]) * p["weight"].view(shape) + p["bias"].view(shape)
        elif op == "lrn":
            y = F.local_response_norm(ins[0], a["size"], a["alpha"], a["beta"], a["k"])
        elif op in ACTIVATIONS:
            y = ACTIVATIONS[op](ins[0])
        elif op == "softmax":
            y = torch.softmax(ins[0], 1)
        elif op in ("identity",):
            y = ins[0]
        elif op in ("dropout", "droppath"):
            if train and a["p"] > 0:
                raise ValueError(f"{op} with p > 0 is random in training; the reference cannot follow it")
            y = ins[0]
        elif op == "maxpool":
            y = F.max_pool2d(ins[0], a["kernel"], a["stride"] or a["kernel"], a["padding"], ceil_mode=a["ceil_mode"])
        elif op == "avgpool":
            y = F.avg_pool2d(ins[0], a["kernel"], a["stride"] or a["kernel"], a["padding"], ceil_mode=a["ceil_mode"],
                             count_include_pad=a["count_include_pad"])
        elif op == "global_avgpool":
            y = ins[0].mean((2, 3), keepdim=True)
        elif op == "global_maxpool":
            y = ins[0].amax((2, 3), keepdim=True)
        elif op == "adaptive_avgpool":
            y = F.adaptive_avg_pool2d(ins[0], a["size"])
        elif op == "flatten":
            y = ins[0].flatten(1)
        elif op == "linear":
            x = ins[0]
            y = torch.einsum("nc...,oc->no...", x, p["weight"])
            if "bias" in p:
                y = y + p["bias"].view((1, -1) + (1,) * (x.dim() - 2))
        elif op == "layerscale":
            y = ins[0] * p["weight"].reshape((1, -1) + (1,) * (ins[0].dim() - 2))
        elif op == "scale":
            y = ins[0] * a["factor"]
        elif op == "channel_shuffle":
            x, g = ins[0], a["groups"]
            per = x.shape[1] // g  # output channel j * g + i is input channel i * per + j
            y = torch.stack([x[:, i * per:(i + 1) * per] for i in range(g)], 2).flatten(1, 2)
        elif op == "zeropad":
            y = F.pad(ins[0], (a["left"], a["right"], a["top"], a["bottom"]))
        elif op == "concat":
            y = torch.cat(ins, 1)
        elif op == "add":
            y = ins[0] + ins[1]
        elif op == "sub":
            y = ins[0] - ins[1]
        elif op == "mul":
            y = ins[0] * ins[1]
        else:
            raise NotImplementedError(f"the reference interpreter has no rule for op '{op}'")
        assert tuple(y.shape[1:]) == tuple(n.shape), (n.path, op, tuple(y.shape), n.shape)
        values[n.id] = y
    return {o.name: values[o.node] for o in graph.outputs}


def params_of(graph, module, module_paths: dict) -> dict:
    """The tensors of each node of a plain (unfused) generated module, by instance path, in float64."""
    by_module: dict = {}
    state = module.state_dict()
    for key, t in state.items():
        prefix, _, leaf = key.rpartition(".")
        by_module.setdefault(prefix, {})[leaf] = t.detach().double()
    out = {}
    for n in graph.nodes:
        where = module_paths.get(n.path)
        if where in by_module:
            out[n.path] = by_module[where]
        elif where in state:  # a parameter of the enclosing module itself (layer_scale), as its weight
            out[n.path] = {"weight": state[where].detach().double()}
    return out
