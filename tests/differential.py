"""The differential fuzzer: random valid cells compiled on numba-cpu and on the numpy backend (the
reference interpreter) must agree in forward values and in gradients (float64, to ~1e-10).

Numba compiles about a second per program, so cells are checked in batches: `random_union` puts many
random cells side by side in one cell (they share no value), whose one forward and one backward
program check them all; a disagreement names its output or gradient, whose prefix `c<i>_` names the
cell (and so its seed). Each batch draws its unroll mode, length, batch size, variable lengths and
direction from its own seed, so a failure reproduces from `check_batch(seeds, batch_seed)` alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import rnncomp as rc
from tests.cellgen import random_union
from tests.support import random_args, random_lengths

TOLERANCE = 1e-10  # |numba - numpy| / (1 + |numpy|), float64
MODES = ["loop", "full", 2, 3]


@dataclass
class Batch:
    """What one batch checked and what disagreed (`problems`: one line each, naming the cell's seed)."""

    seeds: list[int]
    options: dict
    problems: list[str]
    worst: float


def options_for(batch_seed: int) -> dict:
    """The compile and call options of a batch, drawn from its seed."""
    rng = np.random.default_rng(batch_seed)
    return {
        "unroll": MODES[int(rng.integers(len(MODES)))],
        "T": int(rng.integers(1, 6)),
        "B": int(rng.integers(1, 4)),
        "lengths": bool(rng.integers(2)),
        "reverse": bool(rng.integers(3) == 0),
    }


def _compare(what: str, got: dict, want: dict, seeds: list[int], problems: list[str]) -> float:
    worst = 0.0
    if sorted(got) != sorted(want):
        problems.append(f"{what}: names differ: {sorted(set(got) ^ set(want))}")
        return np.inf
    for k in want:
        a, b = np.asarray(got[k]), np.asarray(want[k])
        cell = seeds[int(k.split("_")[0][1:])] if k.startswith("c") and "_" in k else None
        if a.shape != b.shape:
            problems.append(f"{what} {k} (cell seed {cell}): shape {a.shape} != {b.shape}")
            continue
        err = float(np.max(np.abs(a - b) / (1.0 + np.abs(b)), initial=0.0)) if a.size else 0.0
        if not np.array_equal(np.isnan(a), np.isnan(b)) or not err <= TOLERANCE:
            problems.append(f"{what} {k} (cell seed {cell}): error {err:.3g}")
        worst = max(worst, err if np.isfinite(err) else np.inf)
    return worst


def check_batch(seeds: list[int], batch_seed: int, max_ops: int = 12, **overrides: object) -> Batch:
    """Compile the union of the cells of `seeds` (each of up to `max_ops` ops) on both backends and
    compare values and gradients; `overrides` replace options drawn from `batch_seed`."""
    o = {**options_for(batch_seed), **overrides}
    cell = random_union(seeds, dtype="f64", max_ops=max_ops)
    T, B = o["T"], o["B"]
    args = random_args(cell, T, B, seed=batch_seed, inits=True)
    kw = {"lengths": random_lengths(T, B, seed=batch_seed)} if o["lengths"] else {}
    length = T if o["unroll"] == "full" else "T"
    common = {"length": length, "unroll": o["unroll"], "reverse": o["reverse"], "dtype": "float64"}
    fast = rc.compile(cell, backend="numba-cpu", **common)
    ref = rc.compile(cell, backend="numpy", **common)
    problems: list[str] = []
    out_f, back_f = fast.vjp(**kw, **args)
    out_r, back_r = ref.vjp(**kw, **args)
    worst = _compare("forward", out_f, out_r, seeds, problems)
    rng = np.random.default_rng(batch_seed + 1)
    cot = {k: rng.standard_normal(np.shape(v)) for k, v in out_r.items()}
    worst = max(worst, _compare("gradient", back_f(cot), back_r(cot), seeds, problems))
    return Batch(list(seeds), o, problems, worst)


def batches(n_cells: int, per_batch: int, first_seed: int = 0) -> list[tuple[list[int], int]]:
    """(cell seeds, batch seed) for `n_cells` cells from `first_seed` on, `per_batch` to a batch."""
    out = []
    for start in range(first_seed, first_seed + n_cells, per_batch):
        seeds = list(range(start, min(start + per_batch, first_seed + n_cells)))
        out.append((seeds, 10_000 + start))
    return out
