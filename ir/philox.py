"""Philox-4x32-10 (Salmon, Moraes, Dror and Shaw 2011), the counter-based generator of dropout masks.

A mask bit is a pure function of (seed, site, step, row, feature): no state is carried, so the forward
pass, the backward pass, every unroll mode, checkpoint recomputation and every backend draw the same
mask. The functions here are written once, with only uint64 arithmetic on values below 2**32 (a product
of two 32-bit words fits in 64 bits, so nothing overflows), no branches and no Python ints mixed in, so
the same source runs elementwise on NumPy arrays (the reference), under `numba.njit` and as a
numba-cuda device function, bit for bit alike (tests/test_philox.py checks all three and Random123's
known-answer vectors).

Counter layout of a mask draw: (step, row, feature, site), key (seed mod 2**32, seed div 2**32);
`SEQUENCE` stands for the step of a per-sequence (variational) mask, which is the same at every step.
"""

from __future__ import annotations

import numpy as np

from .errors import ArgumentError

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
MASK32 = np.uint64(0xFFFFFFFF)
SHIFT32 = np.uint64(32)
SEQUENCE = 0xFFFFFFFF  # the step word of a per-sequence mask
SEED_MAX = 2**64 - 1


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox-4x32 with 10 rounds: four 32-bit words (as uint64) of counter (c0..c3) under key (k0, k1).
    One self-contained function (Numba compiles it alone, as a helper or a device function)."""
    for r in range(10):
        if r > 0:
            k0 = (k0 + W0) & MASK32
            k1 = (k1 + W1) & MASK32
        p0 = M0 * c0
        p1 = M1 * c2
        c0, c1, c2, c3 = (
            ((p1 >> SHIFT32) ^ c1 ^ k0) & MASK32,
            p1 & MASK32,
            ((p0 >> SHIFT32) ^ c3 ^ k1) & MASK32,
            p0 & MASK32,
        )
    return c0, c1, c2, c3


def philox_keep(step, row, feature, site, k0, k1, thr):
    """Whether the element (row, feature) of draw site `site` is kept at `step`: Philox's first word of
    counter (step mod 2**32, row, feature, site) under key (k0, k1) is at least `thr` (`threshold(p)`).
    Scalars (int64 in generated code), converted to uint64 here; the generated kernels of both Numba
    backends call it (numba-cuda writes its source and philox4x32_10's as device functions)."""
    w, _, _, _ = philox4x32_10(
        np.uint64(step) & MASK32, np.uint64(row), np.uint64(feature), np.uint64(site), np.uint64(k0), np.uint64(k1)
    )
    return w >= np.uint64(thr)


def threshold(p: float) -> int:
    """The integer a draw is compared with: P(word < threshold) = p to within 2**-32."""
    return min(int(round(p * 2.0**32)), 2**32 - 1)


def seed_key(seed: object, where: str = "seed") -> tuple[int, int]:
    """An int seed (0 <= seed < 2**64) as Philox's two key words; anything else is an error naming it."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ArgumentError(f"argument {where!r}: the seed of the dropout masks must be an int, got {seed!r}")
    s = int(seed)
    if not 0 <= s <= SEED_MAX:
        raise ArgumentError(f"argument {where!r}: the seed must be in 0..2**64-1, got {s}")
    return s & 0xFFFFFFFF, s >> 32


def check_probability(p: object, what: str) -> float:
    """A dropout / zoneout probability in [0, 1); anything else is an error naming `what`."""
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise ArgumentError(f"{what}: the probability p must be a number in [0, 1), got {p!r}")
    if not 0.0 <= float(p) < 1.0:
        raise ArgumentError(f"{what}: the probability p must be in [0, 1) (p = 1 would drop everything), got p={p!r}")
    return float(p)


def keep_mask(seed: int, site: int, step: int, shape: tuple[int, int], p: float) -> np.ndarray:
    """The (rows, features) 0/1 keep mask of one draw site at one step (`SEQUENCE`: per sequence): an
    element is kept where the first word of Philox(counter (step, row, feature, site), key(seed)) is at
    least `threshold(p)`."""
    k0, k1 = seed_key(seed)
    rows, feats = np.meshgrid(np.arange(shape[0], dtype=np.uint64), np.arange(shape[1], dtype=np.uint64), indexing="ij")
    u = np.uint64
    word, _, _, _ = philox4x32_10(u(step), rows, feats, u(site), u(k0), u(k1))
    return (word >= u(threshold(check_probability(p, "keep_mask")))).astype(np.float64)


__all__ = [
    "SEQUENCE",
    "check_probability",
    "philox_keep",
    "keep_mask",
    "philox4x32_10",
    "seed_key",
    "threshold",
]
