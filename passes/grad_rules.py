"""Derivative rules, one per op: `RULES[op](b, node, g, x) -> cotangent per operand (or None)`.

`g` is the cotangent of the node's output; `x(i)` gives operand i's forward value and `x("out")`
the node's own forward value, both as nodes of the backward graph (loaded from the saved residuals
or recomputed). `NEEDS[op]` says which forward values a rule reads, so the forward saves only those.
A missing rule is a clear error naming the op. Adding an op: add its rule and its NEEDS entry here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ir import Node, PassError, RnncompError, TensorType, Use
from ir.ops import GELU_TANH_C, GELU_TANH_K, SQRT_HALF, axes_of, check_attrs, get_op, infer_type, normalise_axes


class Builder:
    """Makes typed nodes for the backward graph; Python numbers become constants of the right dtype."""

    def __call__(self, op: str, *operands: Any, **attrs: Any) -> Node:
        like = next(o for o in operands if isinstance(o, Node))
        nodes = [o if isinstance(o, Node) else self.const(float(o), like.type.dtype) for o in operands]  # type: ignore[union-attr]
        opdef = get_op(op)
        try:
            attrs = check_attrs(opdef, attrs)
            t = infer_type(opdef, [n.type for n in nodes], attrs)  # type: ignore[misc]
        except RnncompError as e:
            raise PassError(f"grad: building {op} over {[str(n.type) for n in nodes]}: {e}") from None
        return Node(op, [Use(n) for n in nodes], attrs, t)

    def const(self, v: float, dtype) -> Node:
        """One node per (value, dtype): the rules ask for 1.0 at every sigmoid and tanh."""
        cache = self.__dict__.setdefault("_consts", {})
        if (v, dtype) not in cache:
            cache[(v, dtype)] = Node("constant", (), {"value": v, "dtype": dtype}, TensorType(dtype, ()))
        return cache[(v, dtype)]

    def unbroadcast(self, g: Node, like: TensorType) -> Node:
        """Sum `g` down to the shape of an operand that was broadcast."""
        return g if g.type.shape == like.shape else self("sum_to", g, shape=like.shape)  # type: ignore[union-attr]


Rule = Callable[[Builder, Node, Node, Callable[[Any], Node]], list[Node | None]]
RULES: dict[str, Rule] = {}
NEEDS: dict[str, tuple] = {}  # forward values a rule reads: operand indices and/or "out"


def rule(op: str, needs: tuple = ()) -> Callable[[Rule], Rule]:
    def deco(fn: Rule) -> Rule:
        RULES[op], NEEDS[op] = fn, needs
        return fn

    return deco


def get_rule(op: str) -> Rule:
    if op not in RULES:
        raise PassError(f"grad: no derivative rule for op {op!r}; add one in passes/grad_rules.py")
    return RULES[op]


def _ins(node: Node) -> list[TensorType]:
    return [u.node.type for u in node.inputs]  # type: ignore[misc]


@rule("identity")
def _identity(b, n, g, x):
    return [g]


@rule("neg")
def _neg(b, n, g, x):
    return [b("neg", g)]


@rule("add")
def _add(b, n, g, x):
    a, c = _ins(n)
    return [b.unbroadcast(g, a), b.unbroadcast(g, c)]


@rule("sub")
def _sub(b, n, g, x):
    a, c = _ins(n)
    return [b.unbroadcast(g, a), b.unbroadcast(b("neg", g), c)]


@rule("mul", (0, 1))
def _mul(b, n, g, x):
    a, c = _ins(n)
    return [b.unbroadcast(b("mul", g, x(1)), a), b.unbroadcast(b("mul", g, x(0)), c)]


@rule("div", (1, "out"))
def _div(b, n, g, x):
    a, c = _ins(n)
    ga = b("div", g, x(1))
    return [b.unbroadcast(ga, a), b.unbroadcast(b("neg", b("mul", ga, x("out"))), c)]


@rule("tanh", ("out",))
def _tanh(b, n, g, x):
    y = x("out")
    return [b("mul", g, b("sub", 1.0, b("mul", y, y)))]


@rule("sigmoid", ("out",))
def _sigmoid(b, n, g, x):
    y = x("out")
    return [b("mul", g, b("mul", y, b("sub", 1.0, y)))]


def _nan_through(b, d, *vs):
    """`d`, but NaN wherever one of `vs` is NaN: a rule that decides by a comparison (relu, abs, minimum)
    would otherwise give a finite derivative at NaN, since every comparison with NaN is false."""
    for v in vs:
        d = b("where", b("not_equal", v, v), v, d)
    return d


@rule("relu", ("out",))
def _relu(b, n, g, x):
    y = x("out")  # relu(NaN) is NaN: its derivative too, not the 1 that where(NaN, g, 0) would give
    return [_nan_through(b, b("where", y, g, 0.0), y)]


@rule("exp", ("out",))
def _exp(b, n, g, x):
    return [b("mul", g, x("out"))]


@rule("log", (0,))
def _log(b, n, g, x):
    return [b("div", g, x(0))]


@rule("softplus", (0,))
def _softplus(b, n, g, x):
    return [b("mul", g, b("sigmoid", x(0)))]


@rule("where", (0,))
def _where(b, n, g, x):
    _, a, c = _ins(n)
    return [None, b.unbroadcast(b("where", x(0), g, 0.0), a), b.unbroadcast(b("where", x(0), 0.0, g), c)]


@rule("cast")
def _cast(b, n, g, x):
    return [b("cast", g, to=_ins(n)[0].dtype)]


@rule("matmul", (0, 1))
def _matmul(b, n, g, x):
    a, w = _ins(n)
    ga = b("matmul", g, b("transpose", x(1)))
    gw = (
        b("matmul_tn", x(0), g)
        if a.rank > 1
        else b("matmul", b("expand_dims", x(0), axes=(1,)), b("expand_dims", g, axes=(0,)))
    )
    return [ga, gw]


@rule("matmul_tn", (0, 1))
def _matmul_tn(b, n, g, x):
    # out = A^T B over rows: dA = B g^T, dB = A g
    return [b("matmul", x(1), b("transpose", g)), b("matmul", x(0), g)]


def _expand_back(b, n, g, axis, keepdims):
    t = _ins(n)[0]
    if not keepdims:
        g = b("expand_dims", g, axes=normalise_axes(axis, t.rank))
    return b("broadcast_to", g, shape=t.shape)


@rule("sum")
def _sum(b, n, g, x):
    return [_expand_back(b, n, g, n.attrs["axis"], n.attrs["keepdims"])]


@rule("mean")
def _mean(b, n, g, x):
    t, out = _ins(n)[0], n.type
    count = 1
    for d_in in t.shape:
        count *= d_in if isinstance(d_in, int) else 1
    for d_out in out.shape:  # type: ignore[union-attr]
        count //= d_out if isinstance(d_out, int) else 1
    symbolic = [d for d in t.shape if isinstance(d, str)] != [d for d in out.shape if isinstance(d, str)]  # type: ignore[union-attr]
    if symbolic:
        raise PassError(
            f"grad: mean over a symbolic dim of {t} is not supported (its count is unknown at compile time)"
        )
    return [b("div", _expand_back(b, n, g, n.attrs["axis"], n.attrs["keepdims"]), float(count))]


@rule("max", (0, "out"))
def _max(b, n, g, x):
    return [b("max_bwd", x(0), x("out"), g, axis=n.attrs["axis"], keepdims=n.attrs["keepdims"])]


@rule("softmax", ("out",))
def _softmax(b, n, g, x):
    y, ax = x("out"), n.attrs["axis"]
    return [b("mul", y, b("sub", g, b("sum", b("mul", g, y), axis=ax, keepdims=True)))]


@rule("log_softmax", ("out",))
def _log_softmax(b, n, g, x):
    ax = n.attrs["axis"]
    return [b("sub", g, b("mul", b("exp", x("out")), b("sum", g, axis=ax, keepdims=True)))]


@rule("concat")
def _concat(b, n, g, x):
    ax, start, out = n.attrs["axis"], 0, []
    for t in _ins(n):
        size = t.shape[ax]
        out.append(b("slice", g, axis=ax, start=start, stop=start + size))
        start += size
    return out


@rule("split")
def _split(b, n, g, x):
    t = _ins(n)[0]
    ax, parts, i = n.attrs["axis"], n.attrs["parts"], n.attrs["index"]
    size = t.shape[ax] // parts
    return [b("pad", g, axis=ax, before=i * size, after=(parts - 1 - i) * size)]


@rule("slice")
def _slice(b, n, g, x):
    t = _ins(n)[0]
    ax = n.attrs["axis"]
    return [b("pad", g, axis=ax, before=n.attrs["start"], after=t.shape[ax] - n.attrs["stop"])]


@rule("constant")
def _constant(b, n, g, x):
    return []


@rule("dropout_mask")
def _dropout_mask(b, n, g, x):
    return []  # a function of the seed and the step alone: nothing to differentiate


@rule("transpose")
def _transpose(b, n, g, x):
    return [b("transpose", g)]


@rule("sum_to")
def _sum_to(b, n, g, x):
    return [b("broadcast_to", g, shape=_ins(n)[0].shape)]


@rule("broadcast_to")
def _broadcast_to(b, n, g, x):
    return [b("sum_to", g, shape=_ins(n)[0].shape)]


@rule("expand_dims")
def _expand_dims(b, n, g, x):
    # Summing over the inserted size-1 axes removes them again.
    return [b("sum", g, axis=axes_of(n), keepdims=False)]


@rule("pad")
def _pad(b, n, g, x):
    t = _ins(n)[0]
    ax = n.attrs["axis"]
    return [b("slice", g, axis=ax, start=n.attrs["before"], stop=n.attrs["before"] + t.shape[ax])]


@rule("sqrt", ("out",))
def _sqrt(b, n, g, x):
    return [b("div", b("mul", g, 0.5), x("out"))]  # inf at 0, as PyTorch


@rule("rsqrt", ("out",))
def _rsqrt(b, n, g, x):
    y = x("out")  # d/dx x^-1/2 = -y^3 / 2
    return [b("mul", g, b("mul", b("mul", y, y), b("mul", y, -0.5)))]


def _sign(b, v):
    """sign(v) as greater(v, 0) - less(v, 0): 0 at 0 (and at NaN)."""
    return b("sub", b("greater", v, 0.0), b("less", v, 0.0))


@rule("abs", (0,))
def _abs(b, n, g, x):
    return [_nan_through(b, b("mul", g, _sign(b, x(0))), x(0))]  # subgradient 0 at 0, as PyTorch; NaN at NaN


@rule("pow", (0,))
def _pow(b, n, g, x):
    p = n.attrs["exponent"]
    if p == 0.0:
        return [None]  # x ** 0 is 1 everywhere (PyTorch's gradient is 0, also at x = 0)
    return [b("mul", g, b("mul", b("pow", x(0), exponent=p - 1.0), p))]


def _min_max(b, n, g, x, first_wins: str):
    """minimum / maximum: the gradient goes to the operand that wins; a tie splits it equally (as PyTorch).
    A NaN operand wins (the result is NaN): both gradients are NaN there, as max's over a NaN."""
    a, c = _ins(n)
    half = b("mul", b("equal", x(0), x(1)), 0.5)
    ga = _nan_through(b, b("mul", g, b("add", b(first_wins, x(0), x(1)), half)), x(0), x(1))
    gc = _nan_through(b, b("mul", g, b("add", b(first_wins, x(1), x(0)), half)), x(0), x(1))
    return [b.unbroadcast(ga, a), b.unbroadcast(gc, c)]


@rule("minimum", (0, 1))
def _minimum(b, n, g, x):
    return _min_max(b, n, g, x, "less")


@rule("maximum", (0, 1))
def _maximum(b, n, g, x):
    return _min_max(b, n, g, x, "greater")


def _comparison(b, n, g, x):
    return [None, None]  # piecewise constant: zero gradient


for _op in ("less", "greater", "less_equal", "greater_equal", "equal", "not_equal"):
    rule(_op)(_comparison)


@rule("erf", (0,))
def _erf(b, n, g, x):
    v = x(0)  # d/dx erf(x) = 2 / sqrt(pi) exp(-x^2)
    return [b("mul", g, b("mul", b("exp", b("mul", b("mul", v, v), -1.0)), 2.0 / math.sqrt(math.pi)))]


@rule("gelu", (0,))
def _gelu(b, n, g, x):
    v = x(0)
    if not n.attrs["tanh_approx"]:
        # d/dx x Phi(x) = Phi(x) + x phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2, phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
        cdf = b("mul", b("add", b("erf", b("mul", v, SQRT_HALF)), 1.0), 0.5)
        pdf = b("mul", b("exp", b("mul", b("mul", v, v), -0.5)), 1.0 / math.sqrt(2.0 * math.pi))
        return [b("mul", g, b("add", cdf, b("mul", v, pdf)))]
    # y = x s, s = sigmoid(2u), u = c (x + k x^3): dy/dx = s + x s (1 - s) 2c (1 + 3k x^2)
    v2 = b("mul", v, v)
    u2 = b("mul", b("add", v, b("mul", b("mul", v2, v), GELU_TANH_K)), 2.0 * GELU_TANH_C)
    s = b("sigmoid", u2)
    du2 = b("mul", b("add", b("mul", v2, 3.0 * GELU_TANH_K), 1.0), 2.0 * GELU_TANH_C)
    ds = b("mul", b("mul", s, b("sub", 1.0, s)), du2)
    return [b("mul", g, b("add", s, b("mul", v, ds)))]
