"""Gradient checks by central finite differences along random directions (as JAX's check_grads does)."""

from __future__ import annotations

import numpy as np


def loss_and_cotangents(out: dict, seed: int) -> tuple[dict, callable]:
    """Random cotangents for every output, and the scalar loss sum(out * cotangent) they define."""
    rng = np.random.default_rng(seed)
    cot = {k: rng.standard_normal(v.shape) for k, v in out.items()}
    return cot, lambda o: sum(float(np.sum(o[k] * cot[k])) for k in cot)


def check_vjp(
    prog, args: dict, lengths=None, seed: int = 0, directions: int = 2, eps: float = 1e-5, mask_seed=None
) -> float:
    """Largest relative error between <grad, v> from `prog.vjp` and a central difference along v.

    The difference is Richardson-extrapolated from steps eps and eps/2 (error O(eps^4)), so strongly
    curved losses over long sequences do not need a step so small that rounding dominates.
    """
    kw = {} if lengths is None else {"lengths": lengths}
    if mask_seed is not None:  # the dropout masks' seed: every call draws the same masks
        kw["seed"] = mask_seed
    out, backward = prog.vjp(**kw, **args)
    cot, loss = loss_and_cotangents(out, seed)
    grads = backward(cot)
    assert sorted(grads) == sorted(args), (sorted(grads), sorted(args))
    rng = np.random.default_rng(seed + 1)
    worst = 0.0
    for _ in range(directions):
        v = {k: rng.standard_normal(a.shape) for k, a in args.items()}

        def central(h: float, v=v) -> float:
            plus = loss(prog(**kw, **{k: a + h * v[k] for k, a in args.items()}))
            minus = loss(prog(**kw, **{k: a - h * v[k] for k, a in args.items()}))
            return (plus - minus) / (2 * h)

        fd = (4 * central(eps / 2) - central(eps)) / 3
        an = sum(float(np.sum(grads[k] * v[k])) for k in args)
        worst = max(worst, abs(fd - an) / max(abs(fd), abs(an), 1e-3))
    return worst
