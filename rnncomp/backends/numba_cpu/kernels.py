"""Stable scalar functions that generated modules call (float64 and the float32 ones approx.py lacks).

Numba caches them on disk; a generated function that calls them has their code compiled in, and
its cache key hashes this file, so editing it makes new entries. GEMMs are in gemm.py.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .approx import FASTMATH


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def sigmoid_f64(x):
    """Stable sigmoid: exp(-|x|) never overflows; NaN stays NaN."""
    e = math.exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0.0 else e / (1.0 + e)


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def softplus_f64(x):
    """log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|)); NaN stays NaN."""
    return (x if x > 0.0 else 0.0) + math.log1p(math.exp(-abs(x)))


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def softplus_f32(x):
    """softplus of a float32, as softplus_f64."""
    z = np.float32(0.0)
    return (x if x > z else z) + math.log1p(math.exp(-abs(x)))
