"""cnnc's version (one place: the package, the generated files' headers and `cnnc --version` read it)."""

__version__ = "0.1.0"
