"""LLVM's optimisation level for `program` where it only joins row blocks and GEMMs.

Such a `program` runs once per call: it sets up buffers and views, calls the GEMMs and the row
blocks (compiled at Numba's level, -O3) and makes whole-array passes (copies, shifts, bias sums).
At -O1 LLVM still vectorises those passes (Numba asks for its loop vectoriser at every level)
and the helpers linked into it keep the code they were optimised to; what -O1 drops (aggressive
inlining, unrolling, GVN) saved 4-7% of an LSTM training program's cold compile (benchmarks/RESULTS.md).
A `program` that runs a loop's steps itself (rows in sequence, or a full unroll) keeps -O3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from numba.core import config
from numba.core.compiler_lock import global_compiler_lock

GLUE_LEVEL = 1  # a generated module writes the level it was compiled at (so its cache key has it)


@contextmanager
def llvm_level(level: int | None) -> Iterator[None]:
    """Numba's compiles inside this block run LLVM at `level` (None: Numba's own). Numba's pass
    builders read `config.OPT` when they run; the block holds Numba's compiler lock, so no other
    thread compiles meanwhile."""
    if level is None:
        yield
        return
    with global_compiler_lock:
        saved = config.OPT
        config.OPT = type(saved)(level)
        try:
            yield
        finally:
            config.OPT = saved
