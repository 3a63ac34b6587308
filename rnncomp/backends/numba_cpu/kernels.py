"""Helpers that generated modules call: stable scalar functions and a GEMM that picks its method.

They are plain `@njit` (no cache of their own): a generated function that calls them is cached
with their code compiled in, and the cache key hashes this file, so editing it makes new entries.

GEMMs: a loop nest when the output has at most LOOP_ROWS rows, else BLAS. Measured (AMD EPYC, one
thread): 1x32x128 0.27 us vs 0.61, 1x128x512 4.2 us vs 18, 1x1024x4096 0.42 ms vs 1.45, 3x128x512
13 us vs 27; from 4 rows on BLAS wins at any size (4x16x64 0.23 us vs 0.41). Numba's `np.dot` calls SciPy's
OpenBLAS; NumPy ships its own, newer build, which is faster here (about 1.35x on a 32x256 @ 256x1024
step, 2.5x at 8x64 @ 64x256), so `gemm` calls NumPy's `cblas_?gemm` when it can find it. The symbol
is registered with LLVM by name on import, so code cached by one process links in the next one;
`BLAS` (in the cache key) says which library compiled code calls.
"""

from __future__ import annotations

import ctypes
import glob
import math
import os
import sys

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import njit, types

from .approx import FASTMATH

LOOP_ROWS = 3  # up to this many output rows a loop nest beats OpenBLAS's sgemm, whatever k and n


@njit(fastmath=FASTMATH, error_model="numpy")
def sigmoid_f64(x):
    """Stable sigmoid: exp(-|x|) never overflows; NaN stays NaN."""
    e = math.exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0.0 else e / (1.0 + e)


@njit(fastmath=FASTMATH, error_model="numpy")
def softplus_f64(x):
    """log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|)); NaN stays NaN."""
    return (x if x > 0.0 else 0.0) + math.log1p(math.exp(-abs(x)))


@njit(fastmath=FASTMATH, error_model="numpy")
def softplus_f32(x):
    """softplus of a float32, as softplus_f64."""
    z = np.float32(0.0)
    return (x if x > z else z) + math.log1p(math.exp(-abs(x)))


# ---------------------------------------------------------------- BLAS


def _numpy_openblas() -> str | None:
    """Register NumPy's bundled OpenBLAS `cblas_sgemm`/`cblas_dgemm` (and its per-thread thread count
    setter, where the build has one) with LLVM; its path, or None."""
    here = os.path.dirname(np.__file__)
    pattern = {"linux": "../numpy.libs/libscipy_openblas64_*.so", "darwin": ".dylibs/libscipy_openblas64_*.dylib"}
    paths = sorted(glob.glob(os.path.join(here, pattern.get(sys.platform, "")))) if sys.platform in pattern else []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            s, d = lib.scipy_cblas_sgemm64_, lib.scipy_cblas_dgemm64_
        except (OSError, AttributeError):
            continue
        llvm.add_symbol("rnncomp_cblas_sgemm", ctypes.cast(s, ctypes.c_void_p).value)
        llvm.add_symbol("rnncomp_cblas_dgemm", ctypes.cast(d, ctypes.c_void_p).value)
        global LOCAL_THREADS
        local = getattr(lib, "openblas_set_num_threads_local", None)  # OpenBLAS >= 0.3.27
        LOCAL_THREADS = local is not None
        if local is None:  # never split then (OpenBLAS threads itself); a harmless int(int) stands in
            local = ctypes.CDLL(None).abs
        llvm.add_symbol("rnncomp_blas_threads_local", ctypes.cast(local, ctypes.c_void_p).value)
        return os.path.realpath(path)
    return None


LOCAL_THREADS = False  # whether OpenBLAS's thread count can be set per calling thread
_PATH = _numpy_openblas()
BLAS = f"numpy-openblas:{_PATH}:split={LOCAL_THREADS}" if _PATH else "numba-np.dot"
SPLIT_FLOPS = 1 << 20  # m*n*k from which a GEMM is split across Numba's threads (measured: 8x64x256 does not pay)

_i32, _i64, _p = types.int32, types.int64, types.intp  # CBLAS enums are int; ILP64 sizes are int64
_sgemm = types.ExternalFunction(
    "rnncomp_cblas_sgemm",
    types.void(_i32, _i32, _i32, _i64, _i64, _i64, types.float32, _p, _i64, _p, _i64, types.float32, _p, _i64),
)
_dgemm = types.ExternalFunction(
    "rnncomp_cblas_dgemm",
    types.void(_i32, _i32, _i32, _i64, _i64, _i64, types.float64, _p, _i64, _p, _i64, types.float64, _p, _i64),
)
_threads_local = types.ExternalFunction("rnncomp_blas_threads_local", types.int32(types.int32))
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


@njit(error_model="numpy")
def _call(trans_a, m, n, k, pa, lda, pb, ldb, pc, ldc, single):
    """One single-threaded BLAS call on raw pointers (`single`: float32)."""
    ta = _TRANS if trans_a else _NO_TRANS
    old = _threads_local(1)
    if single:
        _sgemm(_ROW_MAJOR, ta, _NO_TRANS, m, n, k, np.float32(1.0), pa, lda, pb, ldb, np.float32(0.0), pc, ldc)
    else:
        _dgemm(_ROW_MAJOR, ta, _NO_TRANS, m, n, k, 1.0, pa, lda, pb, ldb, 0.0, pc, ldc)
    _threads_local(old)


@njit(error_model="numpy", parallel=True)
def _cblas(trans_a, m, n, k, a, b, out, threads):
    """out[m, n] = op(a) @ b through NumPy's OpenBLAS; all C-contiguous, op(a) = a.T if trans_a.

    OpenBLAS's own threads are switched off for the calling thread; a large GEMM is instead split
    into one block of columns (or rows, when n is narrow) per Numba thread, each a single-threaded
    call (`threads`: Numba's thread count, passed in: reading it here would keep the caller out of
    Numba's cache). On 2 cores that ran 32x256 @ 256x1024 in 146 us where OpenBLAS's 2 threads took 245.
    """
    lda = max(1, a.shape[1])
    ldb, ldc = max(1, n), max(1, n)
    size, single = a.itemsize, a.itemsize == 4
    pa, pb, pc = a.ctypes.data, b.ctypes.data, out.ctypes.data
    parts = threads if LOCAL_THREADS and m * n * k >= SPLIT_FLOPS else 1
    if parts <= 1:
        _call(trans_a, m, n, k, pa, lda, pb, ldb, pc, ldc, single)
        return
    by_cols = n >= 16 * parts
    width = ((n if by_cols else m) + parts - 1) // parts
    if by_cols:
        width = (width + 15) // 16 * 16  # whole cache lines of b and out per part
    for t in numba.prange(parts):
        lo = t * width
        hi = min(n if by_cols else m, lo + width)
        if hi > lo:
            if by_cols:
                _call(trans_a, m, hi - lo, k, pa, lda, pb + size * lo, ldb, pc + size * lo, ldc, single)
            else:
                off_a = lo if trans_a else lo * lda  # op(a)'s rows: a's columns when transposed
                _call(trans_a, hi - lo, n, k, pa + size * off_a, lda, pb, ldb, pc + size * lo * ldc, ldc, single)


@njit(error_model="numpy")
def _blas_nn_numpy(a, b, out, threads):
    _cblas(False, a.shape[0], b.shape[1], a.shape[1], a, b, out, threads)


@njit(error_model="numpy")
def _blas_tn_numpy(a, b, out, threads):
    _cblas(True, a.shape[1], b.shape[1], a.shape[0], a, b, out, threads)


@njit(error_model="numpy")
def _blas_nn_dot(a, b, out, threads):
    np.dot(a, b, out)


@njit(error_model="numpy")
def _blas_tn_dot(a, b, out, threads):
    np.dot(a.T, b, out)


_blas_nn, _blas_tn = (_blas_nn_numpy, _blas_tn_numpy) if _PATH else (_blas_nn_dot, _blas_tn_dot)


@njit(fastmath=FASTMATH, error_model="numpy")
def gemm(a, b, out, threads):
    """out[m, n] = a[m, k] @ b[k, n] (2-D, C-contiguous): loops for a few rows, else BLAS."""
    m, k = a.shape
    n = b.shape[1]
    if m > LOOP_ROWS:
        _blas_nn(a, b, out, threads)
        return
    for i in range(m):
        for j in range(n):
            out[i, j] = 0
        for p in range(k):
            t = a[i, p]
            for j in range(n):
                out[i, j] += t * b[p, j]


@njit(fastmath=FASTMATH, error_model="numpy")
def gemm_tn(a, b, out, threads):
    """out[m, n] = a[r, m].T @ b[r, n] (C-contiguous): loops for a few rows, else BLAS."""
    r, m = a.shape
    n = b.shape[1]
    if m > LOOP_ROWS:
        _blas_tn(a, b, out, threads)
        return
    for i in range(m):
        for j in range(n):
            out[i, j] = 0
    for p in range(r):
        for i in range(m):
            t = a[p, i]
            for j in range(n):
                out[i, j] += t * b[p, j]
