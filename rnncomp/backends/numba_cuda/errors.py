"""Errors of the numba-cuda backend: all are RnncompErrors, so callers catch one base class."""

from __future__ import annotations

from ir import RnncompError


class CudaBackendError(RnncompError):
    """The numba-cuda backend cannot run a program (no GPU, a kernel that does not fit, an unknown option)."""


class CudaUnavailableError(CudaBackendError):
    """Neither a CUDA GPU nor Numba's CUDA simulator is available."""


class CudaCompileError(CudaBackendError):
    """Numba failed to compile or run generated code; names the IR node and the generated file."""
