"""TensorType: a dtype and a shape, a small frozen value."""

from __future__ import annotations

from dataclasses import dataclass

from .dtypes import DType
from .shapes import Shape, shape_str


@dataclass(frozen=True)
class TensorType:
    dtype: DType
    shape: Shape

    @property
    def rank(self) -> int:
        return len(self.shape)

    def with_shape(self, shape: Shape) -> TensorType:
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(dtype, self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}{shape_str(self.shape)}"


@dataclass(frozen=True)
class TupleType:
    """The type of a multi-result node (a Loop); `item` nodes take its parts."""

    items: tuple[TensorType, ...]

    def __str__(self) -> str:
        return "(" + ", ".join(str(t) for t in self.items) + ")"
