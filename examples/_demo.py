"""Shared by the example scripts: print a cell's IR, compile it with the default backend, check it.

The run compiles the cell (numba-cpu unless `RNNCOMP_BACKEND` says otherwise), runs it on seeded
random data, compares outputs with the float64 oracle and prints a gradient of `sum(outputs)`.
"""

from __future__ import annotations

import time

import numpy as np

import rnncomp as rc
from ir.shapes import substitute
from rnncomp import Cell
from rnncomp.reference import run


def random_arguments(cell: Cell, T: int = 5, B: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random seqs `(T, B, ...)`, params (scaled by 1/sqrt(fan-in)) and statics `(B, ...)` for `cell`."""
    rng = np.random.default_rng(seed)
    env = {"T": T, "B": B}
    args = {}
    for s in cell.seqs:
        args[s.name] = rng.standard_normal((T,) + substitute(s.type.shape, env))
    for p in cell.params:
        shape = substitute(p.type.shape, env)
        args[p.name] = rng.standard_normal(shape) / np.sqrt(shape[0] if len(shape) == 2 else 1.0)
    for u in cell.statics:  # one value per batch row
        args[u.name] = rng.standard_normal(substitute(u.type.shape, env))
    return args


def demo(cell: Cell, T: int = 5, B: int = 3) -> dict[str, np.ndarray]:
    """Print the IR; compile (float64); run forward and backward; compare with the oracle."""
    print(cell)
    args = random_arguments(cell, T, B)
    want = run(cell, **args, strict=True)
    t0 = time.perf_counter()
    prog = rc.compile(cell, dtype="float64")
    got = prog(**args)
    t1 = time.perf_counter()
    print(f"\n{prog}: first call (compile + run) {t1 - t0:.2f} s")
    for name, value in got.items():
        err = float(np.max(np.abs(value - want[name]), initial=0.0))
        print(
            f"{name}: shape {value.shape}, first values {np.round(value.ravel()[:4], 4).tolist()}, "
            f"max |rnncomp - oracle| = {err:.1e}"
        )
        if err > 1e-10 * max(1.0, float(np.max(np.abs(want[name]), initial=0.0))):
            raise SystemExit(f"{name}: rnncomp and the oracle disagree by {err:.3e}")
    outputs = [k for k in got if k not in cell.states]
    loss, grads = prog.value_and_grad(outputs[0], **args)
    norms = ", ".join(f"{k} {np.linalg.norm(g):.4f}" for k, g in grads.items())
    print(f"loss = sum({outputs[0]}) = {loss:.6f}; gradient norms: {norms}")
    return got
