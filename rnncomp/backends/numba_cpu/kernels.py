"""The scalar helpers generated modules call, compiled: common/helpers.py's plain-Python
definitions (the ones numba-cuda uses too), each under `njit` with this backend's flags.

Numba caches them on disk; a generated function that calls them has their code compiled in, and
its cache key hashes this file and common/helpers.py (runner.HELPER_FILES), so editing either makes
new entries. The float32 tanh and sigmoid are approx.py's; GEMMs are in gemm.py.
"""

from __future__ import annotations

from numba import njit
from numba.extending import register_jitable

from ir import philox

from ..common import helpers
from .approx import FASTMATH


def _jit(f, fastmath=FASTMATH):
    return njit(fastmath=fastmath, cache=True, error_model="numpy")(f)


sigmoid_f64 = _jit(helpers.sigmoid_f64)
softplus_f64 = _jit(helpers.softplus_f64)
softplus_f32 = _jit(helpers.softplus_f32)
rsqrt_f64 = _jit(helpers.rsqrt_f64)
rsqrt_f32 = _jit(helpers.rsqrt_f32)
pow_f64 = _jit(helpers.pow_f64)
pow_f32 = _jit(helpers.pow_f32)
gelu_f64 = _jit(helpers.gelu_f64)
gelu_f32 = _jit(helpers.gelu_f32)
gelu_tanh_f64 = _jit(helpers.gelu_tanh_f64)
gelu_tanh_f32 = _jit(helpers.gelu_tanh_f32)

register_jitable(philox.philox4x32_10)  # compiled into its caller: philox_keep calls it by its global name
philox_keep = _jit(helpers.philox_keep)
