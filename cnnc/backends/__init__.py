"""The back ends: what cnnc makes from a (fused) Graph.

  summary.py    the per-layer table (`cnnc summary`, `cnnc.summary`)
  render.py     the Graphviz picture (`cnnc render`), drawn per the table in dot_style.py
  codegen.py    Python source of a torch.nn.Module, emitted per the op table EMIT
  runtime.py    the layers generated modules use beside torch's (imported by generated code)
  weights.py    foreign state_dicts mapped onto generated modules

summary and render import no torch; codegen's output, runtime and weights need it.
"""
