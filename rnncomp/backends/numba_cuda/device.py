"""The device side: is there a GPU (or the simulator), what it offers, and moving arrays onto it.

NumPy arrays are copied to the device; device arrays (Numba's, and anything with
`__cuda_array_interface__`: CuPy arrays, PyTorch CUDA tensors) are used where they lie, after a
check that they live on the device the program runs on.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ir import ArgumentError

from ...arguments import is_device_array
from .errors import CudaUnavailableError

SIMULATOR_ENV = "NUMBA_ENABLE_CUDASIM"
STATIC_SHARED_LIMIT = 48 * 1024  # bytes of static shared memory a kernel may declare (more: dynamic, on request)
# A one-block persistent kernel's threads: half an SM's 2048, so that up to 128 registers a thread fit
# the 64K-register file of an A100/H100 (tests/test_cuda_targets.py checks that the examples' do).
BLOCK_THREADS = 512


@dataclass(frozen=True)
class DeviceConfig:
    """What code generation and launches need to know about the device."""

    simulator: bool
    sm_count: int  # blocks of a persistent (cooperative) grid: one per multiprocessor
    shared_bytes: int  # static shared memory per block
    threads: int  # threads per block of a grid-stride kernel
    max_blocks: int  # blocks of a grid-stride kernel at most (it strides over the rest)
    tile: int  # GEMM tile edge (a GEMM block is tile x tile threads)
    persistent_threads: int  # threads per block of a persistent kernel
    shared_optin: int = STATIC_SHARED_LIMIT  # shared memory a block may have at most, dynamic, on request
    block_threads: int = BLOCK_THREADS  # threads of a one-block persistent kernel (0: never one block)


# The simulator runs every thread as a Python thread: few threads and blocks keep tests fast,
# while two blocks of four threads still exercise grid-stride loops and block indexing.
SIMULATED = DeviceConfig(True, 1, STATIC_SHARED_LIMIT, 4, 2, 4, 8, block_threads=8)
# Source generated where no device can be asked (e.g. `rnncomp dump` on a machine without a GPU).
NOMINAL_GPU = DeviceConfig(False, 132, STATIC_SHARED_LIMIT, 256, 4096, 16, 256, 227 * 1024)  # an H100/H200


def simulator_enabled() -> bool:
    """Whether numba.cuda is Numba's CUDA simulator (numba-cuda's config, or Numba's own CUDA target's)."""
    try:
        from numba.cuda.core import config
    except ImportError:  # the CUDA target that ships inside Numba (no numba-cuda installed)
        from numba import config
    return bool(config.ENABLE_CUDASIM)


def require_cuda() -> None:
    """Raise one clear error when there is neither a usable CUDA GPU nor the simulator."""
    from numba import cuda

    if cuda.is_available():
        return
    raise CudaUnavailableError(
        "backend 'numba-cuda': no usable CUDA GPU here (numba.cuda.is_available() is False: no NVIDIA "
        f"driver or device). To run the generated kernels in Numba's CUDA simulator instead (on the CPU; "
        f"slow, for tests with tiny sizes), set the environment variable {SIMULATOR_ENV}=1 before Python "
        "imports numba, e.g. `NUMBA_ENABLE_CUDASIM=1 python script.py`."
    )


def fix_simulated_shared_memory() -> None:
    """Make the simulator's `cuda.shared.array` thread-safe (numba-cuda 0.30 looks up and creates a
    block's array without a lock, so two threads of a block can each get their own "shared" array,
    and a tiled GEMM then reads tiles no thread wrote). Same semantics: one array per source line
    and launch."""
    from numba.cuda.simulator import kernelapi

    cls = kernelapi.FakeCUDAShared
    if getattr(cls, "_rnncomp_locked", False):
        return
    lock, original = threading.Lock(), cls.array

    def array(self, shape, dtype, alignment=None):  # noqa: ANN001  (the simulator's signature)
        if shape == 0 or alignment is not None:
            return original(self, shape, dtype, alignment)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            res = self._allocations.get(key)
            if res is None:
                dt = kernelapi.numpy_support.as_dtype(dtype) if isinstance(dtype, kernelapi.types.Type) else dtype
                res = self._allocations[key] = np.empty(shape, dt)
        return res

    cls.array = array
    cls._rnncomp_locked = True


def device_config() -> DeviceConfig:
    """The current device's config: the simulator's, the GPU's, or nominal values when there is neither."""
    if simulator_enabled():
        return SIMULATED
    from numba import cuda

    if not cuda.is_available():
        return NOMINAL_GPU
    dev = cuda.get_current_device()
    shared = min(int(dev.MAX_SHARED_MEMORY_PER_BLOCK), STATIC_SHARED_LIMIT)
    try:
        optin = max(shared, int(dev.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN))
    except Exception:  # noqa: BLE001  (a driver that does not know the attribute)
        optin = shared
    return DeviceConfig(False, int(dev.MULTIPROCESSOR_COUNT), shared, 256, 4096, 16, 256, optin)


def current_device_id() -> int:
    if simulator_enabled():
        return 0
    from numba import cuda

    return int(cuda.get_current_device().id)


def device_of(value: Any) -> int | None:
    """The ordinal of the GPU holding a device array, when it can be told (None: unknown)."""
    if simulator_enabled():
        return 0 if getattr(value, "__cuda_ndarray__", False) else _declared_device(value)
    declared = _declared_device(value)
    if declared is not None:
        return declared
    data = getattr(value, "gpu_data", None)  # a Numba device array: the context that allocated it
    try:
        return int(data.context.device.id)  # type: ignore[union-attr]
    except AttributeError:
        return None


def _declared_device(value: Any) -> int | None:
    """`tensor.device.index` (PyTorch) or `array.device.id` (CuPy)."""
    dev = getattr(value, "device", None)
    for attr in ("index", "id"):
        ordinal = getattr(dev, attr, None)
        if isinstance(ordinal, int):
            return ordinal
    return None


def to_device(name: str, value: Any, dtype: np.dtype, device: int) -> Any:
    """A kernel argument for input `name`: a device array as it is, a host array copied over."""
    from numba import cuda

    if not is_device_array(value):
        return cuda.to_device(np.ascontiguousarray(value, dtype=dtype))
    where = device_of(value)
    if where is not None and where != device:
        raise ArgumentError(
            f"argument {name!r}: a device array on GPU {where}, but the program runs on GPU {device} "
            f"(the current device); move it there first, or select GPU {where} with numba.cuda.select_device"
        )
    if getattr(value, "__cuda_ndarray__", False):
        return value
    return cuda.as_cuda_array(value)
