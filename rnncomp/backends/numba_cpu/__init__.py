"""The numba-cpu backend: a final Program becomes a generated module of `@njit` code, cached on disk.

`factory(prog, options)` gives the runner the registry expects; `generate_source(prog, dtype)`
gives the module's text. Pipeline: fusion.py plans each block (fused groups, schedule), codegen.py
(with blocks.py, loops.py, units.py) writes `program` and its kernels from the op table in emit.py,
module.py assembles the text, cache.py stores and imports it, runner.py calls it. approx.py and
kernels.py are the helpers generated code imports; they and cache.py import Numba, nothing else does.
"""

from __future__ import annotations

from .errors import NumbaBackendError, NumbaCompileError
from .module import generate, generate_source
from .runner import factory

__all__ = ["NumbaBackendError", "NumbaCompileError", "factory", "generate", "generate_source"]
