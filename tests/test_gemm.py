"""numba-cpu's GEMM helpers against NumPy in float64: every path (loop nest for few rows, BLAS,
split across threads, transposed operands, weights packed by MKL or copied for the loop nest)
with the BLAS this process chose, and the other BLAS choices in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")

from rnncomp.backends.numba_cpu import blas  # noqa: E402
from rnncomp.backends.numba_cpu import gemm as G  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHAPES = [(1, 32, 128), (3, 7, 5), (4, 16, 64), (33, 64, 48), (64, 256, 1024), (200, 64, 300)]


def _err(got: np.ndarray, want: np.ndarray) -> float:
    return float(abs(got - want).max() / max(1e-30, abs(want).max()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_products_agree_with_numpy(dtype, m, k, n, threads):
    r = np.random.default_rng(m * k + n)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    a, b, bt, at = (r.standard_normal(s).astype(dtype) for s in ((m, k), (k, n), (n, k), (k, m)))
    want = a.astype(np.float64) @ b
    out = np.full((m, n), np.nan, dtype)  # every element is written: NaN would survive otherwise
    G.gemm(a, b, out, threads, blas.MODE)
    assert _err(out, want) < tol
    G.gemm_nt(a, bt, out, threads, blas.MODE)
    assert _err(out, a.astype(np.float64) @ bt.T) < tol
    G.gemm_tn(at, b, out, threads, blas.MODE)
    assert _err(out, at.T.astype(np.float64) @ b) < tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("trans", [False, True])
def test_packed_weights_serve_any_row_count(dtype, m, k, n, trans):
    r = np.random.default_rng(m + k * n)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    w = r.standard_normal((n, k) if trans else (k, n)).astype(dtype)
    op = w.T if trans else w
    for rows in (1, 4, m):  # packed for blocks of `rows` rows, used for m rows (uneven blocks)
        packed = G.pack_b(w, trans, rows, blas.MODE)
        kind = packed[1]
        assert kind == (1 if trans else 0) if rows <= G.LOOP_ROWS else kind in (0, 2)
        assert kind != 2 or (blas.MODE >= blas.MKL and k * n >= G.PACK_MIN)
        for threads in (1, 2):
            a = r.standard_normal((m, k)).astype(dtype)
            out = np.full((m, n), np.nan, dtype)
            G.gemm_packed(a, packed, w, out, trans, threads, blas.MODE)
            assert _err(out, a.astype(np.float64) @ op) < tol, (rows, threads, kind)


def test_nan_and_inf_pass_through_blas_and_loops():
    for m in (1, 8):
        a = np.ones((m, 4))
        a[0, 1] = np.nan
        b = np.ones((4, 3))
        b[2, 0] = np.inf
        out = np.zeros((m, 3))
        G.gemm(a, b, out, 1, blas.MODE)
        assert np.isnan(out[0]).all() and np.isinf(out[1:, 0]).all()


@pytest.mark.parametrize("choice", ["openblas", "numba", "mkl"])
def test_every_blas_choice_computes_the_same(choice):
    code = textwrap.dedent(
        """
        import numpy as np
        from rnncomp.backends.numba_cpu import blas, gemm as G
        assert blas.BLAS.startswith(CHOICE), blas.BLAS
        r = np.random.default_rng(0)
        for m, k, n in [(2, 8, 8), (40, 64, 300)]:
            a, w = r.standard_normal((m, k)), r.standard_normal((n, k))
            out = np.empty((m, n))
            G.gemm_packed(a, G.pack_b(w, True, m, blas.MODE), w, out, True, 2, blas.MODE)
            assert np.allclose(out, a @ w.T, rtol=1e-12, atol=1e-12)
            G.gemm_tn(a, a, np.empty((k, k)), 2, blas.MODE)
        print("ok")
        """
    ).replace("CHOICE", repr(choice))
    env = {**os.environ, "RNNCOMP_BLAS": choice, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if choice == "mkl" and "mkl could not be loaded" in r.stderr:
        pytest.skip("the mkl package is not installed here")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_an_unknown_blas_choice_is_a_clear_error():
    env = {**os.environ, "RNNCOMP_BLAS": "atlas", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-c", "import rnncomp.backends.numba_cpu.blas"], env=env, capture_output=True, text=True
    )
    assert r.returncode != 0 and "RNNCOMP_BLAS='atlas': expected one of auto, mkl, openblas, numba" in r.stderr
