"""Inference as CUDA graph replays: `cnnc.compile(spec, cuda_graphs=True)`, or `CUDAGraphed(model)`.

A generated module's forward is many small launches, each with host work (Python, torch's
dispatcher, Triton's launcher); at batch 1 the host is the bottleneck. A CUDA graph records the
launches of one forward once and replays them with one call, no host work per kernel.

    model = CUDAGraphed(net.cuda().eval())      # or cnnc.compile(spec, fused=True, cuda_graphs=True)
    y = model(x)                                 # first call per input signature: warm up, capture
    y = model(x)                                 # later calls: copy x in, replay, return the output

What it does, per input signature (shapes, strides, dtypes, device of the inputs):
* warm-up: `warmup` eager forwards on a side stream, so that everything that happens once (Triton
  autotuning and compiles, cuDNN's algorithm search, cnnc's per-layer dispatch decision, its cached
  filter re-layouts) happens before capture;
* capture: one forward on static input buffers, recorded into a graph (torch.cuda.graph);
* replay: the inputs are copied into the static buffers and the graph replayed.

Limits: eval mode and no autograd (a graph of a training step would need its backward too);
static shapes (a new signature is captured anew, and each graph keeps its own memory); the
outputs are the graph's static buffers, which the next call with the same signature overwrites
(clone what you keep); nothing in the forward may synchronize with the host or depend on data
(no `.item()`, no data-dependent shapes); weights must not change after capture (cnnc computes
the filters' re-layouts, and may fold BatchNorm, once per weight version, outside the graph,
which replays what it recorded): after loading or changing weights, call `reset()`.
For cnnc modules, the kernel policy's dispatch_timing "auto" already decides by device time
while a graph is captured; `cnnc.compile(..., cuda_graphs=True)` sets it to "device" so the
warm-up decides the same way. The torch.compile equivalent is `torch.compile(model,
mode="reduce-overhead")` (CUDA graph trees over Inductor's code).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils import _pytree as pytree


class CUDAGraphed(nn.Module):
    """`module` run as CUDA graph replays (module docstring). Its state_dict is the module's,
    under the same names; `self.module` is the module itself."""

    def __init__(self, module: nn.Module, warmup: int = 3):
        super().__init__()
        if warmup < 1:
            raise ValueError(f"warmup: at least one eager forward must come before capture, got {warmup}")
        self.module = module
        self.warmup = warmup
        self._graphs: dict = {}  # input signature -> (graph, static inputs, static output tree)

    def forward(self, *inputs):
        if self.training or self.module.training:
            raise RuntimeError("CUDAGraphed: eval mode only (call .eval()); a training step is not captured")
        if not all(isinstance(t, torch.Tensor) and t.is_cuda for t in inputs):
            raise ValueError("CUDAGraphed: every input must be a CUDA tensor")
        signature = tuple((t.shape, t.stride(), t.dtype, t.device) for t in inputs)
        entry = self._graphs.get(signature)
        if entry is None:
            entry = self._graphs[signature] = self._capture(inputs)
        graph, static_inputs, outputs = entry
        for static, t in zip(static_inputs, inputs):
            static.copy_(t)
        self._replay(graph)
        return outputs

    def _capture(self, inputs):
        """Warm up on a side stream, then record one forward on static copies of `inputs`."""
        static_inputs = tuple(t.clone() for t in inputs)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.no_grad(), torch.cuda.stream(stream):
            for _ in range(self.warmup):
                self.module(*static_inputs)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            outputs = self.module(*static_inputs)
        if not all(isinstance(t, torch.Tensor) for t in pytree.tree_leaves(outputs)):
            raise TypeError("CUDAGraphed: the module must return tensors (or tuples, lists, dicts of them)")
        return graph, static_inputs, outputs

    def _replay(self, graph):
        graph.replay()

    # the wrapped module's state, under its own names
    def state_dict(self, *args, **kwargs):
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)

    def reset(self) -> None:
        """Drop every graph (and its memory): the next call warms up and captures again."""
        self._graphs.clear()

    def graphs(self) -> int:
        """How many graphs are held (one per input signature seen)."""
        return len(self._graphs)
