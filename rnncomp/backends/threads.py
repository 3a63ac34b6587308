"""How many threads a numba-cpu program may use: `rc.compile(..., backend_options={"threads": N})`,
else `RNNCOMP_THREADS=N`, else Numba's count.

Numba's count is the user's: `NUMBA_NUM_THREADS` (the size of its pool, fixed when numba is imported)
and `numba.set_num_threads(n)` (for the calling thread, at any time). A program never runs on more
threads than `numba.get_num_threads()` says at the call; a cap N lowers that further, to at most N.
A cap of 0, or above the cores this process may run on (os.sched_getaffinity) or above Numba's pool,
is refused at compile time, naming the option. How many of those threads a loop or a GEMM actually
uses is decided by its work (numba_cpu/launch.py `blocks_for` and `step_parts`, numba_cpu/gemm.py
`split_parts`).
"""

from __future__ import annotations

import os
from typing import Any

from ir import ArgumentError

ENV = "RNNCOMP_THREADS"
OPTION = "threads"


def machine_cores() -> int:
    """The cores this process may run on (its affinity mask; the machine's count where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - no affinity masks on this OS
        return os.cpu_count() or 1


def numba_pool() -> int:
    """Numba's pool of threads: NUMBA_NUM_THREADS, or the cores numba saw when it was imported."""
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def resolve(backend: str, options: dict[str, Any]) -> int | None:
    """The thread cap of a program on `backend`: options['threads'] checked, else RNNCOMP_THREADS
    checked (numba-cpu only), else None (Numba's count at each call)."""
    if OPTION in options:
        where = f"backend_options[{OPTION!r}]"
        if backend != "numba-cpu":
            raise ArgumentError(f"{where}: only the numba-cpu backend runs on a thread count; {backend} does not")
        if options[OPTION] is None:
            return None
        return check(options[OPTION], where)
    text = os.environ.get(ENV, "").strip()
    if not text or backend != "numba-cpu":
        return None
    where = f"environment variable {ENV}"
    try:
        n = int(text)
    except ValueError:
        raise ArgumentError(f"{where}: expected an int >= 1, got {text!r}") from None
    return check(n, where)


def check(n: Any, where: str) -> int:
    """`n` if it is a thread count this process can run: an int from 1 to the cores it may use and
    Numba's pool; else an ArgumentError naming `where`."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise ArgumentError(f"{where}: expected an int >= 1 (or None: Numba's thread count), got {n!r}")
    if n < 1:
        raise ArgumentError(f"{where}: expected an int >= 1, got {n}: a program runs on at least one thread")
    cores = machine_cores()
    if n > cores:
        raise ArgumentError(
            f"{where}: {n} threads is more than this machine has: this process may run on {cores} "
            f"core{'s' if cores != 1 else ''} (os.sched_getaffinity)"
        )
    pool = numba_pool()
    if n > pool:
        raise ArgumentError(
            f"{where}: {n} threads is more than Numba's pool of {pool} (NUMBA_NUM_THREADS={pool}); "
            "ask for fewer, or set NUMBA_NUM_THREADS before numba is imported"
        )
    return n


def for_call(cap: int | None) -> int:
    """The threads a call may use now: Numba's count for the calling thread (NUMBA_NUM_THREADS,
    numba.set_num_threads), lowered to `cap` when there is one."""
    import numba

    n = numba.get_num_threads()
    return n if cap is None else min(n, cap)
