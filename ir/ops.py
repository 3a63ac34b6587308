"""The op table: one declaration per op (arity, attributes, type rule, NumPy semantics).

Adding an op touches these places, and no others:
  1. here: an `OpDef` (arity, attrs, `infer` type rule, `numpy` reference semantics; `kind`
     "elementwise" makes it fusable);
  2. `passes/grad_rules.py`: its derivative rule (a missing rule is a clear error naming the op);
  3. `rnncomp/backends/numba_cpu/emit.py` (and the CUDA emitter): how it is written in generated code;
  4. `rnncomp/dsl.py`: a user-facing function, if users should call it directly;
  5. `tests/test_ops.py`: its row in the op table test (oracle, gradient, every backend).
The NumPy function is the normative meaning: the reference interpreter, constant folding and the
tests all call it, so the backends are checked against one definition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .dtypes import DType, as_dtype
from .errors import ShapeError, UnknownOpError, VerifyError
from .shapes import as_shape, broadcast, norm_axis
from .symexpr import count
from .types import TensorType

REQUIRED = object()


@dataclass(frozen=True)
class Attr:
    """An attribute's kind ('int', 'float', 'bool', 'dtype', 'axes', 'value', 'any') and default."""

    kind: str
    default: Any = REQUIRED


@dataclass(frozen=True)
class OpDef:
    name: str
    arity: int | None  # None: one or more operands
    infer: Callable[[list[TensorType], dict[str, Any]], TensorType] | None
    numpy: Callable[..., np.ndarray] | None
    attrs: dict[str, Attr] = field(default_factory=dict)
    kind: str = "other"  # source | elementwise | reduction | matmul | shape | control


OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    OPS[op.name] = op
    return op


def get_op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise UnknownOpError(f"unknown op {name!r}; known ops: {', '.join(sorted(OPS))}") from None


# ---------------------------------------------------------------- attributes


def check_attrs(op: OpDef, attrs: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise attributes against the declaration; fill defaults."""
    unknown = set(attrs) - set(op.attrs)
    if unknown:
        raise VerifyError(
            f"{op.name}: unknown attribute {sorted(unknown)[0]!r}; it takes {', '.join(sorted(op.attrs)) or 'none'}"
        )
    out: dict[str, Any] = {}
    for key, spec in op.attrs.items():
        if key not in attrs:
            if spec.default is REQUIRED:
                raise VerifyError(f"{op.name}: missing attribute {key!r}")
            out[key] = spec.default
        else:
            out[key] = check_attr(op.name, key, spec.kind, attrs[key])
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_attr(op: str, key: str, kind: str, v: Any) -> Any:
    """Validate one attribute value of the given kind; return its normal form."""
    bad = VerifyError(f"{op}: attribute {key}={v!r} is not a valid {kind}")
    if kind == "int":
        if not _is_int(v):
            raise bad
        return int(v)
    if kind == "bool":
        if not isinstance(v, (bool, np.bool_)):
            raise bad
        return bool(v)
    if kind == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
            raise bad
        return float(v)
    if kind == "dtype":
        return as_dtype(v)
    if kind == "axes":
        if v is None:
            return None
        if _is_int(v):
            return int(v)
        if isinstance(v, (tuple, list)) and all(_is_int(a) for a in v):
            return tuple(int(a) for a in v)
        raise bad
    if kind == "axis_list":  # an int is a list of one axis (as in np.expand_dims)
        if _is_int(v):
            return (int(v),)
        if isinstance(v, (tuple, list)) and all(_is_int(a) for a in v):
            return tuple(int(a) for a in v)
        raise bad
    if kind == "shape":
        return as_shape(v)
    if kind == "count":
        return count(v)
    if kind == "value":
        try:
            return freeze_value(np.asarray(v, dtype=np.float64))
        except (ValueError, TypeError):
            raise VerifyError(f"{op}: attribute {key} is not a rectangular array of numbers: {v!r}") from None
    return v


def freeze_value(arr: np.ndarray) -> Any:
    """A constant's value as a float or nested tuples: hashable, printable, exact."""
    if arr.ndim == 0:
        return float(arr)
    return tuple(freeze_value(a) for a in arr)


# ---------------------------------------------------------------- type rules


def _float_operands(name: str, ins: list[TensorType]) -> None:
    for i, t in enumerate(ins):
        if not t.dtype.is_float:
            raise ShapeError(f"{name} needs float operands; operand {i} is {t}")


def _same_dtype(name: str, ins: list[TensorType]) -> DType:
    dts = {t.dtype for t in ins}
    if len(dts) > 1:
        raise ShapeError(f"{name}: operand dtypes differ: " + ", ".join(str(t) for t in ins))
    return ins[0].dtype


def _unary(name: str):
    def infer(ins: list[TensorType], attrs: dict) -> TensorType:
        _float_operands(name, ins)
        return ins[0]

    return infer


def _binary(name: str):
    def infer(ins: list[TensorType], attrs: dict) -> TensorType:
        _float_operands(name, ins)
        dt = _same_dtype(name, ins)
        return TensorType(dt, broadcast(*(t.shape for t in ins)))

    return infer


def _infer_where(ins: list[TensorType], attrs: dict) -> TensorType:
    _float_operands("where", ins[1:])
    dt = _same_dtype("where", ins[1:])
    return TensorType(dt, broadcast(*(t.shape for t in ins)))


def _infer_matmul(ins: list[TensorType], attrs: dict) -> TensorType:
    a, b = ins
    _float_operands("matmul", ins)
    dt = _same_dtype("matmul", ins)
    if a.rank < 1 or b.rank != 2:
        raise ShapeError(f"matmul needs a[..., K] @ b[K, N]; got {a} @ {b}")
    if a.shape[-1] != b.shape[0]:
        raise ShapeError(f"matmul: inner dims differ: {a} @ {b} ({a.shape[-1]} != {b.shape[0]})")
    return TensorType(dt, a.shape[:-1] + (b.shape[1],))


def _reduce_axes(t: TensorType, axes: Any) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(t.rank))
    seq = (axes,) if isinstance(axes, int) else axes
    out = tuple(sorted({norm_axis(a, t.rank) for a in seq}))
    if len(out) != len(seq):
        raise ShapeError(f"repeated axis in {axes!r}")
    return out


def _infer_reduce(name: str):
    def infer(ins: list[TensorType], attrs: dict) -> TensorType:
        (t,) = ins
        _float_operands(name, ins)
        axes = _reduce_axes(t, attrs["axis"])
        if attrs["keepdims"]:
            shape = tuple(1 if i in axes else d for i, d in enumerate(t.shape))
        else:
            shape = tuple(d for i, d in enumerate(t.shape) if i not in axes)
        return t.with_shape(shape)

    return infer


def _infer_softmax(name: str):
    def infer(ins: list[TensorType], attrs: dict) -> TensorType:
        (t,) = ins
        _float_operands(name, ins)
        norm_axis(attrs["axis"], t.rank)
        return t

    return infer


def _int_dim(t: TensorType, axis: int, what: str) -> int:
    d = t.shape[axis]
    if not isinstance(d, int):
        raise ShapeError(f"{what} along axis {axis} of {t} needs a concrete dim, got symbol {d!r}")
    return d


def _infer_concat(ins: list[TensorType], attrs: dict) -> TensorType:
    dt = _same_dtype("concat", ins)
    ranks = {t.rank for t in ins}
    if len(ranks) != 1:
        raise ShapeError("concat: operand ranks differ: " + ", ".join(str(t) for t in ins))
    rank = ranks.pop()
    ax = norm_axis(attrs["axis"], rank)
    total = 0
    for t in ins:
        for i in range(rank):
            if i != ax and t.shape[i] != ins[0].shape[i]:
                raise ShapeError(
                    f"concat along axis {attrs['axis']}: dim {i} differs: " + ", ".join(str(t) for t in ins)
                )
        total += _int_dim(t, ax, "concat")
    return TensorType(dt, ins[0].shape[:ax] + (total,) + ins[0].shape[ax + 1 :])


def _infer_split(ins: list[TensorType], attrs: dict) -> TensorType:
    (t,) = ins
    ax = norm_axis(attrs["axis"], t.rank)
    n, parts, index = _int_dim(t, ax, "split"), attrs["parts"], attrs["index"]
    if parts < 1 or n % parts:
        raise ShapeError(f"split: dim {n} of {t} along axis {attrs['axis']} does not divide into {parts} parts")
    if not 0 <= index < parts:
        raise ShapeError(f"split: index {index} is outside 0..{parts - 1}")
    return t.with_shape(t.shape[:ax] + (n // parts,) + t.shape[ax + 1 :])


def _infer_slice(ins: list[TensorType], attrs: dict) -> TensorType:
    (t,) = ins
    ax = norm_axis(attrs["axis"], t.rank)
    n, start, stop = _int_dim(t, ax, "slice"), attrs["start"], attrs["stop"]
    if not 0 <= start <= stop <= n:
        raise ShapeError(f"slice: need 0 <= start <= stop <= {n} on axis {attrs['axis']} of {t}; got {start}:{stop}")
    return t.with_shape(t.shape[:ax] + (stop - start,) + t.shape[ax + 1 :])


def _infer_constant(ins: list[TensorType], attrs: dict) -> TensorType:
    return TensorType(attrs["dtype"], np.shape(attrs["value"]))


def _infer_cast(ins: list[TensorType], attrs: dict) -> TensorType:
    return ins[0].with_dtype(attrs["to"])


# ---------------------------------------------------------------- NumPy semantics


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    s = x - m
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _np_axes(axis: Any) -> Any:
    return axis if axis is None or isinstance(axis, int) else tuple(axis)


def _split(x: np.ndarray, parts: int, index: int, axis: int) -> np.ndarray:
    return np.split(x, parts, axis=axis)[index]


def _slice(x: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    idx = [slice(None)] * x.ndim
    idx[axis] = slice(start, stop)
    return x[tuple(idx)]


def _where(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(c != 0, a, b)


# ---------------------------------------------------------------- the table

_REDUCE_ATTRS = {"axis": Attr("axes", None), "keepdims": Attr("bool", False)}

for _name in ("seq", "param", "state", "input"):
    # Sources: their type comes from a declaration, not from operands.
    register(OpDef(_name, 0, None, None, kind="source"))

_UNARY = {
    "identity": lambda x: x,
    "neg": np.negative,
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "relu": lambda x: np.maximum(x, 0).astype(x.dtype, copy=False),
    "exp": np.exp,
    "log": np.log,
    "softplus": lambda x: np.logaddexp(0, x).astype(x.dtype, copy=False),
}
for _name, _fn in _UNARY.items():
    register(OpDef(_name, 1, _unary(_name), _fn, kind="elementwise"))

for _name, _fn in {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}.items():
    register(OpDef(_name, 2, _binary(_name), _fn, kind="elementwise"))

register(OpDef("where", 3, _infer_where, _where, kind="elementwise"))
register(OpDef("cast", 1, _infer_cast, lambda x, to: x.astype(to.numpy), {"to": Attr("dtype")}, "elementwise"))
register(OpDef("matmul", 2, _infer_matmul, np.matmul, kind="matmul"))
register(
    OpDef(
        "sum",
        1,
        _infer_reduce("sum"),
        lambda x, axis, keepdims: np.sum(x, axis=_np_axes(axis), keepdims=keepdims),
        _REDUCE_ATTRS,
        "reduction",
    )
)
register(
    OpDef(
        "mean",
        1,
        _infer_reduce("mean"),
        lambda x, axis, keepdims: np.mean(x, axis=_np_axes(axis), keepdims=keepdims),
        _REDUCE_ATTRS,
        "reduction",
    )
)
register(
    OpDef(
        "max",
        1,
        _infer_reduce("max"),
        lambda x, axis, keepdims: np.max(x, axis=_np_axes(axis), keepdims=keepdims),
        _REDUCE_ATTRS,
        "reduction",
    )
)
register(OpDef("softmax", 1, _infer_softmax("softmax"), _softmax, {"axis": Attr("int", -1)}, "reduction"))
register(OpDef("log_softmax", 1, _infer_softmax("log_softmax"), _log_softmax, {"axis": Attr("int", -1)}, "reduction"))
register(
    OpDef(
        "concat", None, _infer_concat, lambda *xs, axis: np.concatenate(xs, axis=axis), {"axis": Attr("int")}, "shape"
    )
)
register(
    OpDef(
        "split", 1, _infer_split, _split, {"parts": Attr("int"), "index": Attr("int"), "axis": Attr("int", -1)}, "shape"
    )
)
register(
    OpDef("slice", 1, _infer_slice, _slice, {"axis": Attr("int"), "start": Attr("int"), "stop": Attr("int")}, "shape")
)
register(
    OpDef(
        "constant",
        0,
        _infer_constant,
        lambda value, dtype: np.asarray(value, dtype=dtype.numpy),
        {"value": Attr("value"), "dtype": Attr("dtype", DType.f32)},
        "source",
    )
)


def infer_type(op: OpDef, ins: list[TensorType], attrs: dict[str, Any]) -> TensorType:
    """Check arity and apply the op's type rule; errors name the op and its operand types."""
    if op.infer is None:
        raise VerifyError(f"{op.name} is a source: its type comes from its declaration")
    for i, t in enumerate(ins):
        if not isinstance(t, TensorType) and op.name != "item":
            raise ShapeError(f"{op.name}: operand {i} is {t}, not a tensor (take a part of a loop's results with item)")
    if op.arity is None:
        if not ins:
            raise ShapeError(f"{op.name} needs at least one operand, got none")
    elif len(ins) != op.arity:
        raise ShapeError(f"{op.name} takes {op.arity} operand(s), got {len(ins)}")
    return op.infer(ins, attrs)


def describe_call(op: str, ins: list[TensorType], names: list[str] | None = None) -> str:
    """`add(%0: f32[B, 8], %1: f32[B, 4])`: how errors show an op applied to its operands."""
    names = names or [f"#{i}" for i in range(len(ins))]
    return f"{op}(" + ", ".join(f"{n}: {t}" for n, t in zip(names, ins)) + ")"


__all__ = [
    "Attr",
    "OpDef",
    "OPS",
    "REQUIRED",
    "check_attrs",
    "describe_call",
    "get_op",
    "infer_type",
    "register",
]
