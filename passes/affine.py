"""Is a loop-carried value affine in its own previous value? `decompose` answers with (a, b) or why not.

A carried value's new value `r` is read as optional masks (`select_active(t, lengths, X, h)`, and
`select_active(t, lo, h, X)` under truncation: the step is the identity outside lo <= t < lengths)
around an expression X built from h by add, sub, neg, identity, and mul / div by values that do not
read h. Then X = a * h + b with a and b body nodes that do not read h (built here, next to X).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ir import Node, TensorType, Use
from ir.dtypes import DType
from ir.ops import check_attrs, get_op, infer_type

LINEAR_OPS = ("add", "sub", "neg", "mul", "div", "identity")


@dataclass
class Affine:
    """new value = masks around (a * h + b); `masks` as (kind "hi" | "lo", the body node of the bound)."""

    a: Node
    b: Node
    masks: list[tuple[str, Node]] = field(default_factory=list)


class NotAffine(Exception):
    """Why a carried value is not affine in its previous value (the message says it for the user)."""


def node(op: str, *operands: Node, **attrs) -> Node:
    """A new node of `op` over `operands`, its type from the op's rule."""
    d = get_op(op)
    full = check_attrs(d, attrs)
    return Node(op, [Use(o) for o in operands], full, infer_type(d, [o.type for o in operands], full))  # type: ignore[misc]


def constant(value: float, dt: DType) -> Node:
    return Node("constant", (), {"value": float(value), "dtype": dt}, TensorType(dt, ()))


def decompose(new: Node, prev: Node, t: Node) -> Affine:
    """`new` (a loop body's result) as masks around a * prev + b; NotAffine says why it is not."""
    masks: list[tuple[str, Node]] = []
    x = new
    while x.op == "select_active" and x.inputs[0].node is t:
        _, bound, on, off = (u.node for u in x.inputs)
        if off is prev and "hi" not in dict(masks):
            masks.append(("hi", bound))
            x = on
        elif on is prev and "lo" not in dict(masks):
            masks.append(("lo", bound))
            x = off
        else:
            break
    reads = _reach(x, prev)
    if not reads.get(id(x)):
        raise NotAffine("its new value does not read its previous value (nothing to scan)")
    dt = prev.type.dtype  # type: ignore[union-attr]
    memo: dict[int, tuple[Node | None, Node | None]] = {}

    def walk(n: Node) -> tuple[Node | None, Node | None]:
        """(a, b) of n = a * prev + b; None is zero (for a: n does not read prev)."""
        if not reads.get(id(n)):
            return None, n
        if id(n) in memo:
            return memo[id(n)]
        if n is prev:
            out: tuple[Node | None, Node | None] = (constant(1.0, dt), None)
        elif n.op in ("matmul", "matmul_tn"):
            raise NotAffine(
                f"its previous value goes through {n.op}, which mixes features (node {_label(n)}): "
                "the pass scans elementwise recurrences"
            )
        elif n.op not in LINEAR_OPS:
            raise NotAffine(f"its previous value passes through {n.op}, which is not linear (node {_label(n)})")
        else:
            ops = [u.node for u in n.inputs]
            parts = [walk(o) for o in ops]
            if n.op == "identity":
                out = parts[0]
            elif n.op == "neg":
                out = (_neg(parts[0][0]), _neg(parts[0][1]))
            elif n.op in ("add", "sub"):
                (a1, b1), (a2, b2) = parts
                f = _add if n.op == "add" else _sub
                out = (f(a1, a2), f(b1, b2))
            else:  # mul, div
                lhs, rhs = ops
                if n.op == "div" and reads.get(id(rhs)):
                    raise NotAffine(f"it divides by a value that reads its previous value (node {_label(n)})")
                if n.op == "mul" and reads.get(id(lhs)) and reads.get(id(rhs)):
                    raise NotAffine(f"it multiplies its previous value by itself (node {_label(n)})")
                (a1, b1), other = (parts[0], rhs) if reads.get(id(lhs)) else (parts[1], lhs)
                out = (_scale(n.op, a1, other), _scale(n.op, b1, other))
        memo[id(n)] = out
        return out

    a, b = walk(x)
    if a is None:  # the reads cancelled out: cannot happen through walk, kept as a guard
        raise NotAffine("its new value does not read its previous value (nothing to scan)")
    return Affine(a, b if b is not None else constant(0.0, dt), masks)


def _reach(root: Node, target: Node) -> dict[int, bool]:
    """id(n) -> whether n reads `target` (for the nodes under root), without recursion."""
    out: dict[int, bool] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        n, done = stack.pop()
        if id(n) in out:
            continue
        if n is target:
            out[id(n)] = True
        elif done:
            out[id(n)] = any(out[id(u.node)] for u in n.inputs)
        else:
            stack.append((n, True))
            stack.extend((u.node, False) for u in n.inputs if id(u.node) not in out)
    return out


def _label(n: Node) -> str:
    return f"{n.name or n.op} : {n.type}"


def _neg(x: Node | None) -> Node | None:
    return None if x is None else node("neg", x)


def _add(x: Node | None, y: Node | None) -> Node | None:
    if x is None or y is None:
        return y if x is None else x
    return node("add", x, y)


def _sub(x: Node | None, y: Node | None) -> Node | None:
    if y is None:
        return x
    return node("neg", y) if x is None else node("sub", x, y)


def _scale(op: str, x: Node | None, other: Node) -> Node | None:
    if x is None:
        return None
    if op == "mul" and x.op == "constant" and x.attrs["value"] == 1.0 and not x.type.shape:  # type: ignore[union-attr]
        return other
    return node(op, x, other)
