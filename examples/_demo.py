"""Shared by the example scripts: print a cell's IR, then run the oracle on seeded random data."""

from __future__ import annotations

import numpy as np

from ir.shapes import substitute
from rnncomp import Cell
from rnncomp.reference import run


def random_arguments(cell: Cell, T: int = 5, B: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random seqs `(T, B, ...)` and params (scaled by 1/sqrt(fan-in)) for `cell`."""
    rng = np.random.default_rng(seed)
    env = {"T": T, "B": B}
    args = {}
    for s in cell.seqs:
        args[s.name] = rng.standard_normal((T,) + substitute(s.type.shape, env))
    for p in cell.params:
        shape = substitute(p.type.shape, env)
        args[p.name] = rng.standard_normal(shape) / np.sqrt(shape[0] if len(shape) == 2 else 1.0)
    return args


def demo(cell: Cell, T: int = 5, B: int = 3) -> dict[str, np.ndarray]:
    """Print the IR, run the oracle, print the result shapes and a few numbers."""
    print(cell)
    result = run(cell, **random_arguments(cell, T, B), strict=True)
    for name, value in result.items():
        print(f"{name}: shape {value.shape}, first values {np.round(value.ravel()[:4], 4).tolist()}")
    return result
