"""Which loops have independent batch rows: an analysis for backends that run rows in parallel.

A recurrent network's batch rows never meet inside a time step: row b of h[t] depends on row b of
h[t-1] and x[t] only, as long as every op keeps axis 0 (the batch) apart: elementwise ops,
`x @ W` with an invariant W, splits and reductions over other axes. Such a loop can run as P
independent loops over row blocks, with no synchronisation between steps. `rows_plan(loop)` says
whether a loop is such a loop, and gives it back with the batch extent of every row-carrying value
renamed to the symbol ROWS (one block's row count), so a code generator can iterate over a block.

Classes: a value is *batched* (its axis 0 is the batch axis) or *invariant* (the same for every
row). Carried values and sequence slices are batched; a loop invariant (a param) is either,
as its uses require (e.g. `lengths`, shape (B,), is batched; a weight is invariant). What an op
does to rows is on its record (`OpDef.rows`, one of ir.ops.ROW_RULES, and `OpDef.axes`); RULES has
one rule per ROW_RULES name, so adding an op means nothing here. A computed invariant inside the body
(a node of rank >= 0 other than a constant) also keeps the loop sequential: every block would
compute, and store, the same value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ir import LoopView, Node, Region, TensorType, Use
from ir.ops import axes_of, get_op

ROWS = "#rows"  # never a user's symbol (symbols are identifiers or expressions of them)

BATCHED, INVARIANT = True, False


class NotRows(Exception):
    """Why a loop's rows are not independent (the node and the rule)."""


@dataclass
class RowsPlan:
    """A loop whose batch rows are independent: `loop` is the original node with a renamed body."""

    loop: Node
    dim: int | str  # the batch extent (a symbol or an int)
    sliced_consts: list[bool]  # per invariant operand: batched (sliced per block) or not


def _shape(n: Node) -> tuple:
    return n.type.shape  # type: ignore[union-attr]


class _Classes:
    """The class of every body value, with the params (consts) settled by their first use."""

    def __init__(self, dim: int | str, flexible: set[int]):
        self.dim, self.flexible, self.of = dim, flexible, {}

    def get(self, n: Node) -> bool | None:
        return self.of.get(id(n))

    def need(self, n: Node, cls: bool, where: Node, why: str) -> None:
        """`n` must be of class `cls` (a flexible param takes it, if it can)."""
        have = self.of.get(id(n))
        if have is None and id(n) in self.flexible:
            if cls is BATCHED and not (_shape(n) and _shape(n)[0] == self.dim):
                raise NotRows(f"{_label(where)}: {why}, but {_label(n)} has no batch axis")
            self.of[id(n)] = cls
            return
        if have is not cls:
            raise NotRows(f"{_label(where)}: {why}")


def _label(n: Node) -> str:
    return f"{n.name or '%?'} = {n.op}(...) : {n.type}"


Rule = Callable[[Node, _Classes], bool]


def _any_batched(n: Node, c: _Classes) -> bool:
    return any(c.get(u.node) is BATCHED for u in n.inputs)


def _elementwise(n: Node, c: _Classes, lengths_at: int | None = None) -> bool:
    """Broadcasting: an operand whose axis 0 lines up with the result's (same rank, not 1) is read
    at the result's row, so it must be batched exactly when the result is; the others invariant.
    `lengths_at`: an operand read at the result's row whatever its rank (select_active's lengths)."""
    out = _shape(n)
    aligned = []
    for k, u in enumerate(n.inputs):
        s = _shape(u.node)
        aligned.append(k == lengths_at or (len(s) == len(out) and bool(s) and s[0] != 1))
    if not _any_batched(n, c) and not any(c.get(u.node) is None and a for u, a in zip(n.inputs, aligned)):
        return INVARIANT
    if not out or out[0] != c.dim:
        raise NotRows(f"{_label(n)}: a batched operand, but axis 0 of the result is not the batch")
    for u, a in zip(n.inputs, aligned):
        c.need(u.node, BATCHED if a else INVARIANT, n, "operands must keep the batch axis at axis 0")
    return BATCHED


def _select(n: Node, c: _Classes) -> bool:
    """select_active(t, lengths, new, old): t is a scalar step; lengths (B,) is read at the result's row."""
    return _elementwise(n, c, lengths_at=1)


def _axes(n: Node, c: _Classes) -> bool:
    """Ops along some axes (views, reductions, concat, pad, softmax): fine unless axis 0 is one of
    them; if any operand carries the batch, all do, else all are invariant."""
    if not _any_batched(n, c):
        for u in n.inputs:
            c.need(u.node, INVARIANT, n, "an invariant op")
        return INVARIANT
    if 0 in axes_of(n):
        raise NotRows(f"{_label(n)}: it works along the batch axis")
    for u in n.inputs:
        c.need(u.node, BATCHED, n, "operands must all carry the batch")
    return BATCHED


def _matmul(n: Node, c: _Classes) -> bool:
    a, w = n.inputs[0].node, n.inputs[1].node
    c.need(w, INVARIANT, n, "the right operand of a matmul must be the same for every row")
    if c.get(a) is BATCHED and a.type.rank < 2:  # type: ignore[union-attr]
        raise NotRows(f"{_label(n)}: it contracts the batch axis")
    return c.get(a) is BATCHED


def _serial(n: Node, c: _Classes) -> bool:
    if _any_batched(n, c):
        raise NotRows(f"{_label(n)}: {get_op(n.op).rows_why}")
    return INVARIANT


def _fill(n: Node, c: _Classes) -> bool:
    return BATCHED if _shape(n) and _shape(n)[0] == c.dim else INVARIANT


def _mask(n: Node, c: _Classes) -> bool:
    """philox_mask(t, seed): its step and seed words are invariant; it is batched as a fill is."""
    for u in n.inputs:
        c.need(u.node, INVARIANT, n, "a mask's step and seed words are the same for every row")
    return _fill(n, c)


RULES: dict[str, Rule] = {  # one per ir.ops.ROW_RULES name
    "elementwise": _elementwise,
    "select": _select,
    "axes": _axes,
    "matmul": _matmul,
    "fill": _fill,
    "mask": _mask,
    "invariant": lambda n, c: INVARIANT,
    "serial": _serial,
}


def rows_plan(loop: Node) -> tuple[RowsPlan | None, str]:
    """The loop with its batch rows renamed to ROWS, or None and the reason its rows are not independent."""
    v = LoopView(loop)
    try:
        return _plan(loop, v), ""
    except NotRows as e:
        return None, str(e)


def _plan(loop: Node, v: LoopView) -> RowsPlan:
    sources = list(v.carry_params) + [p for ps in v.x_params for p in ps]
    if not sources:
        raise NotRows("the loop carries nothing")
    dim = _shape(sources[0])[0] if _shape(sources[0]) else None
    for p in sources:
        if not _shape(p) or _shape(p)[0] != dim:
            raise NotRows(f"{p.name}: {p.type} does not start with the batch extent {dim}")
    if dim == 1:
        raise NotRows("one row")
    c = _Classes(dim, {id(p) for p in v.const_params})  # type: ignore[arg-type]
    for p in sources:
        c.of[id(p)] = BATCHED
    for p in v.t_params:
        c.of[id(p)] = INVARIANT
    params = {id(p) for p in v.body.params}
    for n in v.body.nodes():
        if id(n) in params:
            continue
        cls = RULES[get_op(n.op).rows](n, c)
        if cls is INVARIANT and n.op != "constant":
            raise NotRows(f"{_label(n)}: an invariant computed inside the loop")
        c.of[id(n)] = cls
    for r in v.body.results:
        if c.get(r) is not BATCHED:
            raise NotRows(f"{_label(r)}: a result of the loop without the batch axis")
    for p in v.const_params:
        c.of.setdefault(id(p), INVARIANT)
    body = _rename(v.body, {k for k, cls in c.of.items() if cls is BATCHED})
    renamed = v.with_body(body)
    return RowsPlan(renamed, dim, [c.of[id(p)] is BATCHED for p in v.const_params])  # type: ignore[arg-type]


def _rename(body: Region, batched: set[int]) -> Region:
    """A copy of `body` whose batched values have ROWS as their first extent."""
    new: dict[int, Node] = {}

    def typed(n: Node) -> TensorType:
        t: TensorType = n.type  # type: ignore[assignment]
        return t.with_shape((ROWS,) + t.shape[1:]) if id(n) in batched else t

    for n in body.nodes():
        ins = [Use(new[id(u.node)], u.delay) for u in n.inputs]
        new[id(n)] = Node(n.op, ins, n.attrs, typed(n), n.name)
    return Region([new[id(p)] for p in body.params], [new[id(r)] for r in body.results])
