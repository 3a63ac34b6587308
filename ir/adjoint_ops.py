"""Ops the grad pass emits (shape plumbing for cotangents); they register into the one op table."""

from __future__ import annotations

import numpy as np

from .errors import ShapeError
from .ops import Attr, OpDef, attr_axis, normalise_axes, reduced_axes, register
from .shapes import broadcast, norm_axis
from .types import TensorType


def _infer_transpose(ins: list[TensorType], attrs: dict) -> TensorType:
    (x,) = ins
    if x.rank < 2:
        raise ShapeError(f"transpose swaps the last two axes; {x} has rank {x.rank}")
    return x.with_shape(x.shape[:-2] + (x.shape[-1], x.shape[-2]))


def _infer_sum_to(ins: list[TensorType], attrs: dict) -> TensorType:
    (x,) = ins
    target = attrs["shape"]
    try:
        if broadcast(x.shape, target) != x.shape:
            raise ShapeError("")
    except ShapeError:
        raise ShapeError(
            f"sum_to: {x} does not reduce to shape {list(target)} (it must broadcast to the operand)"
        ) from None
    return x.with_shape(target)


def _sum_to(x: np.ndarray, shape: tuple) -> np.ndarray:
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and x.shape[lead + i] != 1)
    return np.sum(x, axis=axes).reshape(shape) if axes else x


def _infer_broadcast_to(ins: list[TensorType], attrs: dict) -> TensorType:
    (x,) = ins
    target = attrs["shape"]
    if broadcast(x.shape, target) != tuple(target):
        raise ShapeError(f"broadcast_to: {x} does not broadcast to {list(target)}")
    return x.with_shape(target)


def _last_two(ins: list[TensorType], attrs: dict, out: TensorType) -> tuple[int, ...]:
    return (out.rank - 2, out.rank - 1)


def _stretched(ins: list[TensorType], attrs: dict, out: TensorType) -> tuple[int, ...]:
    """broadcast_to: the result's axes that the operand does not have or stretches from 1."""
    x, lead = ins[0], out.rank - ins[0].rank
    return tuple(k for k in range(out.rank) if k < lead or (x.shape[k - lead] == 1 and out.shape[k] != 1))


def _summed(ins: list[TensorType], attrs: dict, out: TensorType) -> tuple[int, ...]:
    """sum_to: the operand's axes that the result does not have or keeps as 1."""
    return _stretched([out], attrs, ins[0])


def _inserted(ins: list[TensorType], attrs: dict, out: TensorType) -> tuple[int, ...]:
    """expand_dims: the result's new axes."""
    return normalise_axes(attrs["axes"], out.rank)


def _infer_expand_dims(ins: list[TensorType], attrs: dict) -> TensorType:
    (x,) = ins
    rank = x.rank + len(attrs["axes"])
    axes = normalise_axes(attrs["axes"], rank)
    dims = list(x.shape)
    for a in axes:
        dims.insert(a, 1)
    return x.with_shape(tuple(dims))


def _infer_pad(ins: list[TensorType], attrs: dict) -> TensorType:
    (x,) = ins
    ax = norm_axis(attrs["axis"], x.rank)
    n = x.shape[ax]
    if not isinstance(n, int):
        raise ShapeError(f"pad along a symbolic dim of {x}")
    return x.with_shape(x.shape[:ax] + (attrs["before"] + n + attrs["after"],) + x.shape[ax + 1 :])


def _pad(x: np.ndarray, axis: int, before: int, after: int) -> np.ndarray:
    widths = [(0, 0)] * x.ndim
    widths[axis] = (before, after)
    return np.pad(x, widths)


def _infer_matmul_tn(ins: list[TensorType], attrs: dict) -> TensorType:
    a, b = ins
    if a.rank < 2 or a.shape[:-1] != b.shape[:-1] or a.dtype != b.dtype:
        raise ShapeError(f"matmul_tn contracts the leading axes of a[..., K] and b[..., N]; got {a} and {b}")
    return TensorType(a.dtype, (a.shape[-1], b.shape[-1]))


def _matmul_tn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def _infer_max_bwd(ins: list[TensorType], attrs: dict) -> TensorType:
    return ins[0]


def _max_bwd(x: np.ndarray, y: np.ndarray, g: np.ndarray, axis, keepdims: bool) -> np.ndarray:
    """The cotangent of max: shared equally between tied maxima (as JAX does); NaN over a group whose
    max is NaN (a NaN wins the max, and no entry equals it)."""
    axes = normalise_axes(axis, x.ndim)
    if not keepdims:
        y, g = np.expand_dims(y, axes), np.expand_dims(g, axes)
    mask = (x == y).astype(x.dtype)
    shared = mask * g / np.maximum(np.sum(mask, axis=axes, keepdims=True), 1)
    return np.where(np.isnan(y), y, shared)


register(
    OpDef("transpose", 1, _infer_transpose, lambda x: np.swapaxes(x, -1, -2), {}, "shape", rows="axes", axes=_last_two)
)
register(
    OpDef(
        "sum_to",
        1,
        _infer_sum_to,
        _sum_to,
        {"shape": Attr("shape")},
        "reduction",
        rows="serial",
        rows_why="it may sum over the batch",
        axes=_summed,
    )
)
register(
    OpDef(
        "broadcast_to",
        1,
        _infer_broadcast_to,
        lambda x, shape: np.broadcast_to(x, shape).copy(),
        {"shape": Attr("shape")},
        "shape",
        rows="axes",
        axes=_stretched,
    )
)
register(
    OpDef(
        "expand_dims",
        1,
        _infer_expand_dims,
        lambda x, axes: np.expand_dims(x, tuple(axes)),
        {"axes": Attr("axis_list")},
        "shape",
        rows="axes",
        axes=_inserted,
    )
)
register(
    OpDef(
        "pad",
        1,
        _infer_pad,
        _pad,
        {"axis": Attr("int"), "before": Attr("int"), "after": Attr("int")},
        "shape",
        rows="axes",
        axes=attr_axis,
    )
)
register(
    OpDef(
        "matmul_tn",
        2,
        _infer_matmul_tn,
        _matmul_tn,
        {},
        "matmul",
        rows="serial",
        rows_why="it contracts the batch axis",
    )
)
register(
    OpDef(
        "max_bwd",
        3,
        _infer_max_bwd,
        _max_bwd,
        {"axis": Attr("axes", None), "keepdims": Attr("bool", False)},
        "reduction",
        rows="axes",
        axes=reduced_axes,
    )
)
