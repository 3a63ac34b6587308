"""GEMMs that generated code calls: a loop nest for a few rows, else the BLAS of blas.py.

`gemm` (a @ b), `gemm_nt` (a @ b.T, so a transposed weight is never copied) and `gemm_tn` (a.T @ b,
the weight gradient) take C-contiguous 2-D arrays, a thread count and `blas.MODE`; a large product
is split into one block of columns (or rows) per Numba thread, each a single-threaded BLAS call (on
2 cores that ran 32x256 @ 256x1024 in 146 us where OpenBLAS's own 2 threads took 245), but only
into parts of at least SPLIT_WORK multiply-adds (`split_parts`). Inside a loop whose batch rows run
in parallel, the thread count is 1 (a recurrent step's GEMM split by columns instead: stepgemm.py).

`pack_b` / `gemm_packed`: a loop-invariant right operand (a recurrent weight) prepared once before
the loop: packed by MKL when available, a transposed copy for the loop nest when it multiplies a
few rows, else left as it is.

The work is done behind a C ABI (`cfunc`s on pointers, registered with LLVM as `rnncomp_gemm`, ...)
and what generated code calls are small stubs that pass pointers: Numba links the IR of every
jitted function a function calls into it and compiles it again, which cost each generated program
0.2-0.3 s per GEMM helper it used. Everything here is cached by Numba on disk (blas.py: the
compiled code is the same for every BLAS, `mode` says which one runs).

Loop nest vs BLAS, measured (AMD EPYC, one thread): 1x32x128 0.27 us vs 0.61, 1x128x512 4.2 us vs
18, 3x128x512 13 us vs 27; from 4 rows on BLAS wins at any size (4x16x64 0.23 us vs 0.41).
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import carray, cfunc, njit, types

from . import blas
from .approx import FASTMATH
from .fpenv import adopt, caller_bits, restore
from .launch import as_pointer

# A GEMM's loop nest may reorder its sums (as any BLAS does): reassoc lets LLVM vectorise a dot product.
# Elementwise code never gets it (approx.FASTMATH says why).
GEMM_FASTMATH = FASTMATH | {"reassoc"}

LOOP_ROWS = 3  # up to this many output rows a loop nest beats BLAS, whatever k and n
SPLIT_WORK = 1 << 23  # multiply-adds (m*n*k) each thread must get before a GEMM is split across threads
PACK_MIN = 1 << 14  # k*n from which packing a weight pays (MKL's pack buffer is ~8 MB whatever its size)
_ALIGN = 64  # MKL's packed buffers start on a cache line
_NUMBA, _MKL, _MKL_OMP = blas.NUMBA, blas.MKL, blas.MKL_OMP
_NT, _T, _PB, _ROW, _BMAT = blas.NO_TRANS, blas.TRANS, blas.PACKED_B, blas.ROW_MAJOR, blas.B_MATRIX
_sgemm, _dgemm, _scompute, _dcompute = blas.sgemm, blas.dgemm, blas.scompute, blas.dcompute
_threads_local = blas.threads_local
_I64 = "int64, int64, int64, int64, int64, int64, int64, int64, int64, int64, int64, int64"  # 12


# ---------------------------------------------------------------- BLAS calls on raw pointers


@njit(f"void({_I64}, int64)", cache=True, error_model="numpy")
def _call(ta, tb, m, n, k, pa, lda, pb, ldb, pc, ldc, itemsize, threads):
    """One BLAS call on up to `threads` threads (`tb` may be PACKED_B: `pb` is a packed buffer)."""
    old = _threads_local(np.int32(threads))
    a, b, r = np.int32(ta), np.int32(tb), np.int32(_ROW)
    if tb == _PB and itemsize == 4:
        _scompute(r, a, b, m, n, k, pa, lda, pb, n, np.float32(0.0), pc, ldc)
    elif tb == _PB:
        _dcompute(r, a, b, m, n, k, pa, lda, pb, n, 0.0, pc, ldc)
    elif itemsize == 4:
        _sgemm(r, a, b, m, n, k, np.float32(1.0), pa, lda, pb, ldb, np.float32(0.0), pc, ldc)
    else:
        _dgemm(r, a, b, m, n, k, 1.0, pa, lda, pb, ldb, 0.0, pc, ldc)
    _threads_local(old)


@njit("int64(int64, int64)", cache=True, error_model="numpy")
def split_parts(work, threads):
    """How many threads a GEMM of `work` multiply-adds runs on: at most `threads`, and only as many
    as each gets SPLIT_WORK of it (a fork-join costs tens of microseconds on an idle machine and a
    scheduler time slice on a loaded one, where a smaller share does not pay: benchmarks/parallel_work.py)."""
    return max(1, min(threads, work // SPLIT_WORK))


@njit(f"void({_I64}, int64, int64)", cache=True, parallel=True, error_model="numpy")
def _blas(ta, tb, m, n, k, pa, lda, pb, ldb, pc, ldc, itemsize, parts, mode):
    """op(a) @ op(b) on `parts` threads: one call that threads itself (MKL on OpenMP), or `parts`
    single-threaded calls, each on a block of columns (or rows)."""
    if mode == _MKL_OMP or parts <= 1:
        _call(ta, tb, m, n, k, pa, lda, pb, ldb, pc, ldc, itemsize, parts)
        return
    by_cols = n >= 16 * parts and tb != _PB  # a packed operand is split by rows only
    width = ((n if by_cols else m) + parts - 1) // parts
    if by_cols:
        width = (width + 15) // 16 * 16  # whole cache lines of b and out per part
    bits = caller_bits()  # the subnormal mode of the call (fpenv.py), given to each worker
    for t in numba.prange(parts):
        saved = adopt(bits)
        lo = t * width
        hi = min(n if by_cols else m, lo + width)
        if hi > lo:
            if by_cols:
                off_b = lo * ldb if tb == _T else lo  # op(b)'s columns: b's rows when transposed
                pb_t, pc_t = pb + itemsize * off_b, pc + itemsize * lo
                _call(ta, tb, m, hi - lo, k, pa, lda, pb_t, ldb, pc_t, ldc, itemsize, 1)
            else:
                off_a = lo if ta == _T else lo * lda  # op(a)'s rows: a's columns when transposed
                pa_t, pc_t = pa + itemsize * off_a, pc + itemsize * lo * ldc
                _call(ta, tb, hi - lo, n, k, pa_t, lda, pb, ldb, pc_t, ldc, itemsize, 1)
        restore(saved)


@njit(fastmath=GEMM_FASTMATH, error_model="numpy")
def _loops(ta, tb, m, n, k, a, b, out):
    """op(a) @ op(b) as a loop nest over arrays (a few rows), or with NumPy when no BLAS is bound."""
    if m > LOOP_ROWS:  # mode NUMBA: Numba's np.dot (SciPy's BLAS)
        if ta == _T:
            np.dot(a.T, b, out)
        elif tb == _T:
            np.dot(a, b.T, out)
        else:
            np.dot(a, b, out)
        return
    for i in range(m):
        for j in range(n):
            out[i, j] = 0
    if tb == _T:
        for i in range(m):
            for j in range(n):
                for p in range(k):
                    out[i, j] += a[i, p] * b[j, p]
    else:
        for p in range(k):
            for i in range(m):
                t = a[p, i] if ta == _T else a[i, p]
                for j in range(n):
                    out[i, j] += t * b[p, j]


@njit(error_model="numpy")
def _view(p, rows, cols, dtype):
    return carray(as_pointer(p, dtype), (rows, cols))


@cfunc(f"void({_I64}, int64, int64)", cache=True, error_model="numpy")
def _gemm(ta, tb, m, n, k, pa, lda, pb, ldb, pc, ldc, itemsize, threads, mode):
    """out = op(a) @ op(b) on pointers (row strides lda, ldb, ldc): the C ABI behind the stubs."""
    if (m > LOOP_ROWS and mode != _NUMBA) or tb == _PB:
        parts = split_parts(m * n * k, threads)
        _blas(ta, tb, m, n, k, pa, lda, pb, ldb, pc, ldc, itemsize, parts, mode)
        return
    ar, ac = (k, m) if ta == _T else (m, k)  # (every caller's arrays are C-contiguous: ld == columns)
    br, bc = (n, k) if tb == _T else (k, n)
    if itemsize == 4:
        dt = np.float32
        _loops(ta, tb, m, n, k, _view(pa, ar, ac, dt), _view(pb, br, bc, dt), _view(pc, m, n, dt))
    else:
        dt = np.float64
        _loops(ta, tb, m, n, k, _view(pa, ar, ac, dt), _view(pb, br, bc, dt), _view(pc, m, n, dt))


@cfunc("int64(int64, int64, int64, int64, int64, int64)", cache=True, error_model="numpy")
def _pack_kind(trans, rows, n, k, itemsize, mode):
    """How pack_b prepares op(b): 0 = not at all, 1 = a C-contiguous copy, 2 = packed by MKL;
    the bytes it needs in the high bits (kind + 4 * bytes)."""
    if rows <= LOOP_ROWS:
        return 1 + 4 * k * n * itemsize if trans else 0
    if mode < _MKL or k * n < PACK_MIN:
        return 0
    size = blas.spack_size(_BMAT, rows, n, k) if itemsize == 4 else blas.dpack_size(_BMAT, rows, n, k)
    return 2 + 4 * (np.int64(size) + _ALIGN)


@njit(error_model="numpy")
def _transpose(b, out, n, k):
    for j in range(n):
        for p in range(k):
            out[p, j] = b[j, p]


@cfunc("void(int64, int64, int64, int64, int64, int64, int64, int64, int64)", cache=True, error_model="numpy")
def _pack(kind, trans, rows, n, k, pb, ldb, dst, itemsize):
    """Fill a pack buffer at `dst` (aligned for MKL) from b at `pb`."""
    if kind == 2:
        op, row, bm = np.int32(_T if trans else _NT), np.int32(_ROW), np.int32(_BMAT)
        dst = (dst + _ALIGN - 1) // _ALIGN * _ALIGN
        if itemsize == 4:
            blas.spack(row, bm, op, rows, n, k, np.float32(1.0), pb, ldb, dst)
        else:
            blas.dpack(row, bm, op, rows, n, k, 1.0, pb, ldb, dst)
    elif itemsize == 4:  # kind 1: op(b) = b.T copied
        _transpose(_view(pb, n, ldb, np.float32), _view(dst, k, n, np.float32), n, k)
    else:
        _transpose(_view(pb, n, ldb, np.float64), _view(dst, k, n, np.float64), n, k)


for _fn, _name in ((_gemm, "rnncomp_gemm"), (_pack_kind, "rnncomp_pack_kind"), (_pack, "rnncomp_pack")):
    llvm.add_symbol(_name, _fn.address)
_i = types.int64
_gemm_c = types.ExternalFunction("rnncomp_gemm", types.void(*[_i] * 14))
_pack_kind_c = types.ExternalFunction("rnncomp_pack_kind", _i(*[_i] * 6))
_pack_c = types.ExternalFunction("rnncomp_pack", types.void(*[_i] * 9))


# ---------------------------------------------------------------- what generated code calls


@njit(cache=True, error_model="numpy")
def _p(x):
    return np.int64(x.ctypes.data)


@njit(fastmath=GEMM_FASTMATH, error_model="numpy")
def _rows(a, b, out):
    """out = a @ b for a few rows of a, as a loop nest the caller's loops inline (a recurrent
    step at B=1 costs less than a call: 1x32 @ 32x128 in 0.15 us)."""
    m, k = a.shape
    n = out.shape[1]
    for i in range(m):
        for j in range(n):
            out[i, j] = 0
        for p in range(k):
            t = a[i, p]
            for j in range(n):
                out[i, j] += t * b[p, j]


@njit(cache=True, error_model="numpy")
def gemm(a, b, out, threads, mode):
    """out[m, n] = a[m, k] @ b[k, n] (C-contiguous)."""
    m, k = a.shape
    n = b.shape[1]
    _gemm_c(_NT, _NT, m, n, k, _p(a), k, _p(b), n, _p(out), n, a.itemsize, threads, mode)


@njit(fastmath=GEMM_FASTMATH, cache=True, error_model="numpy")
def rows_nt(a, b, out, zero):
    """out = a @ b.T for a few rows of a (b stored (n, k)): a dot product per output, which LLVM
    vectorises along k because this GEMM may reassociate its sums (generated code may not); `zero`
    is a 0 of the dtype. Generated row blocks call it (LLVM inlines it there)."""
    m, k = a.shape
    n = b.shape[0]
    for i in range(m):
        for j in range(n):
            acc = zero
            for p in range(k):
                acc += a[i, p] * b[j, p]
            out[i, j] = acc


@njit(cache=True, error_model="numpy")
def gemm_nt(a, b, out, threads, mode):
    """out[m, n] = a[m, k] @ b[n, k].T (b is never copied)."""
    m, k = a.shape
    n = b.shape[0]
    _gemm_c(_NT, _T, m, n, k, _p(a), k, _p(b), k, _p(out), n, a.itemsize, threads, mode)


@njit(cache=True, error_model="numpy")
def gemm_tn(a, b, out, threads, mode):
    """out[m, n] = a[r, m].T @ b[r, n]."""
    r, m = a.shape
    n = b.shape[1]
    _gemm_c(_T, _NT, m, n, r, _p(a), m, _p(b), n, _p(out), n, a.itemsize, threads, mode)


@njit(cache=True, error_model="numpy")
def pack_b(b, trans, rows, mode):
    """A right operand op(b) (b.T if `trans`) prepared for repeated products with `rows`-row left
    operands: (buffer, kind) as _pack_kind says (kind 0: use b itself)."""
    n, k = (b.shape[0], b.shape[1]) if trans else (b.shape[1], b.shape[0])
    code = _pack_kind_c(np.int64(trans), rows, n, k, b.itemsize, mode)
    kind, size = code % 4, code // 4
    buf = np.empty(size // b.itemsize + 1, b.dtype)
    if kind:
        _pack_c(kind, np.int64(trans), rows, n, k, _p(b), b.shape[1], _p(buf), b.itemsize)
    return buf, kind


@njit(cache=True, error_model="numpy")
def gemm_packed(a, packed, b, out, trans, threads, mode):
    """out = a @ op(b), op(b) prepared by pack_b (a packed operand serves the row counts it
    suits, b itself the others)."""
    buf, kind = packed
    m, k = a.shape
    n = out.shape[1]
    if kind == 2 and m > LOOP_ROWS:
        pb = (_p(buf) + _ALIGN - 1) // _ALIGN * _ALIGN
        _gemm_c(_NT, _PB, m, n, k, _p(a), k, pb, n, _p(out), n, a.itemsize, threads, mode)
    elif kind == 1:
        _gemm_c(_NT, _NT, m, n, k, _p(a), k, _p(buf), n, _p(out), n, a.itemsize, threads, mode)
    elif trans:
        _gemm_c(_NT, _T, m, n, k, _p(a), k, _p(b), k, _p(out), n, a.itemsize, threads, mode)
    else:
        _gemm_c(_NT, _NT, m, n, k, _p(a), k, _p(b), n, _p(out), n, a.itemsize, threads, mode)
