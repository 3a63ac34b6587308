"""float32 tanh and sigmoid as vectorisable rational functions (pip's llvmlite has no SVML, so
`math.tanh` on float32 is a scalar libm call that stops a fused loop from vectorising).

`tanh_f32` is Eigen's `generic_fast_tanh_float`: x * P(x^2) / Q(x^2), P of degree 6 and Q of
degree 3 in x^2, for |x| <= 7.9053111; beyond it exactly +-1 (the rational function ends at
1 - 2.4e-7 there, and a plateau would leave the derivative 1 - tanh^2 at 4.8e-7 for every large |x|,
where the true one falls to 0). Bounds, measured against float64 at 8e6 evenly spaced float32 points
of [-40, 40] and tested through compiled programs (tests/test_numerics.py): max abs error 2.8e-7
(at the saturation point), |result| <= 1, relative error <= 3.1e-7 for tiny |x|; its derivative as
the grad rule computes it in float32 (1 - y^2) within 5.5e-7 absolute, 0 for |x| > 7.9053; NaN stays
NaN; +-Inf gives +-1.
`sigmoid_f32(x) = 0.5 + 0.5 * tanh_f32(x / 2)`: max abs error 1.7e-7 (no relative accuracy for
x < -15, where sigmoid < 3e-7; exactly 0 and 1 for |x| > 15.8), its derivative y (1 - y) within
1.7e-7. float64 keeps exact `math.tanh` / `math.exp` (kernels.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# The fast-math flags of every generated function and helper: only what keeps results within the float64
# oracle's accuracy for every op at any magnitude (tests/test_numerics.py). No nnan/ninf: NaN and Inf
# survive. No reassoc: LLVM would rewrite (a - b) - c as a - (b + c), 0 instead of -1 at a = b = 1e16,
# c = 1 (log_softmax's (x - max) - log(sum) lost every digit at 1e16). No afn: it rewrites pow(x, 1.5)
# so that (-inf) ** 1.5 is NaN, not NumPy's inf. No arcp: x / y as x * (1 / y) loses digits once 1 / y
# is subnormal. nsz and contract (FMA) stay: they only drop the sign of a zero sum, and round once.
FASTMATH = {"nsz", "contract"}
TANH_F32_MAX_ABS_ERROR = 3.5e-7
SIGMOID_F32_MAX_ABS_ERROR = 2.0e-7
TANH_F32_DERIVATIVE_MAX_ABS_ERROR = 6.0e-7  # of 1 - y^2 in float32
SIGMOID_F32_DERIVATIVE_MAX_ABS_ERROR = 2.0e-7  # of y (1 - y) in float32


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def tanh_f32(x):
    """tanh of a float32: Eigen's rational approximation, exactly +-1 beyond +-7.9053 (see the module)."""
    c = np.float32(7.90531110763549805)
    one = np.float32(1.0)
    z = c if x > c else x  # NaN fails both tests and passes through
    z = -c if z < -c else z
    x2 = z * z
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
    y = z * p / q
    y = one if x > c else y  # the rational function ends at 1 - 2.4e-7: saturate, so 1 - y^2 is 0 there
    return -one if x < -c else y


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def sigmoid_f32(x):
    """sigmoid of a float32 through tanh_f32: max abs error 1.7e-7 (see the module)."""
    h = np.float32(0.5)
    return h + h * tanh_f32(h * x)
