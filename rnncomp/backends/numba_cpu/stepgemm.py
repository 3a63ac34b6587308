"""A recurrent step's GEMM split by output columns across the threads, once per step.

Where a row-parallel loop runs as one block (too few rows to split, or row blocks that would each
stream the whole weight: launch.step_parts decides), each step's product with a loop-invariant
weight, out = a @ op(b), runs as `parts` column slices, one per Numba thread. Slice t is always
columns [t * width, (t + 1) * width) and prange's static schedule gives it to thread t at every step,
so each core keeps the same weight columns in its own cache (at H=512, float32: half of the 4 MiB
weight each). A slice with a few rows is a loop nest over its columns (as gemm.py's for a few rows),
else a single-threaded BLAS call on it. Behind a C ABI registered with LLVM (`rnncomp_gemm_cols`),
as gemm.py's helpers are, so a generated program does not compile it again.
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import cfunc, njit, types

from . import blas
from .fpenv import adopt, caller_bits, restore
from .gemm import LOOP_ROWS, _call, _loops, _p, _view, gemm_packed

_NT, _T = blas.NO_TRANS, blas.TRANS
_SIG = "void(int64, int64, int64, int64, int64, int64, int64, int64, int64, int64)"


@njit(error_model="numpy")
def _slice(trans, m, n, k, lo, hi, pa, pb, pc, itemsize):
    """Columns [lo, hi) of out = a @ op(b) on this thread: a single-threaded BLAS call, or for a few
    rows gemm.py's loop nest on views that start at column lo (row strides n: a view's last row runs
    past its array by lo elements, which the loop nest, over hi - lo columns, never reads)."""
    ldb, off_b = (k, lo * k) if trans else (n, lo)  # op(b)'s columns: b's rows when transposed
    pb_t, pc_t, tb = pb + itemsize * off_b, pc + itemsize * lo, _T if trans else _NT
    if m > LOOP_ROWS:
        _call(_NT, tb, m, hi - lo, k, pa, k, pb_t, ldb, pc_t, n, itemsize, 1)
        return
    br, bc = (hi - lo, k) if trans else (k, n)
    if itemsize == 4:
        dt = np.float32
        _loops(_NT, tb, m, hi - lo, k, _view(pa, m, k, dt), _view(pb_t, br, bc, dt), _view(pc_t, m, n, dt))
    else:
        dt = np.float64
        _loops(_NT, tb, m, hi - lo, k, _view(pa, m, k, dt), _view(pb_t, br, bc, dt), _view(pc_t, m, n, dt))


@njit(_SIG.replace(", int64)", ")"), parallel=True, cache=True, error_model="numpy")
def _columns(trans, m, n, k, pa, pb, pc, itemsize, parts):
    """The `parts` column slices, slice t on thread t (prange's static schedule)."""
    width = (n + parts - 1) // parts
    width = (width + 15) // 16 * 16  # whole cache lines of b and out per slice
    bits = caller_bits()  # the subnormal mode of the call (fpenv.py), given to each worker
    for t in numba.prange(parts):
        saved = adopt(bits)
        lo = t * width
        hi = min(n, lo + width)
        if hi > lo:
            _slice(trans, m, n, k, lo, hi, pa, pb, pc, itemsize)
        restore(saved)


@cfunc(_SIG, cache=True, error_model="numpy")
def _gemm_cols(trans, m, n, k, pa, pb, pc, itemsize, parts, mode):
    """out (m, n) = a (m, k) @ op(b) in `parts` column slices (the C ABI behind `gemm_step`)."""
    _columns(trans, m, n, k, pa, pb, pc, itemsize, parts)


llvm.add_symbol("rnncomp_gemm_cols", _gemm_cols.address)
_gemm_cols_c = types.ExternalFunction("rnncomp_gemm_cols", types.void(*[types.int64] * 10))


@njit(cache=True, error_model="numpy")
def gemm_step(a, packed, b, out, trans, parts, mode):
    """out = a @ op(b) for a step of a loop, op(b) a loop invariant prepared by pack_b: in `parts`
    column slices (launch.step_parts), else as gemm_packed on this thread. A slice reads b itself
    (or pack_b's transposed copy), never MKL's packed buffer; without a BLAS (mode NUMBA) only a
    few rows are sliced."""
    buf, kind = packed
    m, k = a.shape
    n = out.shape[1]
    if parts <= 1 or (mode == blas.NUMBA and m > LOOP_ROWS) or n < 32 * parts:
        gemm_packed(a, packed, b, out, trans, 1, mode)
        return
    if kind == 1:  # a transposed copy: op(b) stored (k, n)
        _gemm_cols_c(np.int64(False), m, n, k, _p(a), _p(buf), _p(out), a.itemsize, parts, mode)
    else:
        _gemm_cols_c(np.int64(trans), m, n, k, _p(a), _p(b), _p(out), a.itemsize, parts, mode)
