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


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def rsqrt_f64(x):
    """1 / sqrt(x): inf at 0, 0 at inf, NaN below 0."""
    return 1.0 / math.sqrt(x)


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def rsqrt_f32(x):
    """rsqrt_f64 of a float32, in float32."""
    return np.float32(1.0) / math.sqrt(x)


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def pow_f64(x, p):
    """x ** p for a constant p: NaN for x < 0 and a non-integer p, inf for 0 ** (p < 0), as NumPy."""
    return x**p


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def pow_f32(x, p):
    """pow_f64 of float32s (powf)."""
    return x**p


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def gelu_f64(x):
    """Exact GELU x * Phi(x) = 0.5 x erfc(-x / sqrt 2): erfc keeps relative accuracy for x << 0."""
    return 0.5 * x * math.erfc(-x * 0.7071067811865476)


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def gelu_f32(x):
    """gelu_f64 of a float32, in float32."""
    return np.float32(0.5) * x * math.erfc(-x * np.float32(0.7071067811865476))


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def gelu_tanh_f64(x):
    """GELU's tanh form 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)."""
    u = 1.5957691216057308 * (x + 0.044715 * x * x * x)
    e = math.exp(-abs(u))
    return x * (1.0 / (1.0 + e) if u >= 0.0 else e / (1.0 + e))


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def gelu_tanh_f32(x):
    """gelu_tanh_f64 of a float32, in float32."""
    one = np.float32(1.0)
    u = np.float32(1.5957691216057308) * (x + np.float32(0.044715) * x * x * x)
    e = math.exp(-abs(u))
    return x * (one / (one + e) if u >= np.float32(0.0) else e / (one + e))
