"""The numba-cuda backend: a final Program becomes `@cuda.jit` kernels and a host function that
launches them (fused elementwise kernels, tiled GEMMs, per-step loops or persistent whole-loop
kernels). `factory(prog, options)` gives the runner the registry expects; `generate_source(prog,
dtype)` gives the module's text. Numba is imported only when code is loaded or run.
"""

from __future__ import annotations

from .codegen import generate, generate_source
from .errors import CudaBackendError, CudaCompileError, CudaUnavailableError
from .runner import factory

__all__ = ["CudaBackendError", "CudaCompileError", "CudaUnavailableError", "factory", "generate", "generate_source"]
