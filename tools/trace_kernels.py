"""What torch.compile makes of cnnc's modules on a GPU, found without one: fake CUDA tensors.

Builds a model on a fake CUDA device (FakeTensorMode: shapes, dtypes and strides, no data), names
the device (default "NVIDIA H200", for the dispatch tables), gives Triton a stand-in driver whose
target is sm_90 (so torch can analyse the kernels: which tensors each writes), and runs
torch.compile(fullgraph=True) with a backend that stops after AOTAutograd, where Inductor would
start. For each model it reports:

  frames, graph breaks   Dynamo's count (fullgraph makes a break an error)
  triton launches        `triton_kernel_wrapper_functional` nodes: the kernels Inductor would compile
                         and launch from its own code (cnnc's triton_op, `kernels.conv2d`), by name
  cloned inputs          tensors torch could not prove a kernel leaves alone (it copies them first;
                         only the outputs should be here)
  opaque cnnc ops        `cnnc_kernels::*` calls left as single ops (custom ops Inductor calls back)
  weight-only ops        ops whose inputs are all parameters or buffers (the BatchNorm fold, the
                         filter re-layouts): with freezing, Inductor folds them into constants;
                         listed by op, with the number that feed a Triton launch
  aten convolutions      the cuDNN route (`kernels.folded_conv2d`)

    python tools/trace_kernels.py [--models block mobilenet_v2 ...] [--policy dispatch=triton]
                                  [--device-name 'NVIDIA H200'] [--batch 2] [--size 64] [--out trace.json]

Models: "block" (a depthwise, a grouped and a dense FusedConv2d with BatchNorm, activations and a
residual), or catalog names (`cnnc list`, fused, needs lark). Run with TRITON_INTERPRET unset: the
interpreter's kernels are not what Inductor compiles.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Sm90Driver:
    """Enough of Triton's active driver for torch's kernel analysis (`generate_ttir`): the target."""

    def __init__(self):
        from triton.backends.compiler import GPUTarget

        self.target = GPUTarget("cuda", 90, 32)

    def get_current_target(self):
        return self.target

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0


def block(torch, runtime):
    """What generated code looks like around the kernels: depthwise (relu6, residual), grouped
    (relu) and dense (no activation) fused convs, each with a BatchNorm to fold."""

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dw = runtime.FusedConv2d(32, 32, 3, padding=1, groups=32, bias=False, bn=True, activation="relu6")
            self.grouped = runtime.FusedConv2d(32, 32, 3, padding=1, groups=8, bias=False, bn=True, activation="relu")
            self.dense = runtime.FusedConv2d(32, 16, 1, bias=False, bn=True)

        def forward(self, x):
            y = self.dw(x, x)
            return self.dense(self.grouped(y))

    return Block(), 32


def build(name, torch, runtime):
    if name == "block":
        return block(torch, runtime)
    import cnnc

    model = cnnc.compile(name, fused=True)
    return model, None


def to_fake_cuda(model, torch):
    """Replace every parameter and buffer by an empty one on CUDA (inside FakeTensorMode: a fake
    tensor). Module.to would swap them in place, which fake tensors refuse."""
    for module in model.modules():
        for table in (module._parameters, module._buffers):
            for name, t in table.items():
                if t is not None:
                    new = torch.empty_like(t, device="cuda")
                    table[name] = torch.nn.Parameter(new, t.requires_grad) if isinstance(t, torch.nn.Parameter) else new


def report_graph(gm, data_index) -> dict:
    """The counts of the module docstring, from the forward graph AOTAutograd produced; its
    placeholders are the parameters and buffers and, at `data_index`, the model's input."""
    import torch

    inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    constant = {n for i, n in enumerate(inputs) if i != data_index}
    for node in gm.graph.nodes:  # forward propagation of "depends on weights only"
        if node.op == "call_function" and node not in constant:
            deps = node.all_input_nodes
            if deps and all(d in constant for d in deps):
                constant.add(node)
    launches, clones, opaque, weight_ops, convs = collections.Counter(), [], collections.Counter(), \
        collections.Counter(), 0
    feeding = 0
    wrapper = torch.ops.higher_order.triton_kernel_wrapper_functional
    from torch._higher_order_ops.triton_kernel_wrap import kernel_side_table

    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        if node.target is wrapper:
            kernel = kernel_side_table.get_kernel(node.kwargs["kernel_idx"])
            name = getattr(getattr(kernel, "fn", kernel), "__name__", str(kernel))
            launches[name] += 1
            written = set(node.kwargs["tensors_to_clone"])
            args = node.kwargs["kwargs"]
            outputs = {k for k, v in args.items() if isinstance(v, torch.fx.Node) and v.target in (
                torch.ops.aten.empty.memory_format, torch.ops.aten.empty_strided.default, torch.ops.aten.empty_like.default,
                torch.ops.aten.empty_permuted.default, torch.ops.aten.full.default, torch.ops.aten.fill.Scalar)}
            clones += [f"{name}:{k}" for k in sorted(written - outputs)]
            feeding += sum(1 for v in args.values() if isinstance(v, torch.fx.Node) and v in constant
                           and v.op == "call_function")
        elif str(node.target).startswith("cnnc_kernels."):
            opaque[str(node.target)] += 1
        elif node in constant:
            weight_ops[str(node.target).replace("aten.", "")] += 1
        if node.target in (torch.ops.aten.convolution.default, torch.ops.aten.cudnn_convolution.default):
            convs += 1
    return {"triton_launches": dict(launches), "cloned_inputs": clones, "opaque_cnnc_ops": dict(opaque),
            "weight_only_ops": dict(weight_ops), "weight_only_into_launches": feeding, "aten_convolutions": convs,
            "nodes": len(gm.graph.nodes)}


def trace(name, args) -> dict:
    import torch
    import triton
    from torch._subclasses.fake_tensor import FakeTensorMode

    import importlib

    from cnnc.backends import runtime

    conv2d_module = importlib.import_module("cnnc.kernels.conv2d")  # (the package's `conv2d` is the function)

    triton.runtime.driver.set_active(_Sm90Driver())
    conv2d_module.DEVICE_NAMES[torch.device("cuda", 0)] = args.device_name
    torch._dynamo.reset()
    graphs, counter = [], torch._dynamo.testing.CompileCounter()

    def backend(gm, example_inputs):
        from torch._functorch.aot_autograd import aot_module_simplified

        counter(gm, example_inputs)
        data_index = next((i for i, t in enumerate(example_inputs) if t is x), None)

        def keep(fw_gm, fw_inputs):
            graphs.append((fw_gm, data_index))
            return fw_gm

        return aot_module_simplified(gm, example_inputs, fw_compiler=keep)

    dtype = getattr(torch, args.dtype)
    model, channels = build(name, torch, runtime)  # real, on the CPU
    runtime.set_kernel_policy(model, args.policy)
    model = model.to(dtype).eval()
    with FakeTensorMode(allow_non_fake_inputs=True), torch.device("cuda"):
        to_fake_cuda(model, torch)
        x = torch.empty(args.batch, channels or 3, args.size, args.size, dtype=dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            torch.compile(model, backend=backend, fullgraph=True, dynamic=False)(x)
    out = {"model": name, "frames": counter.frame_count, "graphs": len(graphs)}
    for i, (gm, data_index) in enumerate(graphs):
        out.update(report_graph(gm, data_index) if i == 0 else {f"graph{i}": report_graph(gm, data_index)})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["block"])
    p.add_argument("--policy", default="dispatch=triton",
                   help="the modules' kernel policy (default dispatch=triton: every conv the kernels take)")
    p.add_argument("--device-name", default="NVIDIA H200")
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--out", help="write the report as JSON here")
    args = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("trace_kernels: unset TRITON_INTERPRET (the interpreter's kernels are not what Inductor compiles)")
    sys.path.insert(0, REPO_ROOT)
    import torch._dynamo.testing  # noqa: F401  (CompileCounter)

    reports = []
    for name in args.models:
        report = trace(name, args)
        reports.append(report)
        print(json.dumps(report), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"policy": args.policy, "device_name": args.device_name, "reports": reports}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
