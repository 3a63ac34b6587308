"""A broadcast param's gradient summed inside the backward loop, per row, instead of after it.

A param added to a per-row value at every step (a bias: `z = x @ W + b`) has a (B, F) cotangent per
step, summed over the steps and the rows. Summed after the loop, that reads the stacked (T, B, F)
cotangent once more (13 MB for the LSTM at I=128, H=256, B=32, T=100); summed in the loop, each
step adds its value into a (B, F) state (init zeros, like a static's `sum@u`; per row, so the rows
stay independent and their blocks run side by side), and only a (B, F) -> (F,) sum follows the loop.
A concat along the param's axes (the LSTM's four gates) is summed piece by piece, so each piece's
add joins the fused loop that computes the piece, and the gradient is the concat of their sums.
"""

from __future__ import annotations

from ir import Node, TensorType

from .roles import Role, Slot


def row_pieces(ct: Node, p: TensorType) -> tuple[int | None, list[Node]]:
    """(axis, pieces): the param-axis concat `ct` is made of and its pieces, or (None, [ct])."""
    lead = ct.type.rank - p.rank  # type: ignore[union-attr]
    if ct.op == "concat" and all(u.delay == 0 for u in ct.inputs) and ct.type.shape[lead:] == p.shape:  # type: ignore[union-attr]
        axis = ct.attrs["axis"] % ct.type.rank  # type: ignore[union-attr]
        if axis >= lead:
            return axis - lead, [u.node for u in ct.inputs]
    return None, [ct]


def add_row_sums(param: Node, ct: Node, sums: dict, slots: dict) -> tuple[int | None, list[str | TensorType]]:
    """Register SUM states (in `sums`, `slots`) adding `ct`'s pieces over the steps; returns the
    concat axis (None: one piece) and per piece its state's name, or its param-shaped type for a
    piece of zeros (nothing to sum)."""
    axis, pieces = row_pieces(ct, param.type)  # type: ignore[arg-type]
    lead = ct.type.rank - param.type.rank  # type: ignore[union-attr]
    out: list[str | TensorType] = []
    start = sum(1 for s in slots.values() if s.role is Role.ROW_SUM and s.of == param.name)
    for piece in pieces:
        if piece.op == "zeros":
            out.append(piece.type.with_shape(piece.type.shape[lead:]))  # type: ignore[union-attr]
            continue
        mine = (k for k, v in sums.items() if slots[k].role is Role.ROW_SUM and len(v) == 1 and v[0] is piece)
        same = next(mine, None)
        if same is not None:  # another param's piece is this very value (a GRU's two biases): one sum
            out.append(same)
            continue
        slot = Slot(Role.ROW_SUM, param.name, start + len(out))  # type: ignore[arg-type]
        sums.setdefault(slot.name, []).append(piece)
        slots[slot.name] = slot
        out.append(slot.name)
    return axis, out


def row_sum_gradient(b, entry: tuple, outs: dict, p: TensorType) -> Node:
    """After the loop: the param's gradient from its row sums (each summed over its rows)."""
    axis, pieces = entry
    parts = []
    for piece in pieces:
        if isinstance(piece, TensorType):
            t = piece if axis is not None else p
            parts.append(Node("zeros", (), {"shape": t.shape, "dtype": t.dtype}, t))
            continue
        s = outs[piece]
        shape = p.shape if axis is None else s.type.shape[s.type.rank - p.rank :]
        parts.append(b("sum_to", s, shape=shape))
    return parts[0] if len(parts) == 1 else b("concat", *parts, axis=axis)
