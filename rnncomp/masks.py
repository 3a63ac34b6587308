"""The seed words a call passes to a program with dropout / zoneout masks (ir/mask_ops.py).

`seed_words(seed)` checks a call's `seed=` and gives the int64 vector (k0, k1, t0, on): Philox's key,
the absolute step of the program's step 0, and 1 when masks are drawn (0 without a seed: every mask
takes its expectation). A checkpoint segment or a backward leaf starting at step s0 gets t0 = s0
(`at_step`), so its masks are the whole sequence's.
"""

from __future__ import annotations

import numpy as np

from ir.mask_ops import SEED
from ir.philox import seed_key

OFF = np.zeros(4, np.int64)


def seed_words(seed: object) -> np.ndarray:
    """A call's `seed=` (None or an int in 0..2**64-1) as seed words; anything else an error naming it."""
    if seed is None:
        return OFF.copy()
    k0, k1 = seed_key(seed, "seed")
    return np.array([k0, k1, 0, 1], np.int64)


def at_step(words: np.ndarray, s0: int) -> np.ndarray:
    """The words of a piece whose step 0 is step `s0` of the call's sequence."""
    out = words.copy()
    out[2] = words[2] + s0
    return out


__all__ = ["SEED", "at_step", "seed_words"]
