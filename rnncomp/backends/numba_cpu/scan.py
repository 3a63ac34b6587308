"""The linear_scan op on numba-cpu, parallel over time: steps in chunks, one chunk per thread.

h[t] = a[t] * h[t-1] + b[t] over arrays (T, B, F) (F: the state's features, flattened; a coefficient
may be broadcast along any of the three axes, e.g. a decay per feature, seen with zero strides). With one
chunk it is the sequential loop (`scan_steps`, no parallel region). With c chunks (Blelloch's scan
with one level, as in Martin and Cundy 2018): (1) each chunk is scanned locally from 0 (the first
from the initial state), keeping the product A of its coefficients; (2) the carries into each chunk
are composed in order from the (A, local end) pairs: carry[k+1] = end[k] + A[k] * carry[k]; (3) each
chunk but the first adds (running product of a) * carry to its steps; one task per chunk in (1) and
(3). Within a chunk the steps go in time order, each a pass over (B, F) vectorised along F:
time-major, as the arrays are stored (a task per batch row ran 2x slower, striding over time). Steps
of a row outside lo <= t < hi are the identity (a = 1, b = 0). `reverse` runs from the last step to
the first.

Only the carries are reassociated, so float32 results differ from the sequential loop by rounding
in the carry's product chain (tests/test_linear_scan_chunks.py measures it: <= 7.5e-8 of the
state's scale at T up to 100,000, as the sequential loop's own error). `chunks_for` uses more than one
chunk only where each gets SCAN_WORK element-steps (a fork-join costs tens of microseconds, more on a
loaded machine). As gemm.py does, the parallel code is reached through a C ABI (`rnncomp_scan`), so
a generated program links a small stub, not the parallel kernel.
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import carray, cfunc, njit, types

from .fpenv import adopt, caller_bits, restore
from .launch import as_pointer


@njit("int64(int64, int64, int64, int64)", cache=True)
def chunks_for(threads, steps, elements, min_work):
    """Chunks of a scan of `steps` steps over `elements` (B*F) values: at most `threads`, at least 2
    steps each, and only as many as each gets `min_work` element-steps."""
    return max(1, min(threads, steps // 2, steps * elements // max(1, min_work)))


@njit(cache=True, error_model="numpy")
def _active(hi, lo, t, r):
    return (hi.size == 0 or t < hi[r]) and (lo.size == 0 or t >= lo[r])


@njit(cache=True, error_model="numpy")
def scan_steps(a, b, h0, out, hi, lo, rev):
    """out = the scan of (a, b) from h0, step after step on this thread; arrays (T, B, F)."""
    T, B, F = out.shape
    for s in range(T):
        t = T - 1 - s if rev else s
        for r in range(B):
            prev = h0[r] if s == 0 else out[t + 1 if rev else t - 1, r]
            o, at, bt = out[t, r], a[t, r], b[t, r]
            if _active(hi, lo, t, r):
                for f in range(F):
                    o[f] = at[f] * prev[f] + bt[f]
            else:
                for f in range(F):
                    o[f] = prev[f]


@njit(cache=True, error_model="numpy")
def _local(a, b, h0, out, hi, lo, rev, p, s0, s1, first):
    """Step (1) for the steps s0 <= s < s1: the scan from h0 (`first`) or from 0, and into p (B, F)
    the product of the coefficients; a row's step at a time, each a loop over F (vectorised)."""
    T, B, F = out.shape
    for s in range(s0, s1):
        t = T - 1 - s if rev else s
        for r in range(B):
            o, at, bt, pr = out[t, r], a[t, r], b[t, r], p[r]
            if not _active(hi, lo, t, r):
                if s > s0:
                    prev = out[t + 1 if rev else t - 1, r]
                    for f in range(F):
                        o[f] = prev[f]
                elif first:
                    for f in range(F):
                        o[f] = h0[r, f]
                else:
                    for f in range(F):
                        o[f] = 0.0
            elif s == s0:
                for f in range(F):
                    o[f] = at[f] * h0[r, f] + bt[f] if first else bt[f]
                for f in range(F):
                    pr[f] = at[f]
            else:
                prev = out[t + 1 if rev else t - 1, r]
                for f in range(F):
                    o[f] = at[f] * prev[f] + bt[f]
                for f in range(F):
                    pr[f] *= at[f]


@njit(cache=True, error_model="numpy")
def _fix(a, hi, lo, rev, out, run, carry, s0, s1):
    """Step (3) for the steps s0 <= s < s1: out += (running product of a) * carry, run (B, F) as scratch."""
    T, B, F = out.shape
    run[:] = 1.0
    for s in range(s0, s1):
        t = T - 1 - s if rev else s
        for r in range(B):
            o, at, ru, ca = out[t, r], a[t, r], run[r], carry[r]
            if _active(hi, lo, t, r):
                for f in range(F):
                    ru[f] *= at[f]
            for f in range(F):
                o[f] += ru[f] * ca[f]


@njit(parallel=True, cache=True, error_model="numpy")
def scan_chunks(a, b, h0, out, hi, lo, rev, chunks):
    """out = the scan of (a, b) from h0 in `chunks` chunks over time (see the module), one task per
    chunk; arrays (T, B, F)."""
    T, B, F = out.shape
    if T == 0:
        return
    size = (T + chunks - 1) // chunks
    prod = np.ones((chunks, B, F), out.dtype)
    bits = caller_bits()
    for c in numba.prange(chunks):
        saved = adopt(bits)
        _local(a, b, h0, out, hi, lo, rev, prod[c], c * size, min(T, (c + 1) * size), c == 0)
        restore(saved)
    if chunks == 1:
        return
    carry = np.zeros((chunks, B, F), out.dtype)
    for c in range(1, chunks):
        s_end = min(T, c * size) - 1
        t_end = T - 1 - s_end if rev else s_end
        for r in range(B):
            for f in range(F):
                carry[c, r, f] = out[t_end, r, f] + (prod[c - 1, r, f] * carry[c - 1, r, f] if c > 1 else 0.0)
    for c in numba.prange(1, chunks):
        saved = adopt(bits)
        _fix(a, hi, lo, rev, out, prod[c], carry[c], c * size, min(T, (c + 1) * size))
        restore(saved)


@njit(error_model="numpy")
def _run(a, b, h0, out, hi, lo, rev, chunks):
    if chunks <= 1:
        scan_steps(a, b, h0, out, hi, lo, rev)
    else:
        scan_chunks(a, b, h0, out, hi, lo, rev, chunks)


@njit(error_model="numpy")
def _v3(p, T, B, F, dtype):
    return carray(as_pointer(p, dtype), (T, B, F))


@njit(error_model="numpy")
def _v1(p, n, dtype):
    return carray(as_pointer(p, dtype), (n,))


@njit(error_model="numpy")
def _typed(pa, pb, ph0, pout, hi, lo, T, B, F, sa, sb, r, chunks, dt):
    """_run on views of the pointers; a coefficient of a smaller shape (sa, sb: a flag per axis, 1 where
    it spans T, B, F) is seen broadcast to (T, B, F) (zero strides: no copy). Whole coefficients take
    the same strided path: one compile per dtype, and no slower (the scan is memory-bound: T=10,000,
    B=8, F=256, float32, 48 ms strided vs 52 ms contiguous on one thread, 79 vs 80 ms in 2 chunks)."""
    ta, ba, fa = _spans(sa, T, B, F)
    tb, bb, fb = _spans(sb, T, B, F)
    a = np.broadcast_to(_v3(pa, ta, ba, fa, dt), (T, B, F))
    b = np.broadcast_to(_v3(pb, tb, bb, fb, dt), (T, B, F))
    _run(a, b, carray(as_pointer(ph0, dt), (B, F)), _v3(pout, T, B, F, dt), hi, lo, r, chunks)


@njit(error_model="numpy")
def _spans(flags, T, B, F):
    return (T if flags & 4 else 1, B if flags & 2 else 1, F if flags & 1 else 1)


@cfunc(
    "void(int64, int64, int64, int64, int64, int64, int64, int64, int64, int64, int64, int64, int64, int64, int64,"
    " int64)",
    cache=True,
)
def _scan(pa, pb, ph0, pout, phi, plo, T, B, F, sa, sb, nhi, nlo, rev, chunks, itemsize):
    """scan_chunks on pointers: the C ABI behind `scan_chunked`."""
    hi, lo = _v1(phi, nhi, np.int64), _v1(plo, nlo, np.int64)
    if itemsize == 4:
        _typed(pa, pb, ph0, pout, hi, lo, T, B, F, sa, sb, rev != 0, chunks, np.float32)
    else:
        _typed(pa, pb, ph0, pout, hi, lo, T, B, F, sa, sb, rev != 0, chunks, np.float64)


llvm.add_symbol("rnncomp_scan", _scan.address)
_i = types.int64
_scan_c = types.ExternalFunction("rnncomp_scan", types.void(*[_i] * 16))


@njit(cache=True, error_model="numpy")
def _p(x):
    return np.int64(x.ctypes.data)


@njit(cache=True, error_model="numpy")
def scan_chunked(a, b, h0, out, hi, lo, rev, threads, min_work):
    """out[T, B, F] = the linear scan of a, b from h0 (B, F), C-contiguous; a and b are (T, B, F) or
    broadcast along any of those axes (extent 1: a decay per feature is (1, 1, F)); hi, lo: int64
    bounds per row (empty: none); on as many chunks as `chunks_for` gives."""
    T, B, F = out.shape
    chunks = chunks_for(threads, T, B * F, min_work)
    sa, sb = _flags(a.shape, T, B, F), _flags(b.shape, T, B, F)
    p, n = (_p(a), _p(b), _p(h0), _p(out), _p(hi), _p(lo)), (hi.size, lo.size, np.int64(rev), chunks, a.itemsize)
    _scan_c(p[0], p[1], p[2], p[3], p[4], p[5], T, B, F, sa, sb, n[0], n[1], n[2], n[3], n[4])


@njit(cache=True, error_model="numpy")
def _flags(shape, T, B, F):
    """A bit per axis a coefficient spans (4: time, 2: batch, 1: features); an extent 1 where the
    output's is larger is broadcast (where both are 1 the axis counts as spanned)."""
    return (4 if shape[0] == T else 0) | (2 if shape[1] == B else 0) | (1 if shape[2] == F else 0)
