"""How each elementwise op is spelled as a Python scalar expression: one table for both Numba printers.

An entry's `expr(ctx, node, operand scalars, index)` returns the expression; `ctx` is the printer
(numba-cpu's generator or numba-cuda's context): `ctx.fn(name, dtype)` names the scalar function
for the target (`math.tanh`, a helper), `ctx.lit(value, dtype)` a typed literal. `index(node, k,
idx)` gives operand k's index when it is not NumPy broadcasting (select_active reads its step and
lengths differently).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ir import Node
from ir.dtypes import DType
from ir.mask_ops import kept_value, off_value
from ir.philox import SEQUENCE, threshold

Index = tuple[str, ...]


@dataclass(frozen=True)
class Scalar:
    expr: Callable[[Any, Node, list[str], Index], str]  # (ctx, node, operand scalars, index) -> expression
    index: Callable[[Node, int, Index], Index] | None = None  # operand k's index; default: broadcasting


def broadcast_index(op_shape: tuple, out_shape: tuple, idx: Index) -> Index:
    """NumPy broadcasting: an operand's index for an index of the result ("0" on stretched dims)."""
    off = len(out_shape) - len(op_shape)
    return tuple("0" if d == 1 else idx[off + k] for k, d in enumerate(op_shape))


def operand_index(rule: Scalar, node: Node, k: int, idx: Index) -> Index:
    """Operand k's index for the element of `node` at `idx`."""
    if rule.index is not None:
        return rule.index(node, k, idx)
    return broadcast_index(node.inputs[k].node.type.shape, node.type.shape, idx)  # type: ignore[union-attr]


def _fn(name: str) -> Callable[[Any, Node, list[str], Index], str]:
    return lambda ctx, n, a, idx: f"{ctx.fn(name, n.type.dtype)}({a[0]})"


def _binary(sym: str) -> Scalar:
    return Scalar(lambda ctx, n, a, idx: f"{a[0]} {sym} {a[1]}")


def _pow(ctx, n: Node, a: list[str], idx: Index) -> str:
    """x ** p; x ** 0.5 is sqrt(x), as NumPy's power (-inf ** 0.5 is NaN there, not C's inf)."""
    p, dt = n.attrs["exponent"], n.type.dtype
    if p == 0.5:
        return f"{ctx.fn('sqrt', dt)}({a[0]})"
    return f"{ctx.fn('pow', dt)}({a[0]}, {ctx.lit(p, dt)})"


def _gelu(ctx, n: Node, a: list[str], idx: Index) -> str:
    return f"{ctx.fn('gelu_tanh' if n.attrs['tanh_approx'] else 'gelu', n.type.dtype)}({a[0]})"


def _pick(test: str) -> Scalar:
    """minimum (test <=) / maximum (>=): a NaN operand wins, as in np.minimum / np.maximum."""
    return Scalar(lambda ctx, n, a, idx: f"{a[0]} if {a[0]} {test} {a[1]} or {a[0]} != {a[0]} else {a[1]}")


def _compare(sym: str) -> Scalar:
    """A comparison as 0/1 of the result's dtype (NaN compares false, except !=)."""

    def expr(ctx, n: Node, a: list[str], idx: Index) -> str:
        dt = n.type.dtype
        return f"{ctx.lit(1.0, dt)} if {a[0]} {sym} {a[1]} else {ctx.lit(0.0, dt)}"

    return Scalar(expr)


def _relu(ctx, n: Node, a: list[str], idx: Index) -> str:
    z = ctx.lit(0.0, n.type.dtype)
    return f"{z} if {a[0]} <= {z} else {a[0]}"  # NaN fails the test and passes through


def _select_index(n: Node, k: int, idx: Index) -> Index:
    if k == 0:
        return ()
    if k == 1:
        return idx[:1]
    return broadcast_index(n.inputs[k].node.type.shape, n.type.shape, idx)


def _philox_index(n: Node, k: int, idx: Index) -> Index:
    return () if k == 0 else ("0",)  # the step; the seed's first word (the others are read below)


def _philox_mask(ctx, n: Node, a: list[str], idx: Index) -> str:
    """A dropout / zoneout mask element (ir/mask_ops.py): `philox_keep` of the element's counter, drawn
    only when the seed words say so (`on`), else the mask's expectation."""
    at, dt = n.attrs, n.type.dtype
    seed = n.inputs[1].node
    k1, t0, on = (ctx.read(seed, (str(i),)) for i in (1, 2, 3))
    row, feat = ("0", idx[0]) if len(idx) == 1 else idx
    base = ctx.row_base(n)  # a block of a row-parallel loop: its first row in the whole batch
    row = row if base is None else f"{base} + {row}"
    step = str(SEQUENCE) if at["sequence"] else f"{a[0]} + {t0}"
    ctx.helpers.add("philox_keep")
    draw = f"philox_keep({step}, {row}, {feat}, {at['site']}, {a[1]}, {k1}, {threshold(at['p'])})"
    kept, zero = ctx.lit(kept_value(at["p"], at["zoneout"]), dt), ctx.lit(0.0, dt)
    return f"({kept} if {draw} else {zero}) if {on} != 0 else {ctx.lit(off_value(at['p'], at['zoneout']), dt)}"


CAST = {DType.f32: "np.float32", DType.f64: "np.float64", DType.i32: "np.int32", DType.i64: "np.int64"}

SCALARS: dict[str, Scalar] = {
    "identity": Scalar(lambda ctx, n, a, idx: a[0]),
    "neg": Scalar(lambda ctx, n, a, idx: f"-{a[0]}"),
    "tanh": Scalar(_fn("tanh")),
    "sigmoid": Scalar(_fn("sigmoid")),
    "exp": Scalar(_fn("exp")),
    "log": Scalar(_fn("log")),
    "softplus": Scalar(_fn("softplus")),
    "relu": Scalar(_relu),
    "add": _binary("+"),
    "sub": _binary("-"),
    "mul": _binary("*"),
    "div": _binary("/"),
    "where": Scalar(lambda ctx, n, a, idx: f"{a[1]} if {a[0]} != 0 else {a[2]}"),
    "cast": Scalar(lambda ctx, n, a, idx: f"{CAST[n.attrs['to']]}({a[0]})"),
    "select_active": Scalar(lambda ctx, n, a, idx: f"{a[2]} if {a[0]} < {a[1]} else {a[3]}", _select_index),
    "philox_mask": Scalar(_philox_mask, _philox_index),
    "sqrt": Scalar(_fn("sqrt")),
    "rsqrt": Scalar(_fn("rsqrt")),
    "abs": Scalar(lambda ctx, n, a, idx: f"abs({a[0]})"),
    "erf": Scalar(_fn("erf")),
    "pow": Scalar(_pow),
    "gelu": Scalar(_gelu),
    "minimum": _pick("<="),
    "maximum": _pick(">="),
    "less": _compare("<"),
    "greater": _compare(">"),
    "less_equal": _compare("<="),
    "greater_equal": _compare(">="),
    "equal": _compare("=="),
    "not_equal": _compare("!="),
}
