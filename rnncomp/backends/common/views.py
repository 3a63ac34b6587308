"""How each view op re-indexes its operand: one table for both Numba printers.

A view (split, slice, step, transpose, expand_dims, broadcast_to) computes nothing; a read of
the view at an index is a read of its operand at `VIEW_INDEX[op](node, idx)`. Attributes and dims
reach generated code only through `int_attr` / `int_dim`, which let nothing but ints pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ir import Node
from ir.ops import axes_of

from .errors import LoweringError
from .scalars import Index, broadcast_index


def int_attr(n: Node, attr: str) -> int:
    """An int attribute, checked: attributes are written into code, so nothing else may pass."""
    v = n.attrs[attr]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise LoweringError(f"{n.op}: attribute {attr}={v!r} is not an int")
    return int(v)


def int_dim(d: Any) -> int:
    if isinstance(d, bool) or not isinstance(d, int):
        raise LoweringError(f"a concrete dim was expected, got {d!r}")
    return d


def axis_of(n: Node) -> int:
    (ax,) = axes_of(n)  # the op's one `axis`, normalised by its record
    return ax


def shifted(i: str, k: int) -> str:
    """Index `i` plus the constant k, as text (`k + i`; `i` when k is 0)."""
    return i if k == 0 else f"{k} + {i}" if i != "0" else str(k)


def split_start(n: Node) -> int:
    return int_attr(n, "index") * int_dim(n.type.shape[axis_of(n)])  # type: ignore[union-attr]


def slice_start(n: Node) -> int:
    return int_attr(n, "start")


def _offset(start: Callable[[Node], int]) -> Callable[[Node, Index], Index]:
    def index(n: Node, idx: Index) -> Index:
        ax = axis_of(n)
        return idx[:ax] + (shifted(idx[ax], start(n)),) + idx[ax + 1 :]

    return index


def _expand_index(n: Node, idx: Index) -> Index:
    axes = axes_of(n)
    return tuple(i for k, i in enumerate(idx) if k not in axes)


VIEW_INDEX: dict[str, Callable[[Node, Index], Index]] = {
    "split": _offset(split_start),
    "slice": _offset(slice_start),
    "step": lambda n, idx: (str(int_attr(n, "index")),) + idx,
    "transpose": lambda n, idx: idx[:-2] + (idx[-1], idx[-2]),
    "expand_dims": _expand_index,
    "broadcast_to": lambda n, idx: broadcast_index(n.inputs[0].node.type.shape, n.type.shape, idx),  # type: ignore[union-attr]
}
