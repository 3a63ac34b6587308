"""The numba-cpu backend: a final Program becomes a generated module of `@njit` code, cached on disk.

`factory(prog, options)` gives the runner the registry expects; `generate_source(prog, dtype)`
gives the module's text. Pipeline: passes/fuse.py plans each block (fused groups, schedule) and
passes/plan.py's rules decide storage (in-place states, buffer lifetimes, zeros never stored),
codegen.py (with blocks.py, loops.py, units.py) writes `program` and its kernels from the op table in emit.py, module.py
assembles the text, common/cache.py stores and imports it, runner.py calls it (buffers from
pool.py). approx.py, kernels.py, gemm.py (over blas.py) and stepgemm.py are the helpers generated code imports;
they and runner.py import Numba, nothing else here does.
"""

from __future__ import annotations

from .openmp import quiet_threads

quiet_threads()  # before Numba or MKL loads libgomp (openmp.py)

from .errors import NumbaBackendError, NumbaCompileError  # noqa: E402
from .module import generate, generate_source  # noqa: E402
from .runner import factory  # noqa: E402


def preload() -> None:
    """Import Numba, the helpers, and Numba's typing and lowering registries (which loading even a
    cached function does on first use, about 0.5 s)."""
    from numba.core.registry import cpu_target

    from . import approx, gemm, kernels  # noqa: F401

    cpu_target.target_context.refresh()


__all__ = ["NumbaBackendError", "NumbaCompileError", "factory", "generate", "generate_source", "preload"]
