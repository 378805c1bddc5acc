"""Run-time values of the spec interpreter (IR generation)."""
from __future__ import annotations

from dataclasses import dataclass


def fmt_shape(shape) -> str:
    """64x56x56 (a feature map), 1000 (a vector), scalar."""
    return "x".join(str(d) for d in shape) if shape else "scalar"


@dataclass(frozen=True)
class Tensor:
    """A value that is the output of an IR node."""

    node: int
    shape: tuple

    @property
    def channels(self):
        return self.shape[0]


def describe_value(v) -> str:
    if isinstance(v, Tensor):
        return f"a tensor {fmt_shape(v.shape)}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, int):
        return f"the integer {v}"
    if isinstance(v, float):
        return f"the number {v:g}"
    if isinstance(v, str):
        return f'the string "{v}"'
    if isinstance(v, range):
        return f"a range of {len(v)}"
    if isinstance(v, (list, tuple)):
        return f"a list of {len(v)}"
    return type(v).__name__


def type_name(v) -> str:
    if isinstance(v, Tensor):
        return "tensor"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if v is None:
        return "none"
    return "list"


def is_int(v) -> bool:
    """An integer value (true and false are not numbers in the language)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def freeze(v):
    """A value as it is compared and recorded (a range as the tuple of its items)."""
    if isinstance(v, range):
        return tuple(v)
    return v
