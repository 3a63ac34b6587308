"""Backends by name. A backend turns a final Program into a runner `f(arrays, symbols) -> outputs`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ir import ArgumentError, Program

Runner = Callable[[dict[str, Any], dict[str, int]], dict[str, Any]]


def _numpy(prog: Program, options: dict[str, Any]) -> Runner:
    from .numpy_interp import run_program

    return lambda arrays, symbols: run_program(prog, arrays, symbols)


def _numba_cpu(prog: Program, options: dict[str, Any]) -> Runner:
    from .numba_cpu import factory

    return factory(prog, options)


def _numba_cuda(prog: Program, options: dict[str, Any]) -> Runner:
    from .numba_cuda import factory

    return factory(prog, options)


BACKENDS: dict[str, Callable[[Program, dict[str, Any]], Runner]] = {
    "numpy": _numpy,
    "numba-cpu": _numba_cpu,
    "numba-cuda": _numba_cuda,
}
DEVICE_ARRAYS = frozenset({"numba-cuda"})  # backends whose runners take device arrays and keep outputs there


def compile_ahead(name: str, prog: Program, options: dict[str, Any]) -> Any:
    """Start compiling the module backend `name` would build for `prog` in a child process (numba-cpu:
    numba_cpu/ahead.py); a handle whose `join()` the caller awaits before building the runner, or None
    (another backend, or off)."""
    if name != "numba-cpu":
        return None
    from .numba_cpu.ahead import compile_ahead as start

    return start(prog, options)


def device_ops(name: str) -> Any:
    """The array operations (rnncomp.array_ops) a device-array backend's training glue runs on the device."""
    if name not in DEVICE_ARRAYS:
        raise ArgumentError(f"backend {name!r} runs on host arrays (device arrays: backend='numba-cuda')")
    from .numba_cuda.device_ops import DEVICE

    return DEVICE


def synchronize(name: str) -> None:
    """Wait until the work a backend has launched is done (a device backend's calls return early),
    so that a timing of its calls is a timing of the work (rnncomp.autotune)."""
    if name in DEVICE_ARRAYS:
        from numba import cuda

        cuda.synchronize()


def preload(name: str) -> None:
    """Import a backend's compiler stack now (Numba and its typing registries: about 0.8 s) rather
    than on the first call, e.g. at program start-up or before timing a compile."""
    get_backend(name)
    if name == "numba-cpu":
        from .numba_cpu import preload as load

        load()


DEFAULT_BACKEND = "numba-cpu"


def default_backend() -> str:
    """The backend `rc.compile` uses when none is named: `RNNCOMP_BACKEND` if set, else numba-cpu."""
    name = os.environ.get("RNNCOMP_BACKEND", "").strip() or DEFAULT_BACKEND
    if name not in BACKENDS:
        raise ArgumentError(
            f"environment variable RNNCOMP_BACKEND: unknown backend {name!r}; available: {sorted(BACKENDS)}"
        )
    return name


def get_backend(name: str) -> Callable[[Program, dict[str, Any]], Runner]:
    if name not in BACKENDS:
        raise ArgumentError(f"argument 'backend': unknown backend {name!r}; available: {sorted(BACKENDS)}")
    return BACKENDS[name]
