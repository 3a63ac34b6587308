"""OpenMP threads that sleep after a parallel region instead of spinning: OMP_WAIT_POLICY=passive.

Numba's `omp` threading layer (the one it picks where TBB is missing; MKL shares it, blas.py) runs on
GNU OpenMP, whose threads spin after each parallel region, by default for up to 300,000 iterations
of a busy loop. After a call that forked once, they burned 3.4 ms of CPU per call, and on a machine
with another busy process the next fork-join took 5.9 ms at the median and 11.7 ms at the 90th
percentile after 2 ms idle; with OMP_WAIT_POLICY=passive, 18 and 22 us (benchmarks/threads.py).
libgomp reads the variable once, when it is loaded (Numba loads it at its first parallel call), so
the backend sets it on import unless the user has set it: a user's OMP_WAIT_POLICY is kept, and a
libgomp already loaded before rnncomp's backend (by another library, or a parallel Numba function
run first) keeps the policy it read. Other OpenMP runtimes loaded later in the process (PyTorch's
own libgomp, when torch is imported after rnncomp's first compile) read the same variable.
"""

from __future__ import annotations

import os

WAIT_POLICY = "OMP_WAIT_POLICY"


def quiet_threads(environ: dict | None = None) -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE in `environ` (os.environ) unless it is set; True if this set it."""
    env = os.environ if environ is None else environ
    if env.get(WAIT_POLICY, "").strip():
        return False
    env[WAIT_POLICY] = "PASSIVE"
    return True
