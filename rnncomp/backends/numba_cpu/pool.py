"""Buffers for generated programs, reused across calls.

A training step allocates tens of MB of residuals and temporaries per call; fresh allocations that
large come from mmap and cost a page fault per 4 KB on first touch (a third of an LSTM's training
step at I=128, H=256, B=32). The pool keeps the arrays it handed out and hands one out again only
when nothing else refers to it (its reference count says so: a user's output, or any view of it,
keeps it busy). It holds at most two calls' worth per shape, and only for the latest shapes.

Every buffer starts on a 64-byte boundary (NumPy's own start 16 bytes into a cache line): a 512-bit
load that straddles two lines costs two (vectors.py), which made S forward 15% slower.
"""

from __future__ import annotations

import math
import sys
import threading
from collections import Counter

import numpy as np

Key = tuple[tuple[int, ...], str]
ALIGN = 64  # bytes: a cache line, one 512-bit vector


def aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """np.empty(shape, dtype) starting on an ALIGN-byte boundary: a view of a byte buffer (its `base`)."""
    dt = np.dtype(dtype)
    size = dt.itemsize * math.prod(shape)
    raw = np.empty(size + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start : start + size].view(dt).reshape(shape)


class BufferPool:
    """`take(shapes)` -> arrays for one call (np.empty contents: the program initialises them)."""

    def __init__(self, copies: int = 2):
        self.copies = copies
        self.arrays: dict[Key, list[np.ndarray]] = {}
        self.lock = threading.Lock()
        self.last: tuple = ()  # the shapes of the last call, and how many of each it took
        self.need: Counter = Counter()

    def take(self, wanted: list[Key]) -> list[np.ndarray]:
        shapes = tuple(wanted)
        with self.lock:
            if shapes != self.last:
                self.last, self.need = shapes, Counter(wanted)
                for key in [k for k in self.arrays if k not in self.need]:
                    del self.arrays[key]  # other shapes than last call's: let them go (varying T)
            return [self._one(key, self.need[key]) for key in wanted]

    def _one(self, key: Key, per_call: int) -> np.ndarray:
        kept = self.arrays.setdefault(key, [])
        for i in range(len(kept)):
            a = kept[i]
            # references: the list, `a`, getrefcount's argument; any more means in use. A view of
            # `a` refers to its base (NumPy points views at the array that owns the memory), whose
            # references are `a`'s `base` and getrefcount's argument.
            if sys.getrefcount(a) == 3 and sys.getrefcount(a.base) == 2:
                kept.append(kept.pop(i))  # most recently handed out last: the next search finds older ones first
                return a
        a = aligned_empty(key[0], key[1])
        if len(kept) < self.copies * per_call:
            kept.append(a)
        return a

    def clear(self) -> None:
        with self.lock:
            self.arrays.clear()
            self.last, self.need = (), Counter()
