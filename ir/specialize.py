"""Size-generic cells: the dim expressions a cell uses, and the cell with some of its symbols bound.

A cell written once for every size (`Param["H", "4*H"]`) is verified symbolically; it is compiled
for concrete sizes of the symbols its dim expressions use (`size_symbols`), so that the passes and
the backends see ints where a split or a concat needs them. `specialize` makes that copy.
"""

from __future__ import annotations

import weakref

from . import dimexpr
from .errors import VerifyError
from .graph import Cell, Node, Use
from .names import label, name_nodes
from .shapes import Shape, shape_str, substitute, symbols_of
from .types import TensorType, TupleType


def expressions(cell: Cell) -> dict[str, str]:
    """Every dim expression of the cell (`4*H`, `H//4`) and the first place that has it (an input or a
    node, as messages name it): each must be a whole number at a call. Worked out once per cell."""
    hit = _EXPRESSIONS.get(id(cell))
    if hit is None or hit[0]() is not cell:  # (a Cell compares by value, so it is no dict key itself)
        hit = _EXPRESSIONS[id(cell)] = (weakref.ref(cell), _expressions(cell))
        weakref.finalize(cell, _EXPRESSIONS.pop, id(cell), None)
    return hit[1]


_EXPRESSIONS: dict[int, tuple] = {}


def _expressions(cell: Cell) -> dict[str, str]:
    names = name_nodes(cell.nodes())
    out: dict[str, str] = {}
    for n in cell.inputs:
        for d in n.type.shape:  # type: ignore[union-attr]
            if not dimexpr.is_plain(d):
                out.setdefault(d, f"{n.op} {n.name!r} of shape {shape_str(n.type.shape)}")  # type: ignore[union-attr]
    for k, t in cell.state_types.items():
        for d in t.shape:
            if not dimexpr.is_plain(d):
                out.setdefault(d, f"state {k!r} of shape {shape_str(t.shape)}")
    for n in cell.nodes():
        for d in getattr(n.type, "shape", ()):
            if not dimexpr.is_plain(d):
                out.setdefault(d, f"node {label(n, names)} of type {n.type}")
    return out


def size_symbols(cell: Cell) -> set[str]:
    """The symbols a compiled program binds to concrete sizes: those its dim expressions use."""
    return set().union(*(dimexpr.symbols(d) for d in expressions(cell)))


def all_symbols(cell: Cell) -> set[str]:
    """Every symbol of the cell's types."""
    out: set[str] = set()
    for n in cell.nodes():
        out |= symbols_of(getattr(n.type, "shape", ()))
    for t in cell.state_types.values():
        out |= symbols_of(t.shape)
    return out


def check_whole(cell: Cell, env: dict[str, int], source: dict[str, str] | None = None) -> None:
    """Every dim expression whose symbols `env` binds is a whole number >= 0; else a VerifyError naming
    the input or node that has it, the symbols' values and (in `source`) where each value came from."""
    for d, where in expressions(cell).items():
        syms = dimexpr.symbols(d)
        if not syms <= env.keys():
            continue
        try:
            dimexpr.value(d, env)
        except dimexpr.DimError as e:
            came = [f"{s} = {env[s]} from {source[s]}" for s in sorted(syms) if source and s in source]
            why = f" ({'; '.join(came)})" if came else ""
            raise VerifyError(f"{where}: {e}{why}; the sizes must make {d} a whole number") from None


def specialize(cell: Cell, env: dict[str, int]) -> Cell:
    """A copy of `cell` with the symbols of `env` replaced by their values, in every type and shape
    attribute (`4*H` with H = 32 becomes 128); other symbols stay."""
    check_whole(cell, env)

    def fix_shape(s: Shape) -> Shape:
        return substitute(s, env)

    def fix(t):
        if isinstance(t, TupleType):
            return TupleType(tuple(fix(i) for i in t.items))
        return t if t is None else TensorType(t.dtype, fix_shape(t.shape))

    new: dict[int, Node] = {}
    old_nodes = cell.nodes()
    for n in old_nodes:
        attrs = {k: (fix_shape(v) if k == "shape" and isinstance(v, tuple) else v) for k, v in n.attrs.items()}
        new[id(n)] = Node(n.op, (), attrs, fix(n.type), n.name, n.loc)
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
