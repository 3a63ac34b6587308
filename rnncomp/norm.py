"""Layer normalisation (Ba, Kiros and Hinton 2016) as a DSL function over the op table's ops.

`rc.layer_norm` is a composition of `mean`, `sub`, `mul`, `add` and `rsqrt`: no op of its own, so the
grad pass differentiates it with the existing rules and the backends fuse its elementwise parts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ir import DSLError, ShapeError

from .dsl import Value, _user_site, apply, rsqrt


def layer_norm(x: Value, axis: int = -1, eps: float = 1e-5, gain: Any = None, bias: Any = None) -> Value:
    """Layer norm over the feature axis: `(x - mean) / sqrt(var + eps) * gain + bias`.

    As PyTorch's `F.layer_norm(x, (F,), gain, bias, eps)`: the mean and the biased variance are taken
    over the last axis of each batch row (the feature axis; `axis` may only name it, as -1 or
    rank - 1), then the optional `gain` and `bias` (each a value of shape `(F,)`, usually a Param)
    scale and shift each feature. `eps` (> 0) is added to the variance.

    Example, the normalised pre-activations of a LayerNorm LSTM::

        z = rc.layer_norm(x @ Wx, gain=gx, bias=bx) + rc.layer_norm(h @ Wh, gain=gh)
    """
    site = _user_site()
    if not isinstance(x, Value):
        raise DSLError(f"{site}: layer_norm: x must be a cell value, got {x!r}")
    rank = x.type.rank
    if rank < 2:
        raise ShapeError(f"{site}: layer_norm: x must be (batch, ..., features), got {x.type}")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis not in (-1, rank - 1):
        what = "the batch axis" if axis in (0, -rank) else "not the feature axis"
        raise ShapeError(
            f"{site}: layer_norm: axis={axis!r} is {what} of x {x.type}; layer_norm normalises over the feature "
            f"axis, the last one (axis=-1 or {rank - 1})"
        )
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise DSLError(f"{site}: layer_norm: eps must be a positive number, got {eps!r}")
    if not (math.isfinite(float(eps)) and float(eps) > 0):
        raise DSLError(f"{site}: layer_norm: eps must be > 0 (it keeps 1/sqrt(var + eps) finite), got eps={eps!r}")
    features = x.type.shape[-1]
    for name, v in (("gain", gain), ("bias", bias)):
        if v is None:
            continue
        if not isinstance(v, Value):
            raise DSLError(
                f"{site}: layer_norm: {name} must be a cell value of shape ({features},) (a Param), got {v!r}"
            )
        if v.type.shape != (features,):
            raise ShapeError(
                f"{site}: layer_norm: {name} has type {v.type}, but x {x.type} has {features} features: "
                f"{name} must have shape ({features},)"
            )
    mu = apply("mean", x, axis=-1, keepdims=True)
    d = x - mu
    var = apply("mean", d * d, axis=-1, keepdims=True)
    y = d * rsqrt(var + float(eps))
    if gain is not None:
        y = y * gain
    if bias is not None:
        y = y + bias
    return y
