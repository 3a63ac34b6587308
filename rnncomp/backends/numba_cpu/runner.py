"""The runner: computes the generated function's arguments (arrays, dims, trip counts), calls it,
and turns a Numba compile failure into an error naming the IR node that produced the code. Each call
runs under the program's subnormal mode (fpenv.py), and the caller's MXCSR is restored after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numba
import numpy as np

from ir import Program
from ir.dtypes import as_dtype

from ..common import cache
from ..common.binding import Binding
from ..common.failures import error_text, lines_in, site
from ..common.values import Generated
from ..threads import for_call
from . import fpenv
from .errors import NumbaCompileError
from .module import generate
from .optlevel import llvm_level
from .pool import BufferPool

HELPER_FILES = ("approx.py", "kernels.py", "gemm.py", "blas.py", "launch.py", "fpenv.py")  # what generated code imports
HELPER_FILES += ("scan.py", "shaped.py", "optlevel.py", "vectors.py", "../common/helpers.py", "../../../ir/philox.py")


def depends() -> dict[str, str]:
    """What a generated module's compiled code depends on besides its text: the helpers, the BLAS."""
    from .blas import BLAS

    here = Path(__file__).parent
    return {"helpers": cache.digest([here / f for f in HELPER_FILES]), "blas": BLAS}


class Runner:
    """`runner(arrays, symbols) -> outputs` for one program; `.source` and `.path` show the code."""

    def __init__(
        self, prog: Program, gen: Generated, entry: cache.Entry, denormals: str = "keep", threads: int | None = None
    ):
        self.prog, self.gen = prog, gen
        self.threads = threads  # at most this many of Numba's threads (backends/threads.py); None: Numba's count
        self.denormals = denormals  # "flush" (FTZ|DAZ for the call) or "keep" (IEEE): fpenv.py
        self.fp_bits = fpenv.BITS[denormals] if fpenv.SUPPORTED else None
        self.ready = False  # compiled (or loaded) for the argument types every call has
        self.binding = Binding(prog)
        self.pool = BufferPool()
        # what each call fills in, by position (a small program's call is mostly this bookkeeping)
        self.template: list[Any] = [None] * len(gen.args)
        self.inputs, self.dims, self.counts, self.buffers = [], [], [], []
        self.threads_at: list[int] = []
        self.addresses: list[tuple[int, str]] = []
        for pos, a in enumerate(gen.args):
            if a.kind == "input":
                t = prog.input(a.key).type
                symbolic = [(i, d) for i, d in enumerate(t.shape) if isinstance(d, str)]  # type: ignore[union-attr]
                self.inputs.append((pos, a.key, t.dtype.numpy, symbolic))  # type: ignore[union-attr]
            elif a.kind == "dim":
                self.dims.append((pos, a.key))
            elif a.kind == "count":
                self.counts.append((pos, a.key))
            elif a.kind == "const":
                self.template[pos] = a.key
            elif a.kind == "threads":
                self.threads_at.append(pos)
            elif a.kind == "address":
                self.addresses.append((pos, a.key))
            elif a.kind == "buffer":
                self.buffers.append((pos, a.key.shape, a.key.dtype.numpy))
        self._use(entry)

    def _use(self, entry: cache.Entry) -> None:
        """Call the code of `entry` (the cached module, or the same code compiled in memory)."""
        self.entry, self.path, self.fn = entry, entry.path, getattr(entry.module, self.gen.function)
        for pos, key in self.addresses:
            self.template[pos] = getattr(entry.module, key).address

    @property
    def source(self) -> str:
        return self.gen.source

    def arguments(self, arrays: dict[str, Any], symbols: dict[str, int]) -> list[Any]:
        """`program`'s arguments: inputs as C-contiguous arrays of their dtype, dims, counts,
        constants, and its buffers (from the pool)."""
        env = dict(symbols)
        args = list(self.template)
        for pos, key, dt, symbolic in self.inputs:
            x = arrays[key]
            if not (type(x) is np.ndarray and x.dtype == dt and x.flags.carray):
                x = np.array(x, dtype=dt, order="C")  # a read-only array too: one compiled signature
            args[pos] = x
            for axis, sym in symbolic:
                env.setdefault(sym, x.shape[axis])
        for pos, key in self.dims:
            args[pos] = self.binding.dim(key, env)
        for pos, key in self.counts:
            args[pos] = self.binding.count(key, env)
        if self.threads_at:
            n = for_call(self.threads)
            for pos in self.threads_at:
                args[pos] = n
        if self.buffers:
            wanted = [
                (tuple(d if isinstance(d, int) else self.binding.dim(d, env) for d in shape), dt)
                for _, shape, dt in self.buffers
            ]
            for (pos, _, _), buf in zip(self.buffers, self.pool.take(wanted)):
                args[pos] = buf
        return args

    def __call__(self, arrays: dict[str, Any], symbols: dict[str, int]) -> dict[str, np.ndarray]:
        args = self.arguments(arrays, symbols)
        if not self.ready:
            self._compile(args)
        if self.fp_bits is None:
            return self._outputs(args, self.fn(*args))
        fpenv.start_threads()
        saved = fpenv.enter(self.fp_bits)
        team = self._team(args)
        try:
            if team is not None:
                fpenv.prime(self.fp_bits, team)
            results = self.fn(*args)
        finally:
            if team is not None:
                fpenv.unprime(team)
            fpenv.leave(saved)
        return self._outputs(args, results)

    def _outputs(self, args: list[Any], results: tuple) -> dict[str, np.ndarray]:
        """The outputs by name, in the program's order: those `program` returned, and those it wrote
        into arrays passed in (`Generated.passed`)."""
        if not self.gen.passed:
            return dict(zip(self.gen.outputs, results))
        got = dict(zip(self.gen.returned, results))
        return {k: args[self.gen.passed[k]] if k in self.gen.passed else got[k] for k in self.gen.outputs}

    def _team(self, args: list[Any]):
        """Where `fpenv.prime` keeps the MXCSRs of Numba's pool, when a GEMM of this call may run
        on MKL's own OpenMP threads (blas.MKL_OMP, more than one thread); else None."""
        if not self.threads_at or args[self.threads_at[0]] < 2:
            return None
        from .blas import MKL_OMP, MODE

        if MODE != MKL_OMP:
            return None
        return np.full(numba.config.NUMBA_NUM_THREADS, 0xFFFFFFFF, np.uint32)

    def signature(self) -> tuple:
        """The Numba types of every call's arguments, known before any call: C-contiguous arrays of
        the declared dtypes and ranks, Python ints (as `arguments` makes them); what ahead.py compiles."""
        from numba import from_dtype, typeof, types

        sig: list[Any] = []
        for a in self.gen.args:
            if a.kind == "input":
                t = self.prog.input(a.key).type
                sig.append(types.Array(from_dtype(t.dtype.numpy), t.rank, "C"))  # type: ignore[union-attr]
            elif a.kind == "buffer":
                sig.append(types.Array(from_dtype(np.dtype(a.key.dtype.numpy)), len(a.key.shape), "C"))
            elif a.kind == "const":
                sig.append(typeof(a.key))
            else:  # dims, trip counts, thread counts, row-block addresses
                sig.append(types.int64)
        return tuple(sig)

    def _compile(self, args: list[Any]) -> None:
        """Compile (or load from Numba's cache) for these argument types, once: every call passes
        C-contiguous arrays of the declared dtypes and Python ints."""
        import numba

        self.compile_for(tuple(numba.typeof(a) for a in args), args)

    def compile_for(self, types: tuple, args: list[Any] | None = None) -> None:
        """Compile (or load) `program` for `types`. A failure names the IR node; a failure of Numba's
        cache files (unreadable, or a full disk) means compiling in memory (`args`' addresses follow)."""
        try:
            with llvm_level(self.gen.llvm_level):
                self.fn.compile(types)
        except Exception as e:  # noqa: BLE001  (Numba's typing errors are not all NumbaErrors)
            if self.entry.in_memory or not cache.caused_by_cache(e):
                raise compile_error(self.prog, self.gen, self.path, e) from None
            self._use(self.entry.without_cache(e))
            for pos, _ in self.addresses:
                if args is not None:
                    args[pos] = self.template[pos]
            try:
                with llvm_level(self.gen.llvm_level):
                    self.fn.compile(types)
            except Exception as e2:  # noqa: BLE001
                raise compile_error(self.prog, self.gen, self.path, e2) from None
        self.entry.seal()
        self.ready = True


def compile_error(prog: Program, gen: Generated, path: Path, e: Exception) -> NumbaCompileError:
    """Numba's failure as an rnncomp error naming the IR node that produced the failing line."""
    text = error_text(e)
    what, where = site(gen.owners, path, lines_in(text, path))
    short = "\n".join(text.strip().splitlines()[:12])
    return NumbaCompileError(f"numba-cpu: Numba could not compile {what} of program {prog.name!r} ({where}):\n{short}")


def factory(prog: Program, options: dict[str, Any]) -> Runner:
    """The registry's entry point: generate, cache and load the module for `prog`."""
    dtype = as_dtype(options.get("dtype", "float32"))
    denormals = options.get("denormals", "keep")  # checked by compile() (backends/denormals.py)
    threads = options.get("threads")  # checked by compile() (backends/threads.py)
    gen = generate(prog, dtype)
    try:
        entry = cache.load(gen.source, {"dtype": dtype.value}, backend="numba_cpu", depends=depends())
    except cache.CompileFailed as e:
        raise compile_error(prog, gen, e.path, e.error) from None
    return Runner(prog, gen, entry, denormals, threads)
