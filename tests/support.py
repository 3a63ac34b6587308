"""Shared by the tests: the example cells, seeded arguments, and comparisons against the oracle."""

from __future__ import annotations

import numpy as np

import rnncomp as rc
from tests.hand_rnns import load_example

EXAMPLES = ["elman", "lstm", "gru", "three_node", "narx", "stacked_lstm"]


def cell_of(name: str) -> rc.Cell:
    return getattr(load_example(name), name)


def bind(shape: tuple, B: int) -> tuple:
    return tuple(B if d == "B" else d for d in shape)


def random_args(
    cell: rc.Cell, T: int, B: int, seed: int = 0, inits: bool = False, scale: float = 0.5
) -> dict[str, np.ndarray]:
    """Seeded float64 seqs `(T, B, ...)`, params (times `scale`), statics `(B, ...)` and, if `inits`, state inits."""
    rng = np.random.default_rng(seed)
    args = {s.name: rng.standard_normal((T,) + bind(s.type.shape, B)) for s in cell.seqs}
    args.update({p.name: rng.standard_normal(bind(p.type.shape, B)) * scale for p in cell.params})
    args.update({u.name: rng.standard_normal(bind(u.type.shape, B)) for u in cell.statics})
    if inits:
        args.update({k: rng.standard_normal(bind(t.shape, B)) for k, t in cell.state_types.items()})
    return args


def random_lengths(T: int, B: int, seed: int = 0) -> np.ndarray:
    """Lengths in [0, T] that include 0 and T when B allows (the edge cases)."""
    rng = np.random.default_rng(seed + 1000)
    L = rng.integers(0, T + 1, size=B)
    if B >= 2:
        L[0], L[-1] = T, 0
    return L


def max_err(got: dict, want: dict) -> float:
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    worst = 0.0
    for k in want:
        assert got[k].shape == want[k].shape, (k, got[k].shape, want[k].shape)
        worst = max(worst, float(np.max(np.abs(got[k] - want[k]), initial=0.0)))
    return worst
