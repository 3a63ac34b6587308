"""The runner: loads the generated module (on first call), turns a call's arrays into the host
function's arguments, runs it, and hands outputs back (on the host, or on the device when the
inputs were device arrays). Also the runtime that generated code calls back into."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ir import ArgumentError, Program, RnncompError
from ir.dtypes import as_dtype

from ...arguments import is_device_array
from ..common import cache
from ..common.binding import Binding
from ..common.failures import error_text, frames_in, lines_in, site
from ..common.values import Generated
from .codegen import PERSISTENT_MODES, generate
from .device import (
    STATIC_SHARED_LIMIT,
    current_device_id,
    device_config,
    fix_simulated_shared_memory,
    require_cuda,
    simulator_enabled,
    to_device,
)
from .errors import CudaBackendError, CudaCompileError

OPTIONS = ("dtype", "persistent")


class Runtime:
    """Called by generated host code: decides, per loop and call, whether its persistent kernel runs."""

    def __init__(self, mode: bool | None):
        self.mode = mode
        self.broken: set[int] = set()  # persistent kernels that failed to compile (auto mode skips them)
        self.limits: dict[tuple, int] = {}  # (kernel, threads, shared bytes) -> its cooperative grid limit

    def persistent(self, kernel: Any, config: tuple[int, int, int], loop: str, *args: Any) -> bool:
        """Launch `kernel` as a cooperative grid of `config` = (blocks, threads, bytes of dynamic
        shared memory) if the device can hold that grid (a one-block kernel, without a grid sync, is
        an ordinary launch); say whether it ran (when not, the host runs the loop step by step)."""
        blocks, threads, shared = config
        if id(kernel) in self.broken:
            return False
        try:
            key = (id(kernel), threads, shared)
            if key not in self.limits:  # compiles, and asks for the shared memory, once
                self.limits[key] = cooperative_limit(kernel, threads, shared, args)
            limit = self.limits[key]
        except Exception as e:  # noqa: BLE001  (e.g. no libcudadevrt to link the grid sync against)
            why = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            if self.mode is True:
                raise CudaBackendError(
                    f"backend option persistent=True, but the persistent kernel of loop {loop} failed to compile "
                    f"or to get its shared memory: {why}"
                ) from e
            warnings.warn(
                f"rnncomp numba-cuda: the persistent kernel of loop {loop} failed to compile or to get its "
                f"shared memory ({why}); running the loop step by step instead",
                RuntimeWarning,
                stacklevel=2,
            )
            self.broken.add(id(kernel))
            return False
        if blocks <= limit:
            kernel[blocks, threads, 0, shared](*args)
            return True
        if self.mode is True and blocks == 1:  # a one-block kernel: the block itself does not fit an SM
            raise CudaBackendError(
                f"backend option persistent=True, but the persistent kernel of loop {loop} is one block of {threads} "
                f"threads with {shared} bytes of dynamic shared memory, and the device cannot run such a block "
                "(too few registers or too little shared memory per SM); use persistent=None to fall back to one "
                "launch per step"
            )
        if self.mode is True:
            raise CudaBackendError(
                f"backend option persistent=True, but the persistent kernel of loop {loop} needs a cooperative "
                f"grid of {blocks} blocks of {threads} threads, and the device runs at most {limit} such blocks "
                "at once (max_cooperative_grid_blocks); use persistent=None to fall back to one launch per step"
            )
        return False


def cooperative_limit(kernel: Any, threads: int, shared: int, args: tuple) -> int:
    """How many blocks of `threads` threads of `kernel`, each with `shared` bytes of dynamic shared
    memory, a cooperative launch may have (1 in the simulator). Beyond 48 KB a kernel must ask for
    its dynamic shared memory first (CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)."""
    if simulator_enabled():
        return kernel.overloads[None].max_cooperative_grid_blocks(threads)
    compiled = kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))
    if shared > STATIC_SHARED_LIMIT:
        from numba.cuda.cudadrv.driver import binding, driver

        cufunc = compiled._codelibrary.get_cufunc()
        attr = binding.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        driver.cuKernelSetAttribute(attr, shared, cufunc.handle, cufunc.device.id)
    return compiled.max_cooperative_grid_blocks(threads, shared)


class Runner:
    """`runner(arrays, symbols) -> outputs` for one program; `.source` shows the generated module."""

    def __init__(self, prog: Program, gen: Generated, mode: bool | None, options: dict[str, Any]):
        self.prog, self.gen, self.options = prog, gen, options
        self.runtime = Runtime(mode)
        self.types = {n.name: n.type for n in prog.inputs}
        self.binding = Binding(prog)
        self.path: Path | None = None
        self.entry: cache.Entry | None = None
        self._fn: Any = None
        self._consts: dict[str, Any] = {}  # constant arrays, copied to the device once
        self.ready = False  # its kernels compiled (or loaded) once

    @property
    def source(self) -> str:
        return self.gen.source

    def _load(self) -> Any:
        if self._fn is None:
            require_cuda()
            if simulator_enabled():
                fix_simulated_shared_memory()
            self._use(cache.load(self.gen.source, self.options, backend="numba_cuda"))
        return self._fn

    def _use(self, entry: cache.Entry) -> None:
        """Call the code of `entry` (the cached module, or the same code compiled in memory)."""
        self.entry, self.path, self._fn = entry, entry.path, getattr(entry.module, self.gen.function)

    def arguments(self, arrays: dict[str, Any], symbols: dict[str, int]) -> list[Any]:
        from numba import cuda

        env = self.binding.env(arrays, symbols)
        device = current_device_id()
        args: list[Any] = [self.runtime]
        for a in self.gen.args:
            if a.kind == "input":
                args.append(to_device(a.key, arrays[a.key], self.types[a.key].dtype.numpy, device))  # type: ignore[union-attr]
            elif a.kind == "dim":
                args.append(self.binding.dim(a.key, env))
            elif a.kind == "count":
                args.append(self.binding.count(a.key, env))
            else:
                if a.name not in self._consts:
                    self._consts[a.name] = cuda.to_device(a.key)
                args.append(self._consts[a.name])
        return args

    def __call__(self, arrays: dict[str, Any], symbols: dict[str, int]) -> dict[str, Any]:
        fn = self._load()
        args = self.arguments(arrays, symbols)
        try:
            out = self._run(fn, args)
        except RnncompError:
            raise
        except Exception as e:  # noqa: BLE001  (a Numba error, or a simulated kernel's exception)
            raise self._error(e) from e
        keep = any(is_device_array(arrays[n]) for n, t in self.types.items() if n in arrays and t.dtype.is_float)  # type: ignore[union-attr]
        return {k: (v if keep else v.copy_to_host()) for k, v in zip(self.gen.outputs, out)}

    def _run(self, fn: Any, args: list[Any]) -> Any:
        """`fn(*args)`, its kernels compiled (or loaded from Numba's cache) on the first launch; if
        Numba's cache files fail it (unreadable, or a full disk), the same code compiled in memory."""
        assert self.entry is not None
        if self.ready:
            return fn(*args)
        try:
            out = fn(*args)
        except Exception as e:  # noqa: BLE001
            if self.entry.in_memory or not cache.caused_by_cache(e):
                raise
            self._use(self.entry.without_cache(e))
            out = self._fn(*args)
        self.entry.seal()
        self.ready = True
        return out

    def pad_steps(self, v: Any, T: int) -> Any:
        """A per-step output of max(lengths) steps, padded with zero steps to T, where it lies."""
        if not is_device_array(v):
            padded = np.zeros((T,) + v.shape[1:], v.dtype)
            padded[: v.shape[0]] = v
            return padded
        from numba import cuda

        out = cuda.device_array((T,) + tuple(v.shape[1:]), v.dtype)
        n = v.shape[0]
        if n:
            out[:n].copy_to_device(v)
        out[n:].copy_to_device(np.zeros((T - n,) + tuple(v.shape[1:]), v.dtype))
        return out

    def _error(self, e: Exception) -> CudaCompileError:
        text = error_text(e)
        lines = frames_in(e, self.path) + lines_in(text, self.path) if self.path else []
        what, where = site(self.gen.owners, self.path, lines[::-1])  # the innermost frame first
        short = "\n".join(text.strip().splitlines()[:12])
        return CudaCompileError(
            f"numba-cuda: {what} of program {self.prog.name!r} failed ({where}): {type(e).__name__}: {short}"
        )


def factory(prog: Program, options: dict[str, Any]) -> Runner:
    """The registry's entry point: generate the module for `prog` (loaded on the first call)."""
    unknown = sorted(set(options) - set(OPTIONS) - {"denormals"})  # denormals: always "keep" (compile checks)
    if unknown:
        raise ArgumentError(
            f"argument 'backend_options': unknown option {unknown[0]!r} for numba-cuda; it takes {list(OPTIONS)[1:]}"
        )
    mode = options.get("persistent")
    if mode not in PERSISTENT_MODES:
        raise ArgumentError(f"argument 'backend_options': persistent must be True, False or None (auto), got {mode!r}")
    dtype = as_dtype(options.get("dtype", "float32"))
    gen = generate(prog, dtype, device_config(), mode)
    return Runner(prog, gen, mode, {"dtype": dtype.value, "persistent": repr(mode)})
