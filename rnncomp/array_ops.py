"""The few array operations the training glue (rnncomp.training) does between program calls.

Segment outputs are joined, gradients of segments summed, masks applied and zeros made: on the
host with NumPy, or, when a training call's arrays are device arrays, by a backend's device
implementation of the same methods (backends/numba_cuda/device_ops.py), so that nothing leaves the
GPU. A runner that can do this says so with an `array_ops` attribute.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ir import ArgumentError

from .arguments import float_array, is_device_array


class HostOps:
    """NumPy arrays (the default)."""

    device = False

    def adopt(self, name: str, a: Any) -> Any:
        """An argument as this side keeps it (host arrays are already bound and converted)."""
        return a

    def zeros(self, shape: tuple, dtype: np.dtype) -> Any:
        return np.zeros(shape, dtype)

    def zeros_like(self, a: Any) -> Any:
        return np.zeros_like(a)

    def ones_like(self, a: Any) -> Any:
        return np.ones_like(a)

    def add(self, a: Any, b: Any) -> Any:
        """a + b, a new array."""
        return a + b

    def add_into(self, dst: Any, start: int, src: Any) -> None:
        """dst[start : start + len(src)] += src."""
        dst[start : start + src.shape[0]] += src

    def put(self, dst: Any, start: int, src: Any) -> None:
        """dst[start : start + len(src)] = src."""
        dst[start : start + src.shape[0]] = src

    def mask_rows(self, a: Any, keep: np.ndarray) -> Any:
        """a with the rows (axis 0) where `keep` is False zeroed, a new array."""
        return a * keep.reshape((-1,) + (1,) * (a.ndim - 1)).astype(a.dtype)

    def total(self, a: Any) -> Any:
        """The sum of every element (a NumPy scalar of a's dtype)."""
        return a.sum()

    def cotangent(self, name: str, value: Any, dtype: np.dtype) -> Any:
        """A cotangent as the backward takes it."""
        if is_device_array(value):
            raise ArgumentError(
                f"cotangent {name!r}: a device (GPU) array, but the forward ran on host arrays; pass a host array"
            )
        return float_array(f"cotangent {name!r}", value).astype(dtype, copy=False)


HOST = HostOps()

__all__ = ["HOST", "HostOps"]
