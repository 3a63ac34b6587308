"""Ops that only appear in Programs (after unrolling): time indexing, stacking, buffers, masks, loops.

They register into the same op table as the math ops (see ir/ops.py for how to add an op).
"""

from __future__ import annotations

import numpy as np

from .dtypes import DType
from .errors import ShapeError
from .ops import Attr, OpDef, register
from .shapes import broadcast
from .types import TensorType, TupleType


def _infer_step(ins: list[TensorType], attrs: dict) -> TensorType:
    (x,) = ins
    if x.rank < 1:
        raise ShapeError(f"step needs a stacked (T, ...) operand, got {x}")
    n = x.shape[0]
    if isinstance(n, int) and not 0 <= attrs["index"] < n:
        raise ShapeError(f"step index {attrs['index']} is outside 0..{n - 1} of {x}")
    return x.with_shape(x.shape[1:])


def _infer_stack(ins: list[TensorType], attrs: dict) -> TensorType:
    if len({t for t in ins}) != 1:
        raise ShapeError("stack: operand types differ: " + ", ".join(str(t) for t in ins))
    return ins[0].with_shape((len(ins),) + ins[0].shape)


def _infer_zeros(ins: list[TensorType], attrs: dict) -> TensorType:
    return TensorType(attrs["dtype"], attrs["shape"])


def _infer_item(ins: list[TensorType], attrs: dict) -> TensorType:
    (t,) = ins
    if not isinstance(t, TupleType) or not 0 <= attrs["index"] < len(t.items):
        raise ShapeError(f"item {attrs['index']} of {t}: not a tuple part")
    return t.items[attrs["index"]]


def _infer_select(ins: list[TensorType], attrs: dict) -> TensorType:
    t, lengths, a, b = ins
    if t.rank != 0 or t.dtype.is_float:
        raise ShapeError(f"select_active: the step must be an integer scalar, got {t}")
    if lengths.rank != 1 or lengths.dtype.is_float:
        raise ShapeError(f"select_active: lengths must be an integer vector (B,), got {lengths}")
    out = broadcast(a.shape, b.shape)
    if a.dtype != b.dtype:
        raise ShapeError(f"select_active: operand dtypes differ: {a}, {b}")
    if not out or out[0] != lengths.shape[0]:
        raise ShapeError(f"select_active: the leading dim of {TensorType(a.dtype, out)} must be the batch {lengths}")
    return TensorType(a.dtype, out)


def _select_active(t: np.ndarray, lengths: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.broadcast_arrays(a, b)
    mask = (int(t) < lengths).reshape((-1,) + (1,) * (a.ndim - 1))
    return np.where(mask, a, b)


def _infer_loop(ins: list[TensorType], attrs: dict) -> TupleType:
    body = attrs["body"]
    n_carry, n_buf = attrs["n_carry"], attrs["n_buf"]
    carries = [r.type for r in body.results[:n_carry]]
    bufs = ins[n_carry + attrs["n_xs"] : n_carry + attrs["n_xs"] + n_buf]
    return TupleType(tuple(carries) + tuple(bufs))


def _infer_shift(ins: list[TensorType], attrs: dict) -> TensorType:
    trace, init = ins
    if trace.shape[1:] != init.shape or trace.dtype != init.dtype:
        raise ShapeError(f"shift: init {init} is not one step of {trace}")
    return trace


def _shift(trace: np.ndarray, init: np.ndarray, reverse: bool) -> np.ndarray:
    """Each step's previous value: init then trace[:-1] (or, reversed, trace[1:] then init)."""
    out = np.empty_like(trace)
    if len(trace):
        if reverse:
            out[:-1], out[-1] = trace[1:], init
        else:
            out[1:], out[0] = trace[:-1], init
    return out


register(
    OpDef(
        "shift",
        2,
        _infer_shift,
        _shift,
        {"reverse": Attr("bool", False)},
        "shape",
        rows="serial",
        rows_why="it shifts along axis 0",
    )
)
register(
    OpDef(
        "step",
        1,
        _infer_step,
        lambda x, index: x[index],
        {"index": Attr("int")},
        "shape",
        rows="serial",
        rows_why="it indexes the batch axis",
    )
)
register(
    OpDef(
        "stack",
        None,
        _infer_stack,
        lambda *xs: np.stack(xs),
        {},
        "shape",
        rows="serial",
        rows_why="it stacks along axis 0",
    )
)
register(
    OpDef(
        "zeros",
        0,
        _infer_zeros,
        lambda shape, dtype: np.zeros(shape, dtype.numpy),
        {"shape": Attr("shape"), "dtype": Attr("dtype", DType.f32)},
        "source",
        rows="fill",
    )
)
register(
    OpDef(
        "item",
        1,
        _infer_item,
        lambda t, index: t[index],
        {"index": Attr("int")},
        "control",
        rows="serial",
        rows_why="a part of a nested loop's results",
    )
)
register(OpDef("select_active", 4, _infer_select, _select_active, {}, "elementwise", rows="select"))
register(
    OpDef(
        "loop",
        None,
        _infer_loop,
        None,  # the interpreter runs loops itself
        {
            "body": Attr("any"),
            "length": Attr("count"),
            "start": Attr("count", 0),
            "stride": Attr("int", 1),
            "reverse": Attr("bool", False),
            "n_carry": Attr("int"),
            "n_xs": Attr("int"),
            "n_buf": Attr("int"),
        },
        "control",
        rows="serial",
        rows_why="a nested loop",
    )
)
