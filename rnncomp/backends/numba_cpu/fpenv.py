"""The thread's subnormal mode (x86-64 MXCSR: FTZ bit 15, DAZ bit 6), set around every call.

Arithmetic on subnormal floats (below 1.2e-38 in float32, 2.2e-308 in float64) takes a microcode
assist on x86: 20-100x slower. A gradient that decays through time reaches them (an LSTM's BPTT
from a final-state loss, T=200: 8.5 s instead of 0.4 s), so `denormals="flush"` sets FTZ|DAZ.

MXCSR is per thread. The runner sets the calling thread's bits for the call and restores its whole
MXCSR afterwards (`enter` / `leave`, also when the call raises); every parallel body (launch.py's
`run_blocks`, gemm.py's split GEMM) gives its worker thread the launching thread's two bits for
the body and restores the worker's own MXCSR after it (`adopt` / `restore`). `keep` clears the bits
(IEEE gradual underflow whatever the caller set). On other machines than x86-64 the intrinsics
emit nothing (`SUPPORTED` is False) and compile() refuses "flush".
"""

from __future__ import annotations

import platform

import numpy as np
from llvmlite import ir
from numba import get_thread_id, njit, prange, types
from numba.extending import intrinsic

SUPPORTED = platform.machine().lower() in ("x86_64", "amd64")
FTZ, DAZ = 1 << 15, 1 << 6
FLUSH = FTZ | DAZ  # the bits `denormals="flush"` sets; "keep" clears them
BITS = {"flush": FLUSH, "keep": 0}
_FLUSH, _OTHERS = np.uint32(FLUSH), np.uint32(0xFFFFFFFF ^ FLUSH)  # typed for the njit code


def _mxcsr_call(builder, name: str, slot) -> None:
    i8p = ir.IntType(8).as_pointer()
    fn = builder.module.declare_intrinsic(name, fnty=ir.FunctionType(ir.VoidType(), [i8p]))
    builder.call(fn, [builder.bitcast(slot, i8p)])


@intrinsic
def read_mxcsr(typingctx):
    """This thread's MXCSR (0 where there is none: not x86-64)."""

    def codegen(context, builder, signature, values):
        i32 = ir.IntType(32)
        if not SUPPORTED:
            return ir.Constant(i32, 0)
        slot = builder.alloca(i32)
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        return builder.load(slot)

    return types.uint32(), codegen


@intrinsic
def write_mxcsr(typingctx, value):
    """Load `value` (a uint32) into this thread's MXCSR (nothing where there is none)."""

    def codegen(context, builder, signature, values):
        if SUPPORTED:
            slot = builder.alloca(ir.IntType(32))
            builder.store(values[0], slot)
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()

    return types.void(types.uint32), codegen


@njit("uint32()", cache=True, no_cfunc_wrapper=True)
def mxcsr():
    """This thread's MXCSR (what tests compare before and after a call)."""
    return read_mxcsr()


@njit("uint32(uint32)", cache=True, no_cfunc_wrapper=True)
def enter(bits):
    """Set this thread's FTZ|DAZ to `bits` (FLUSH or 0); the MXCSR it had, for `leave`."""
    saved = read_mxcsr()
    write_mxcsr((saved & _OTHERS) | (bits & _FLUSH))
    return saved


@njit("void(uint32)", cache=True, no_cfunc_wrapper=True)
def leave(saved):
    """Restore the MXCSR `enter` returned."""
    write_mxcsr(saved)


@njit(inline="always")
def caller_bits():
    """The launching thread's FTZ|DAZ bits (read before a prange, given to its workers)."""
    return read_mxcsr() & _FLUSH


@njit(inline="always")
def adopt(bits):
    """Give this (worker) thread the FTZ|DAZ `bits`; its MXCSR before, for `restore`."""
    saved = read_mxcsr()
    write_mxcsr((saved & _OTHERS) | bits)
    return saved


@njit(inline="always")
def restore(saved):
    write_mxcsr(saved)


_UNSET = np.uint32(0xFFFFFFFF)  # no MXCSR has its reserved bits set: "this thread was not primed"


@njit("void(uint32, uint32[:])", parallel=True, cache=True)
def prime(bits, saved):
    """Give every thread of Numba's pool FTZ|DAZ `bits`, each one's MXCSR into `saved[thread id]`.

    For work whose threads no body of ours runs: MKL threading a GEMM itself on GNU OpenMP runs
    on the same libgomp team as Numba's `omp` layer (blas.py). `unprime` restores them."""
    for _ in prange(saved.size):
        t = get_thread_id()
        before = adopt(bits)
        if saved[t] == _UNSET:
            saved[t] = before


@njit("void(uint32[:])", parallel=True, cache=True)
def unprime(saved):
    """Restore the MXCSRs `prime` saved."""
    for _ in prange(saved.size):
        t = get_thread_id()
        if saved[t] != _UNSET:
            restore(saved[t])
            saved[t] = _UNSET


@njit(parallel=True, cache=True)
def _touch_threads(n):
    total = 0
    for i in prange(n):
        total += i
    return total


_started = False


def start_threads() -> None:
    """Start Numba's worker threads (and the OpenMP team MKL shares) once, under the caller's own MXCSR,
    before any call enters its subnormal mode: a new thread inherits the MXCSR of the thread that creates
    it, so a pool first started inside a "flush" call would keep flushing after `restore`."""
    global _started
    if not _started:
        import numba

        _touch_threads(4 * numba.config.NUMBA_NUM_THREADS)
        _started = True
