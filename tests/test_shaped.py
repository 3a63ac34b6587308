"""numba-cpu's `shaped` intrinsic (what generated code reshapes with): reshape's result for a
C-contiguous array, its data shared, and ValueError for a strided one, as `reshape` raises."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from numba import njit  # noqa: E402

from rnncomp.backends.numba_cpu.shaped import shaped  # noqa: E402


@njit
def _rows(x, n, m):
    return shaped(x, (n * m, x.shape[2]))


@njit
def _columns(x, lo, hi):
    return shaped(x[:, lo:hi], ((hi - lo) * x.shape[0],))  # Numba types the slice 'A' (not known contiguous)


def test_shaped_is_reshape_sharing_the_data():
    x = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    y = _rows(x, 3, 4)
    assert y.shape == (12, 5) and y.dtype == np.float32 and y.flags.c_contiguous
    np.testing.assert_array_equal(y, x.reshape(12, 5))
    y[2, 1] = -1.0
    assert x[0, 2, 1] == -1.0


def test_shaped_takes_a_contiguous_view_numba_cannot_prove_contiguous():
    x = np.arange(6.0).reshape(1, 6)
    np.testing.assert_array_equal(_columns(x, 2, 5), [2.0, 3.0, 4.0])


def test_shaped_of_a_strided_array_is_an_error():
    with pytest.raises(ValueError, match="shaped: the array is not C-contiguous"):
        _columns(np.arange(12.0).reshape(2, 6), 1, 3)
