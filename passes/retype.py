"""Retype a cell's floats to the compile dtype (cells are declared in f32 by default)."""

from __future__ import annotations

from ir import Cell, DType, Node, TensorType, Use
from ir.dtypes import as_dtype


def retype_cell(cell: Cell, dtype: DType | str) -> Cell:
    """A copy of `cell` with every float type (and float dtype attribute) set to `dtype`."""
    dt = as_dtype(dtype)

    def fix(t: TensorType) -> TensorType:
        return t.with_dtype(dt) if t.dtype.is_float else t

    new: dict[int, Node] = {}
    old_nodes = cell.nodes()
    for n in old_nodes:
        attrs = {k: (dt if isinstance(v, DType) and v.is_float else v) for k, v in n.attrs.items()}
        new[id(n)] = Node(n.op, (), attrs, fix(n.type), n.name)  # type: ignore[arg-type]
    for n in old_nodes:  # wire after creating all, since delayed edges may point forward
        new[id(n)].inputs = tuple(Use(new[id(u.node)], u.delay) for u in n.inputs)
    return Cell(
        cell.name,
        [new[id(n)] for n in cell.seqs],
        [new[id(n)] for n in cell.params],
        {k: fix(t) for k, t in cell.state_types.items()},
        {k: new[id(n)] for k, n in cell.states.items()},
        {k: new[id(n)] for k, n in cell.outputs.items()},
        [new[id(n)] for n in cell.statics],
    )
