"""The scalar helper functions both Numba printers call, written once as plain Python.

numba-cpu compiles them with `njit` (numba_cpu/kernels.py: one decorator line each, its fastmath
flags); numba-cuda writes their source into its module as `@cuda.jit(device=True)` functions
(numba_cuda/kernels.py). float32 versions spell their constants as float32, so the math stays
float32. Guards are written so that the CUDA simulator (Python's math, which raises on a domain
error) gives NumPy's NaN / inf as compiled code does. numba-cpu's float32 sigmoid and tanh are its
own vectorisable approximations (numba_cpu/approx.py).
"""

from __future__ import annotations

import math

import numpy as np

from ir import philox
from ir.philox import philox_keep


def sigmoid_f64(x):
    """Stable sigmoid: exp(-|x|) never overflows; NaN stays NaN."""
    e = math.exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0.0 else e / (1.0 + e)


def sigmoid_f32(x):
    """sigmoid_f64 of a float32, in float32."""
    one = np.float32(1.0)
    e = math.exp(-abs(x))
    return one / (one + e) if x >= np.float32(0.0) else e / (one + e)


def softplus_f64(x):
    """log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|)); NaN stays NaN."""
    return (x if x > 0.0 else 0.0) + math.log1p(math.exp(-abs(x)))


def softplus_f32(x):
    """softplus_f64 of a float32, in float32."""
    z = np.float32(0.0)
    return (x if x > z else z) + math.log1p(math.exp(-abs(x)))


def sqrt_f64(x):
    """sqrt; NaN below 0 (and for NaN)."""
    return math.sqrt(x) if x >= 0.0 else math.nan


def sqrt_f32(x):
    """sqrt_f64 of a float32, in float32."""
    return math.sqrt(x) if x >= np.float32(0.0) else np.float32(math.nan)


def rsqrt_f64(x):
    """1 / sqrt(x): inf at 0, 0 at inf, NaN below 0 (and for NaN); a NumPy 1, so inf at 0 in Python too."""
    return np.float64(1.0) / math.sqrt(x) if x >= 0.0 else math.nan


def rsqrt_f32(x):
    """rsqrt_f64 of a float32, in float32."""
    return np.float32(1.0) / math.sqrt(x) if x >= np.float32(0.0) else np.float32(math.nan)


def pow_f64(x, p):
    """x ** p for a constant p: NaN for x < 0 and a non-integer p, inf for 0 ** (p < 0), as NumPy
    (a NumPy float, so that Python does not give a complex number)."""
    return np.float64(x) ** p


def pow_f32(x, p):
    """pow_f64 of float32s (powf)."""
    return np.float32(x) ** p


def gelu_f64(x):
    """Exact GELU x * Phi(x) = 0.5 x erfc(-x / sqrt 2): erfc keeps relative accuracy for x << 0."""
    return 0.5 * x * math.erfc(-x * 0.7071067811865476)


def gelu_f32(x):
    """gelu_f64 of a float32, in float32."""
    return np.float32(0.5) * x * math.erfc(-x * np.float32(0.7071067811865476))


def gelu_tanh_f64(x):
    """GELU's tanh form 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)."""
    u = 1.5957691216057308 * (x + 0.044715 * x * x * x)
    e = math.exp(-abs(u))
    return x * (1.0 / (1.0 + e) if u >= 0.0 else e / (1.0 + e))


def gelu_tanh_f32(x):
    """gelu_tanh_f64 of a float32, in float32."""
    one = np.float32(1.0)
    u = np.float32(1.5957691216057308) * (x + np.float32(0.044715) * x * x * x)
    e = math.exp(-abs(u))
    return x * (one / (one + e) if u >= np.float32(0.0) else e / (one + e))


HELPERS = {
    f.__name__: f
    for f in (
        sigmoid_f64,
        sigmoid_f32,
        softplus_f64,
        softplus_f32,
        sqrt_f64,
        sqrt_f32,
        rsqrt_f64,
        rsqrt_f32,
        pow_f64,
        pow_f32,
        gelu_f64,
        gelu_f32,
        gelu_tanh_f64,
        gelu_tanh_f32,
        philox_keep,  # ir/philox.py's: a dropout mask's bit (it calls philox4x32_10)
    )
}

# What a helper needs beside itself in a module of its own (numba-cuda writes it there before the helper):
# module constants (name, value) and device functions, each written once.
PRELUDE = {
    "philox_keep": (
        [(k, int(getattr(philox, k))) for k in ("M0", "M1", "W0", "W1", "MASK32", "SHIFT32")],
        [philox.philox4x32_10],
    )
}
