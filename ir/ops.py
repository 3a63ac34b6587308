"""The op table: one record per op (`OpDef`), holding everything the passes need to know of it.

Adding an op touches these places, and no others:
  1. here: its `OpDef`: arity, attrs, `infer` type rule, `numpy` reference semantics, and what the
     passes read: `kind` ("elementwise" makes it fusable), `cheap` (grad recomputes it rather than
     saving it), `rows` (how it treats batch rows, for passes/rows.py), `time_batchable` (hoist may
     compute it over all steps at once) and `axes` (the axes it works along, normalised);
  2. `passes/grad_rules.py`: its derivative rule (a missing rule is a clear error naming the op);
  3. each backend's lowering table: an elementwise op is one entry in
     `rnncomp/backends/common/scalars.py` (SCALARS, the spelling both Numba printers share); a scalar
     function it names through `ctx.fn(name, dtype)` is `math.<name>` (numba_cpu/codegen.py MATH,
     numba_cuda/context.py fn) or a helper: its one definition in common/helpers.py (numba-cuda
     writes its source as a device function), its `njit` line in numba_cpu/kernels.py and its module
     in numba_cpu/codegen.py HELPERS. Any other op: an entry in numba_cpu/emit.py (KERNELS, or a view:
     VIEWS there, common/views.py VIEW_INDEX and passes/fuse.py VIEWS) and numba_cuda/kernels.py KERNELS.
     The numpy backend needs nothing beyond `numpy` here. An op a backend cannot run is listed in that
     backend's UNSUPPORTED with the reason (tests/test_lowering_tables.py checks every op and helper);
  4. `rnncomp/dsl.py` (and its name in `rnncomp/__init__.py`): a user-facing function, if users
     should call it directly;
  5. tests: its row in `tests/test_ops.py` (oracle and finite-difference gradient; the newer ops' rows
     also run on numba-cpu and numba-cuda in tests/test_ops_backends.py), a text round-trip case in
     tests/test_text.py OP_CASES and, for a DSL function, a case in tests/test_dsl.py OP_CASES (both
     tests fail when an op or function has none).
The text forms (ir/printer.py, ir/parser.py and the program ones) read the table: nothing to add there.
sqrt, rsqrt, abs, pow, erf, gelu, minimum, maximum and the comparisons were added touching only these.
The NumPy function is the normative meaning: the reference interpreter, constant folding and the
tests all call it, so the backends are checked against one definition.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from . import dimexpr
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


# How an op treats batch rows (axis 0 of a batched value), for passes/rows.py, which has one rule per name:
ROW_RULES = {
    "elementwise": "broadcasting: an operand whose axis 0 lines up with the result's carries the batch with it",
    "select": "select_active(t, lengths, new, old): elementwise, and lengths is read at the result's row",
    "axes": "works along `axes`: keeps rows apart unless axis 0 is one of them; batched operands go together",
    "matmul": "a[..., K] @ w: keeps rows apart when w is the same for every row",
    "fill": "a fresh value: batched when its shape starts with the batch extent",
    "mask": "philox_mask(t, seed): a draw per element, batched when its shape starts with the batch extent; it reads "
    "its own row (in the whole batch: a block of rows offsets it), its step and seed are the same for every row",
    "invariant": "the same for every row (a constant)",
    "serial": "mixes rows or indexes the batch axis (`rows_why` says how): the loop stays sequential",
}

Axes = Callable[[list[TensorType], dict[str, Any], TensorType], tuple[int, ...]]


@dataclass(frozen=True)
class OpDef:
    """One op: its type rule and meaning, and what every pass needs to know of it (see the module)."""

    name: str
    arity: int | None  # None: one or more operands
    infer: Callable[[list[TensorType], dict[str, Any]], TensorType] | None
    numpy: Callable[..., np.ndarray] | None
    attrs: dict[str, Attr] = field(default_factory=dict)
    kind: str = "other"  # source | elementwise | reduction | matmul | shape | control
    cheap: bool = False  # grad recomputes it from its operands rather than saving it per step
    rows: str | None = None  # a key of ROW_RULES; None: "elementwise" for an elementwise op (else an error)
    rows_why: str = ""  # for rows="serial": how the op mixes rows (shown in the rows verdict)
    time_batchable: bool = False  # hoist may apply it to whole sequences at once (one GEMM over T*B rows)
    axes: Axes | None = None  # (operand types, attrs, result type) -> the axes it works along, in 0..rank-1

    @property
    def elementwise(self) -> bool:
        return self.kind == "elementwise"


OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    """Add an op to the table; its record must say how it treats batch rows (see ROW_RULES)."""
    if op.rows is None and op.elementwise:
        op = replace(op, rows="elementwise")
    if op.rows not in ROW_RULES:
        raise VerifyError(f"op {op.name!r}: rows={op.rows!r} is not one of {', '.join(ROW_RULES)}")
    if (op.rows == "serial") != bool(op.rows_why):
        raise VerifyError(f"op {op.name!r}: rows_why says how a rows='serial' op mixes rows (and only then)")
    if op.rows == "axes" and op.axes is None:
        raise VerifyError(f"op {op.name!r}: rows='axes' needs `axes`, the axes it works along")
    OPS[op.name] = op
    return op


def get_op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise UnknownOpError(f"unknown op {name!r}; known ops: {', '.join(sorted(OPS))}") from None


def normalise_axes(axis: Any, rank: int) -> tuple[int, ...]:
    """An `axis` attribute (None: all, an int, or a sequence of ints) as sorted axes in 0..rank-1."""
    if axis is None:
        return tuple(range(rank))
    seq = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = tuple(sorted({norm_axis(int(a), rank) for a in seq}))
    if len(out) != len(seq):
        raise ShapeError(f"repeated axis in {axis!r}")
    return out


def axes_of(node: Any) -> tuple[int, ...]:
    """The axes a node's op works along (its record's `axes` rule), normalised; () for other ops."""
    op = get_op(node.op)
    if op.axes is None:
        return ()
    return op.axes([u.node.type for u in node.inputs], node.attrs, node.type)


def attr_axis(ins: list[TensorType], attrs: dict[str, Any], out: TensorType) -> tuple[int, ...]:
    """The one axis of an `axis` attribute (split, slice, softmax, concat, pad: operand rank = result rank)."""
    return (norm_axis(attrs["axis"], out.rank),)


def reduced_axes(ins: list[TensorType], attrs: dict[str, Any], out: TensorType) -> tuple[int, ...]:
    """The axes of operand 0 that a reduction's `axis` attribute names."""
    return normalise_axes(attrs["axis"], ins[0].rank)


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


def _infer_reduce(name: str):
    def infer(ins: list[TensorType], attrs: dict) -> TensorType:
        (t,) = ins
        _float_operands(name, ins)
        axes = normalise_axes(attrs["axis"], t.rank)
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
    for t in ins:
        for i in range(rank):
            if i != ax and t.shape[i] != ins[0].shape[i]:
                raise ShapeError(
                    f"concat along axis {attrs['axis']}: dim {i} differs: " + ", ".join(str(t) for t in ins)
                )
    total = dimexpr.add(*(t.shape[ax] for t in ins))  # H and H make 2*H
    return TensorType(dt, ins[0].shape[:ax] + (total,) + ins[0].shape[ax + 1 :])


def _infer_split(ins: list[TensorType], attrs: dict) -> TensorType:
    (t,) = ins
    ax = norm_axis(attrs["axis"], t.rank)
    n, parts, index = t.shape[ax], attrs["parts"], attrs["index"]
    if parts < 1 or isinstance(n, int) and n % parts:
        raise ShapeError(f"split: dim {n} of {t} along axis {attrs['axis']} does not divide into {parts} parts")
    if not 0 <= index < parts:
        raise ShapeError(f"split: index {index} is outside 0..{parts - 1}")
    if isinstance(n, int):
        return t.with_shape(t.shape[:ax] + (n // parts,) + t.shape[ax + 1 :])
    try:  # a symbolic dim: 4*H into 4 parts is H; H into 4 is H//4 (a call must bind H to a multiple of 4)
        piece = dimexpr.divide(n, parts)
    except dimexpr.DimError as e:
        raise ShapeError(
            f"split: dim {n} of {t} along axis {attrs['axis']} does not divide into {parts} parts: {e}"
        ) from None
    return t.with_shape(t.shape[:ax] + (piece,) + t.shape[ax + 1 :])


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


_ERF, _ERFC = np.frompyfunc(math.erf, 1, 1), np.frompyfunc(math.erfc, 1, 1)
SQRT_HALF = math.sqrt(0.5)
GELU_TANH_C, GELU_TANH_K = math.sqrt(2.0 / math.pi), 0.044715


def _float64_then(fn: Callable, x: np.ndarray) -> np.ndarray:
    """`fn` of Python floats over an array, computed in float64 and rounded once to x's dtype."""
    return np.asarray(fn(np.asarray(x, dtype=np.float64)), dtype=np.float64).astype(x.dtype, copy=False)


def _erf(x: np.ndarray) -> np.ndarray:
    return _float64_then(_ERF, x)


def _gelu(x: np.ndarray, tanh_approx: bool) -> np.ndarray:
    """Exact GELU, x * Phi(x) = 0.5 x erfc(-x / sqrt 2) (erfc keeps its relative accuracy for x << 0,
    where 1 + erf(x / sqrt 2) cancels); with tanh_approx, PyTorch's approximate='tanh' form
    0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3), written with the stable sigmoid."""
    if tanh_approx:
        with np.errstate(over="ignore", invalid="ignore"):
            u = 2.0 * GELU_TANH_C * (x + GELU_TANH_K * x * x * x)
        return (x * _sigmoid(u)).astype(x.dtype, copy=False)
    return _float64_then(lambda v: 0.5 * v * _ERFC(-v * SQRT_HALF).astype(np.float64), x)


def _rsqrt(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.reciprocal(np.sqrt(x))


def _pow(x: np.ndarray, exponent: float) -> np.ndarray:
    """x ** exponent (a constant) in x's dtype: 0 ** 0 = 1, 0 ** -1 = inf, (-8) ** (1/3) = NaN, and
    x ** 0.5 = sqrt(x) (so (-inf) ** 0.5 = NaN), as NumPy's power with a scalar exponent."""
    return np.power(x, x.dtype.type(exponent))


def _compare(fn: Callable) -> Callable:
    """A comparison as 0/1 values of the operands' float dtype (NaN compares false, except not_equal)."""
    return lambda a, b: fn(a, b).astype(np.result_type(a, b), copy=False)


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
_DECLARED = "a declaration: a loop body's parameters get their class from the loop"

for _name in ("seq", "param", "static", "state", "input"):
    # Sources: their type comes from a declaration, not from operands.
    register(OpDef(_name, 0, None, None, kind="source", rows="serial", rows_why=_DECLARED))

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
    register(OpDef(_name, 1, _unary(_name), _fn, kind="elementwise", cheap=True))

for _name, _fn in {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}.items():
    register(OpDef(_name, 2, _binary(_name), _fn, kind="elementwise"))

for _name, _fn in {"sqrt": np.sqrt, "rsqrt": _rsqrt, "abs": np.abs, "erf": _erf}.items():
    register(OpDef(_name, 1, _unary(_name), _fn, kind="elementwise", cheap=True))
register(OpDef("pow", 1, _unary("pow"), _pow, {"exponent": Attr("float")}, "elementwise", cheap=True))
register(OpDef("gelu", 1, _unary("gelu"), _gelu, {"tanh_approx": Attr("bool", False)}, "elementwise", cheap=True))
# minimum / maximum propagate NaN (as np.minimum / np.maximum); comparisons give 0/1 in the operands' dtype.
COMPARISONS = {
    "less": np.less,
    "greater": np.greater,
    "less_equal": np.less_equal,
    "greater_equal": np.greater_equal,
    "equal": np.equal,
    "not_equal": np.not_equal,
}
for _name, _fn in {
    "minimum": np.minimum,
    "maximum": np.maximum,
    **{k: _compare(f) for k, f in COMPARISONS.items()},
}.items():
    register(OpDef(_name, 2, _binary(_name), _fn, kind="elementwise", cheap=True))

register(OpDef("where", 3, _infer_where, _where, kind="elementwise"))
register(
    OpDef("cast", 1, _infer_cast, lambda x, to: x.astype(to.numpy), {"to": Attr("dtype")}, "elementwise", cheap=True)
)
register(OpDef("matmul", 2, _infer_matmul, np.matmul, kind="matmul", rows="matmul", time_batchable=True))
for _name, _fn in {"sum": np.sum, "mean": np.mean, "max": np.max}.items():
    register(
        OpDef(
            _name,
            1,
            _infer_reduce(_name),
            lambda x, axis, keepdims, _fn=_fn: _fn(x, axis=_np_axes(axis), keepdims=keepdims),
            _REDUCE_ATTRS,
            "reduction",
            rows="axes",
            axes=reduced_axes,
        )
    )
for _name, _fn in {"softmax": _softmax, "log_softmax": _log_softmax}.items():
    register(
        OpDef(_name, 1, _infer_softmax(_name), _fn, {"axis": Attr("int", -1)}, "reduction", rows="axes", axes=attr_axis)
    )
register(
    OpDef(
        "concat",
        None,
        _infer_concat,
        lambda *xs, axis: np.concatenate(xs, axis=axis),
        {"axis": Attr("int")},
        "shape",
        rows="axes",
        axes=attr_axis,
    )
)
register(
    OpDef(
        "split",
        1,
        _infer_split,
        _split,
        {"parts": Attr("int"), "index": Attr("int"), "axis": Attr("int", -1)},
        "shape",
        rows="axes",
        axes=attr_axis,
    )
)
register(
    OpDef(
        "slice",
        1,
        _infer_slice,
        _slice,
        {"axis": Attr("int"), "start": Attr("int"), "stop": Attr("int")},
        "shape",
        rows="axes",
        axes=attr_axis,
    )
)
register(
    OpDef(
        "constant",
        0,
        _infer_constant,
        lambda value, dtype: np.asarray(value, dtype=dtype.numpy),
        {"value": Attr("value"), "dtype": Attr("dtype", DType.f32)},
        "source",
        rows="invariant",
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
    "ROW_RULES",
    "attr_axis",
    "axes_of",
    "check_attrs",
    "describe_call",
    "get_op",
    "infer_type",
    "normalise_axes",
    "reduced_axes",
    "register",
]
