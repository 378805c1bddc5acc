"""Stage 1, the front end: spec text -> AST with source locations.

  grammar.lark  the language's grammar (LALR)
  ast.py        the AST: frozen dataclasses, each with its Loc; `dump_ast` (--emit ast)
  parser.py     text -> AST (Lark), parse errors as located CnncErrors
  loader.py     a spec file and its imports -> one Program

Imports no torch and nothing of the later stages.
"""
