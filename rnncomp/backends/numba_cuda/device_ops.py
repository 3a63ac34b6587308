"""rnncomp.array_ops's operations on device arrays, for training calls whose arrays live on the GPU.

The glue between segment programs (joining outputs, summing gradients, masks, zeros, the loss)
runs as small grid-stride kernels, so vjp and value_and_grad on device arrays copy nothing to or
from the host but the lengths and the loss. Every array here is C-contiguous (program outputs,
and arguments adopted once at the start of a call).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ir import ArgumentError

from ...arguments import device_dtype, is_device_array
from .device import current_device_id, to_device

THREADS = 128
MAX_BLOCKS = 1024
cuda: Any = None  # numba.cuda, bound on first use; a module global, which the simulator swaps in kernels


@functools.cache
def _kernels() -> dict[str, Any]:
    """The kernels, compiled on first use (numba is imported only when the backend runs)."""
    global cuda
    from numba import cuda

    @cuda.jit
    def fill(out, value):
        for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
            out[i] = value

    @cuda.jit
    def add(a, b, out):
        for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
            out[i] = a[i] + b[i]

    @cuda.jit
    def add_into(dst, src):
        for i in range(cuda.grid(1), dst.shape[0], cuda.gridsize(1)):
            dst[i] += src[i]

    @cuda.jit
    def mask_rows(a, keep, out):  # a, out: (rows, n); keep: (rows,) of 0/1
        n = a.shape[1]
        for i in range(cuda.grid(1), a.shape[0] * n, cuda.gridsize(1)):
            out[i // n, i % n] = a[i // n, i % n] * keep[i // n]

    @cuda.jit
    def total(a, out, zero):  # out: one element, zeroed; each thread adds its partial sum once
        acc = zero  # a zero of a's type (a literal would make an f32 sum f64)
        for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            acc += a[i]
        cuda.atomic.add(out, 0, acc)

    return {"fill": fill, "add": add, "add_into": add_into, "mask_rows": mask_rows, "total": total}


def _grid(n: int) -> tuple[int, int]:
    return (max(1, min(MAX_BLOCKS, -(-n // THREADS))), THREADS)


def _flat(a: Any) -> Any:
    return a.reshape(a.size) if a.ndim != 1 else a


def _empty(shape: tuple, dtype: np.dtype) -> Any:
    from numba import cuda

    return cuda.device_array(shape, dtype)


class DeviceOps:
    """Device arrays (Numba's; anything with `__cuda_array_interface__` is adopted as one)."""

    device = True

    def adopt(self, name: str, a: Any) -> Any:
        """A Numba device array for argument `name`: host arrays are copied over once, foreign
        device arrays (CuPy, PyTorch) viewed in place."""
        return to_device(name, a, device_dtype(a) if is_device_array(a) else np.dtype(a.dtype), current_device_id())

    def filled(self, shape: tuple, dtype: np.dtype, value: float) -> Any:
        """A new device array of `value`s."""
        out = _empty(shape, dtype)
        if out.size:
            _kernels()["fill"][_grid(out.size)](_flat(out), np.dtype(dtype).type(value))
        return out

    def zeros(self, shape: tuple, dtype: np.dtype) -> Any:
        return self.filled(shape, dtype, 0)

    def zeros_like(self, a: Any) -> Any:
        return self.filled(a.shape, a.dtype, 0)

    def ones_like(self, a: Any) -> Any:
        return self.filled(a.shape, a.dtype, 1)

    def add(self, a: Any, b: Any) -> Any:
        out = _empty(a.shape, a.dtype)
        if out.size:
            _kernels()["add"][_grid(out.size)](_flat(a), _flat(b), _flat(out))
        return out

    def add_into(self, dst: Any, start: int, src: Any) -> None:
        if src.size:
            part = dst[start : start + src.shape[0]]
            _kernels()["add_into"][_grid(src.size)](_flat(part), _flat(src))

    def put(self, dst: Any, start: int, src: Any) -> None:
        if src.size:
            dst[start : start + src.shape[0]].copy_to_device(src)

    def mask_rows(self, a: Any, keep: np.ndarray) -> Any:
        out = _empty(a.shape, a.dtype)
        if a.size:
            rows = a.shape[0]
            k = self.adopt("keep", np.asarray(keep, dtype=a.dtype))
            _kernels()["mask_rows"][_grid(a.size)](
                a.reshape(rows, a.size // rows), k, out.reshape(rows, a.size // rows)
            )
        return out

    def total(self, a: Any) -> Any:
        """The sum of every element, a NumPy scalar on the host (the one value that comes back)."""
        out = self.adopt("total", np.zeros(1, a.dtype))
        if a.size:
            _kernels()["total"][_grid(a.size)](_flat(a), out, np.dtype(a.dtype).type(0))
        return out.copy_to_host()[0]

    def cotangent(self, name: str, value: Any, dtype: np.dtype) -> Any:
        """A cotangent on the device: a device array of the program's dtype as it is, a host array copied over."""
        if is_device_array(value):
            got = device_dtype(value)
            if got != dtype:
                raise ArgumentError(
                    f"cotangent {name!r}: a device array of dtype {got}, but the program computes in {dtype}; "
                    "device arrays are used in place, never converted"
                )
            return self.adopt(f"cotangent {name}", value)
        return self.adopt(f"cotangent {name}", np.asarray(value, dtype=dtype))


DEVICE = DeviceOps()

__all__ = ["DEVICE", "DeviceOps"]
