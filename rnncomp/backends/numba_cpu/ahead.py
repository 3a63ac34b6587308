"""A module compiled ahead in a forked child: a training program's backward compiles while the parent
compiles and runs the forward, so that on 2+ cores the two compiles (each 0.5-3 s) overlap.

The child compiles into the on-disk caches as any process would (the entry, Numba's files, the
manifest: common/cache.py) and exits; the parent, when it first needs the module, waits for the child
and builds the runner as usual, which then loads what the child left (as a warm start does). Whatever
becomes of the child (it fails, is killed, stalls, is reaped by someone else) the parent's own build
compiles whatever is missing, with the errors it would have raised anyway: the child only ever saves
work. Off with RNNCOMP_COMPILE_AHEAD=0, on one core or with none free (the 1-minute load), without
fork(), and when the module's entry is in the cache already (warm: nothing to overlap).
"""

from __future__ import annotations

import atexit
import os
import select
import signal
import time
from typing import Any

from ir import ArgumentError, Program
from ir.dtypes import as_dtype

from ..common import cache

ENV = "RNNCOMP_COMPILE_AHEAD"
STALL = 10.0  # seconds without CPU time after which a child is taken as stuck: killed, the parent compiles


def enabled() -> bool:
    """Whether modules may be compiled ahead here: RNNCOMP_COMPILE_AHEAD unset or 1, fork() exists,
    this process may run on two cores or more and the 1-minute load leaves one free (else the child
    would only take turns with the parent: benchmarks/RESULTS.md, the cold compile's third pass)."""
    value = os.environ.get(ENV, "").strip()
    if value not in ("", "0", "1"):
        raise ArgumentError(f"environment variable {ENV}: expected 0 (off) or 1 (on, the default), got {value!r}")
    if value == "0" or not hasattr(os, "fork"):
        return False
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return cores >= 2 and busy <= cores - 1  # a core to spare (at load 5 on 2 cores it cost 2-40% wall)


def compile_ahead(prog: Program, options: dict[str, Any]) -> Ahead | None:
    """Start compiling `prog`'s module (the runner `factory(prog, options)` would build) in a child;
    None where that is off or cannot pay (see the module)."""
    if not enabled():
        return None
    from .module import generate
    from .runner import depends

    dtype = as_dtype(options.get("dtype", "float32"))
    source = generate(prog, dtype).source
    try:
        if os.path.lexists(cache.entry_path(source, {"dtype": dtype.value}, backend="numba_cpu", depends=depends())):
            return None
    except OSError:
        return None
    from numba.core.compiler_lock import global_compiler_lock

    with global_compiler_lock:  # no other thread is inside Numba's compiler while the child is forked
        pid = os.fork()
        if pid == 0:
            _child(prog, options)  # never returns
    return Ahead(pid)


def _child(prog: Program, options: dict[str, Any]) -> None:
    """In the forked child: build the runner (the module's row blocks compile as it is imported), compile
    `program` for the types every call has, and exit with 0 if the module is in the cache now."""
    code = 1
    try:
        parent = os.getppid()
        _die_with_parent()
        if os.getppid() != parent:
            return
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)  # the parent reports every warning and error itself, when it builds the module
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        import warnings

        warnings.simplefilter("ignore")
        from .runner import factory

        runner = factory(prog, options)
        if not runner.entry.in_memory:
            runner.compile_for(runner.signature())
            code = 0
    except BaseException:  # noqa: BLE001, S110  (the parent compiles, and raises, itself)
        pass
    finally:
        os._exit(code)


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (no orphan compiling on)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001, S110  (elsewhere the child just finishes its compile)
        pass


class Ahead:
    """A child compiling one module: `join()` waits for it (True if it succeeded), `cancel()` stops it."""

    def __init__(self, pid: int):
        self.pid: int | None = pid
        self.ok = False
        _LIVE.add(self)

    def join(self) -> bool:
        """Wait until the child exits; kill it if it gets no CPU time for STALL seconds."""
        pid = self.pid
        if pid is None:
            return self.ok
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            fd = None
        try:
            cpu, since = _cpu(pid), time.monotonic()
            while True:
                done = self._reap(os.WNOHANG)
                if done:
                    return self.ok
                if fd is not None:
                    select.select([fd], [], [], 1.0)
                else:
                    time.sleep(0.002)
                now, used = time.monotonic(), _cpu(pid)
                if used != cpu:
                    cpu, since = used, now
                elif used >= 0 and now - since > STALL:
                    self.cancel()
                    return False
        finally:
            if fd is not None:
                os.close(fd)

    def _reap(self, flags: int) -> bool:
        """Collect the child's exit status; whether it has exited (or is not ours to wait for)."""
        try:
            pid, status = os.waitpid(self.pid, flags)  # type: ignore[arg-type]
        except ChildProcessError:  # reaped elsewhere: its status is unknown (the parent's build checks)
            pid, status = self.pid, 1  # type: ignore[assignment]
        if pid == 0:
            return False
        self.ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        self.pid = None
        _LIVE.discard(self)
        return True

    def cancel(self) -> None:
        """Stop the child and collect it (what it had written is checked as any unsealed file is)."""
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._reap(0)


_LIVE: set[Ahead] = set()


@atexit.register
def _stop_all() -> None:
    """No child outlives the process that started it."""
    for a in list(_LIVE):
        a.cancel()


def _cpu(pid: int) -> int:
    """The child's CPU time so far in clock ticks (Linux /proc), or -1 where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return -1
