"""The text form of a Cell: `print_cell`, and the pieces (`format_node`, `format_attr`, ...) other printers reuse.

```
cell elman {
  seq   x : f32[B, 4]
  param W : f32[4, 8]
  state h : f32[B, 8]
  %0 = matmul(x, W) : f32[B, 8]
  h = tanh(add(%0, h[t-1]))         # nested calls are accepted by the parser, never printed
  out y = h
}
```
Declarations come first (seqs, params, statics, states with their init types), then one line per compute
node in evaluation order, then the per-step outputs. A use at delay d prints as `NAME[t-d]`.
Names are given here, at print time (`ir.names.name_nodes`): a node's own name, else `%k`.
A `yield` line lists the states in order only when the cell needs it (see `_yield_line`).
`ir.parser` reads all of this back: `parse_cell(print_cell(c)) == c`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .dtypes import DType
from .graph import Cell, CycleFound, Node, Use
from .names import name_nodes
from .ops import OPS
from .shapes import is_identifier
from .symexpr import Sym
from .types import TensorType, TupleType

INDENT = "  "
_ALIGN_MAX = 56  # node lines up to this width line their types up in one column


def print_cell(cell: Cell) -> str:
    """The cell as text, one declaration or node per line; invalid cells print too (for error messages)."""
    nodes = _print_order(cell)
    names = name_nodes(nodes)
    declared = {id(n) for n in cell.inputs}
    lines = [f"cell {cell.name} {{"]
    lines += [f"{INDENT}seq   {n.name} : {format_type(n.type)}" for n in cell.seqs]
    lines += [f"{INDENT}param {n.name} : {format_type(n.type)}" for n in cell.params]
    lines += [f"{INDENT}static {n.name} : {format_type(n.type)}" for n in cell.statics]
    lines += [f"{INDENT}state {k} : {format_type(t)}" for k, t in cell.state_types.items()]
    lines += [f"{INDENT}state {k}" for k in cell.states if k not in cell.state_types]
    body = [n for n in nodes if id(n) not in declared]
    heads = [f"{names[id(n)]} = {format_call(n, names)}" for n in body]
    width = max((len(h) for h in heads if len(h) <= _ALIGN_MAX), default=0)
    for head, n in zip(heads, body, strict=True):
        if n.type is None:
            lines.append(INDENT + head)
        else:
            lines.append(f"{INDENT}{head.ljust(width)} : {format_type(n.type)}")
    lines += [f"{INDENT}out {k} = {names[id(n)]}" for k, n in cell.outputs.items()]
    extra = _yield_line(cell, names)
    if extra:
        lines.append(INDENT + extra)
    lines.append("}")
    return "\n".join(lines) + "\n"


def format_node(node: Node, names: dict[int, str]) -> str:
    """`%3 = add(%1, h[t-1]) : f32[B, 8]`: one node as a line (without indentation)."""
    head = f"{names[id(node)]} = {format_call(node, names)}"
    return head if node.type is None else f"{head} : {format_type(node.type)}"


def format_call(node: Node, names: dict[int, str]) -> str:
    """`split(%3, parts=4, index=0, axis=-1)`: the op applied to its uses, then its attributes."""
    args = [format_use(u, names) for u in node.inputs]
    args += [f"{k}={format_attr(v, _attr_kind(node.op, k))}" for k, v in _ordered_attrs(node)]
    return f"{node.op}(" + ", ".join(args) + ")"


def format_use(use: Use, names: dict[int, str]) -> str:
    """`h` for a use at delay 0, `h[t-2]` for delay 2."""
    name = names.get(id(use.node)) or use.node.name or "%?"
    return f"{name}[t-{use.delay}]" if use.delay else name


def format_type(t: TensorType | TupleType | None) -> str:
    """`f32[B, 16]`, `f32[]` for a scalar, `(f32[B], f64[2])` for a tuple type."""
    if t is None:
        return "?"
    if isinstance(t, TupleType):
        return "(" + ", ".join(format_type(i) for i in t.items) + ")"
    return f"{t.dtype}[" + ", ".join(str(d) for d in t.shape) + "]"


def format_attr(value: Any, kind: str | None = None) -> str:
    """An attribute value as the parser reads it: `3`, `1e-05`, `-inf`, `true`, `none`, `f32`, `(0, 1)`,
    `(B, 16)`, `[[1.0, 2.0]]`, `"T//4"`.

    `kind` is the attribute's kind from the op table; kind "value" (a constant's array) prints
    tuples as nested lists. A symbolic count prints as a quoted expression; a loop's body (a
    Region) is not an attribute value here: the program printer writes it as a block.
    """
    if value is None:
        return "none"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _format_float(float(value))
    if isinstance(value, DType):
        return value.value
    if isinstance(value, Sym):
        return f'"{value.text}"'
    if isinstance(value, str):
        if is_identifier(value):
            return value
        if '"' not in value and "\n" not in value:
            return f'"{value}"'
    if isinstance(value, np.ndarray):
        return _format_array(value.tolist())
    if isinstance(value, list) or (kind == "value" and isinstance(value, tuple)):
        return _format_array(value)
    if isinstance(value, tuple):
        inner = ", ".join(format_attr(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    raise TypeError(f"cannot print attribute value {value!r} of type {type(value).__name__}")


# ---------------------------------------------------------------- helpers


def _format_float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    return repr(x)  # shortest text that reads back to the same float; 'inf' and '-inf' included


def _format_array(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_format_array(x) for x in v) + "]"
    return _format_float(float(v))


def _attr_kind(op: str, key: str) -> str | None:
    spec = OPS[op].attrs.get(key) if op in OPS else None
    return spec.kind if spec is not None else None


def _ordered_attrs(node: Node) -> list[tuple[str, Any]]:
    """Attributes in the op's declaration order (then any it does not declare)."""
    declared = list(OPS[node.op].attrs) if node.op in OPS else []
    keys = [k for k in declared if k in node.attrs] + [k for k in node.attrs if k not in declared]
    return [(k, node.attrs[k]) for k in keys]


def _print_order(cell: Cell) -> list[Node]:
    """`cell.nodes()`; for a cell with a delay-0 cycle (invalid), every reachable node in discovery order."""
    try:
        return cell.nodes()
    except CycleFound:
        order, seen = list(cell.inputs), {id(n) for n in cell.inputs}
        stack = list(reversed(cell.roots()))
        while stack:
            n = stack.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            order.append(n)
            stack.extend(reversed([u.node for u in n.inputs]))
        return order


def _yield_line(cell: Cell, names: dict[int, str]) -> str:
    """`yield c, h = %5`: needed only when the states' order differs from their declarations or a
    state's node does not print under the state's name; empty otherwise."""
    declared = list(cell.state_types) + [k for k in cell.states if k not in cell.state_types]
    canonical = [k for k in declared if k in cell.states] == list(cell.states) and all(
        names.get(id(n)) == k for k, n in cell.states.items()
    )
    if canonical:
        return ""
    items = [k if names.get(id(n)) == k else f"{k} = {names.get(id(n), '%?')}" for k, n in cell.states.items()]
    return "yield " + ", ".join(items)
