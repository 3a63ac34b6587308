"""Element types: f32/f64 for values, i32/i64 for lengths and indices."""

from __future__ import annotations

import enum

import numpy as np

from .errors import VerifyError


class DType(enum.Enum):
    f32 = "f32"
    f64 = "f64"
    i32 = "i32"
    i64 = "i64"

    @property
    def numpy(self) -> np.dtype:
        return _NUMPY[self]

    @property
    def is_float(self) -> bool:
        return self in (DType.f32, DType.f64)

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"DType.{self.value}"


_NUMPY = {d: np.dtype(n) for d, n in zip(DType, ("float32", "float64", "int32", "int64"))}  # read per call: no lookups
_ALIASES = {"float32": DType.f32, "float64": DType.f64, "int32": DType.i32, "int64": DType.i64}


def as_dtype(x: object) -> DType:
    """Accept a DType, its short name ('f32'), a NumPy name ('float32') or a NumPy dtype."""
    if isinstance(x, DType):
        return x
    if isinstance(x, str):
        if x in DType.__members__:
            return DType[x]
        if x in _ALIASES:
            return _ALIASES[x]
    else:
        try:
            name = np.dtype(x).name  # type: ignore[call-overload]
        except TypeError:
            name = None
        if name in _ALIASES:
            return _ALIASES[name]
    raise VerifyError(f"unknown dtype {x!r}: expected one of f32, f64, i32, i64 (or float32, float64, int32, int64)")
