"""The scan ops of Programs: a linear recurrence run over a whole sequence, and its final value.

`linear_scan(a, b, init[, hi][, lo])` is h[t] = a[t] * h[t-1] + b[t] elementwise, h[-1] = init, over
the steps of its stacked operands (`reverse`: from the last step to the first, h[T] = init). An
operand whose rank is one more than init's is stacked `(T, ...)`; one of init's rank or less is the
same at every step; both broadcast to init's shape. `hi` (lengths) and `lo` (lengths_lo), present as
the attributes say, make the step of batch row r the identity (a = 1, b = 0) unless lo[r] <= t < hi[r].
`last_step(trace, init)` is the value after the last step run: trace[T-1] (reverse: trace[0]), init
when T = 0. The `linear_scan` pass writes these (passes/linear_scan.py).
"""

from __future__ import annotations

import numpy as np

from .errors import ShapeError
from .ops import Attr, OpDef, register
from .shapes import broadcast
from .types import TensorType


def timed(operand: TensorType, init: TensorType) -> bool:
    """Whether a scan coefficient is stacked over time (one more axis than the state)."""
    return operand.rank == init.rank + 1


def _infer_scan(ins: list[TensorType], attrs: dict) -> TensorType:
    a, b, init = ins[:3]
    masks = ins[3:]
    want = int(attrs["hi"]) + int(attrs["lo"])
    if len(masks) != want:
        raise ShapeError(
            f"linear_scan: hi={attrs['hi']}, lo={attrs['lo']} take {want} mask operand(s), got {len(masks)}"
        )
    lead = []
    for what, t in (("a", a), ("b", b)):
        if t.dtype != init.dtype:
            raise ShapeError(f"linear_scan: coefficient {what} is {t}, the state is {init}: dtypes differ")
        step = t.shape[1:] if timed(t, init) else t.shape
        if timed(t, init):
            lead.append(t.shape[0])
        if len(step) > init.rank or broadcast(step, init.shape) != init.shape:
            raise ShapeError(f"linear_scan: coefficient {what} ({t}) does not broadcast to the state {init} at a step")
    if not lead:
        raise ShapeError(f"linear_scan: neither coefficient is stacked over time (one axis more than the state {init})")
    if len(set(lead)) != 1:
        raise ShapeError(f"linear_scan: the coefficients' step counts differ: {a}, {b}")
    for m in masks:
        if m.rank != 1 or m.dtype.is_float or not init.shape or m.shape[0] != init.shape[0]:
            raise ShapeError(f"linear_scan: a mask must be an integer vector of the batch ({init.shape[:1]}), got {m}")
    return init.with_shape((lead[0],) + init.shape)


def _linear_scan(a, b, init, *masks, reverse: bool, hi: bool, lo: bool) -> np.ndarray:
    a_t, b_t = a.ndim == init.ndim + 1, b.ndim == init.ndim + 1
    T = a.shape[0] if a_t else b.shape[0]
    h = np.array(init, copy=True)
    out = np.empty((T,) + h.shape, dtype=np.result_type(a, b, init))
    mk = list(masks)
    hi_v, lo_v = (mk.pop(0) if hi else None), (mk.pop(0) if lo else None)
    col = (-1,) + (1,) * (h.ndim - 1)
    for t in range(T - 1, -1, -1) if reverse else range(T):
        new = (a[t] if a_t else a) * h + (b[t] if b_t else b)
        active = np.ones(h.shape[:1], dtype=bool)
        if hi_v is not None:
            active &= t < hi_v
        if lo_v is not None:
            active &= t >= lo_v
        h = np.where(active.reshape(col), new, h) if h.ndim else new
        out[t] = h
    return out


def _infer_last(ins: list[TensorType], attrs: dict) -> TensorType:
    trace, init = ins
    if trace.shape[1:] != init.shape or trace.dtype != init.dtype:
        raise ShapeError(f"last_step: init {init} is not one step of {trace}")
    return init


def _last_step(trace: np.ndarray, init: np.ndarray, reverse: bool) -> np.ndarray:
    if not len(trace):
        return np.array(init, copy=True)
    return np.array(trace[0] if reverse else trace[-1], copy=True)


register(
    OpDef(
        "linear_scan",
        None,
        _infer_scan,
        _linear_scan,
        {"reverse": Attr("bool", False), "hi": Attr("bool", False), "lo": Attr("bool", False)},
        "other",
        rows="serial",
        rows_why="it runs along axis 0 (time)",
    )
)
register(
    OpDef(
        "last_step",
        2,
        _infer_last,
        _last_step,
        {"reverse": Attr("bool", False)},
        "shape",
        rows="serial",
        rows_why="it indexes axis 0 (time)",
    )
)
