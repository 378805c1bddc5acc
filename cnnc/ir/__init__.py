"""Stage 2, the IR: a frozen dataflow graph with every shape inferred, and what makes and checks it.

  graph.py   Node, Scope, Output, Graph (frozen); `dump_ir` (--emit ir)
  ops.py     the op table: per op its signature and its shape, parameter and MAC rules
  values.py  the interpreter's run-time values (Tensor) and how they are described in errors
  irgen/     IR generation: the spec interpreter (AST -> Graph)
  verify.py  the IR verifier, run after every pass

Imports no torch and nothing of the later stages.
"""
