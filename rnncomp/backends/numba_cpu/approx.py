"""float32 tanh and sigmoid as vectorisable rational functions (pip's llvmlite has no SVML, so
`math.tanh` on float32 is a scalar libm call that stops a fused loop from vectorising).

`tanh_f32` is Eigen's `generic_fast_tanh_float`: x * P(x^2) / Q(x^2), P of degree 6 and Q of
degree 3 in x^2, the input clamped to +-7.9053111 (beyond it tanh rounds to +-1 in float32).
Error bound, measured against float64 np.tanh at 4e6 evenly spaced float32 points of [-12, 12]
(tests/test_numba_cpu.py checks it over a dense grid including large |x|): max abs error 2.7e-7
when LLVM contracts the polynomials to FMAs, 3.4e-7 without; |result| <= 1; relative error
<= 3.1e-7 for tiny |x|; NaN stays NaN; +-Inf gives +-(1 - 2.4e-7).
`sigmoid_f32(x) = 0.5 + 0.5 * tanh_f32(x / 2)`: max abs error 1.7e-7 (no relative accuracy for
x < -15, where sigmoid < 3e-7). float64 keeps exact `math.tanh` / `math.exp` (kernels.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}  # no nnan/ninf: NaN and Inf survive
TANH_F32_MAX_ABS_ERROR = 3.5e-7
SIGMOID_F32_MAX_ABS_ERROR = 2.0e-7


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def tanh_f32(x):
    """tanh of a float32: Eigen's rational approximation, max abs error 3.4e-7 (see the module)."""
    c = np.float32(7.90531110763549805)
    x = c if x > c else x  # NaN fails both tests and passes through
    x = -c if x < -c else x
    x2 = x * x
    p = np.float32(-2.76076847742355e-16)
    p = p * x2 + np.float32(2.00018790482477e-13)
    p = p * x2 + np.float32(-8.60467152213735e-11)
    p = p * x2 + np.float32(5.12229709037114e-08)
    p = p * x2 + np.float32(1.48572235717979e-05)
    p = p * x2 + np.float32(6.37261928875436e-04)
    p = p * x2 + np.float32(4.89352455891786e-03)
    q = np.float32(1.19825839466702e-06)
    q = q * x2 + np.float32(1.18534705686654e-04)
    q = q * x2 + np.float32(2.26843463243900e-03)
    q = q * x2 + np.float32(4.89352518554385e-03)
    return x * p / q


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def sigmoid_f32(x):
    """sigmoid of a float32 through tanh_f32: max abs error 1.7e-7 (see the module)."""
    h = np.float32(0.5)
    return h + h * tanh_f32(h * x)
