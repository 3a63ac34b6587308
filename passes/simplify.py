"""The `simplify` pass: constant folding, identity removal, CSE, and dead loop-operand elimination.

Dead nodes disappear on their own (a Program holds what its outputs reach); what needs work is a
loop's operands: a carried value, stacked input, buffer or invariant that nothing live uses is
removed from the loop's signature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ir import LoopView, Node, Program, Use
from ir.ops import freeze_value, get_op

from .registry import Analyses, Pass, register_pass
from .rewrite import rebuild, rewrite_program

FOLD_LIMIT = 4096  # elements: larger constant results stay computed at run time


@register_pass
@dataclass(frozen=True)
class Simplify(Pass):
    """Program -> Program: constant folding, identity removal, CSE, dead loop operands."""

    name = "simplify"

    def apply(self, prog: Program, analyses: Analyses) -> Program:
        return simplify(prog)


def simplify(prog: Program) -> Program:
    """`prog` with constants folded, identities dropped, equal nodes shared and dead loop operands removed."""
    cse = _Cse()
    prog = rewrite_program(prog, lambda node, ops: _fold_or_cse(node, ops, cse))
    return _prune_loops(prog) if cse.loops else prog


def _fold_or_cse(node: Node, ops: list[Node], cse: _Cse) -> Node:
    """One walk does both: fold (or drop an identity), then hash-cons what is left."""
    if node.op == "identity":
        return ops[0]
    folded = _fold(node, ops)
    return cse(folded if folded is not None else rebuild(node, ops))


def _fold(node: Node, ops: list[Node]) -> Node | None:
    """A constant node for an op over constants (small results only), else None."""
    if not ops or any(o.op != "constant" for o in ops):
        return None
    op = get_op(node.op)
    if op.numpy is None or op.kind == "source":
        return None
    val = op.numpy(*[get_op("constant").numpy(**o.attrs) for o in ops], **node.attrs)
    if np.size(val) > FOLD_LIMIT:
        return None
    return Node("constant", (), {"value": _frozen(val), "dtype": node.type.dtype}, node.type, node.name)  # type: ignore[union-attr]


def _frozen(val: np.ndarray):
    return freeze_value(np.asarray(val, dtype=np.float64))


class _Cse:
    """Hash-conses pure nodes: equal op, operands, attributes and type give one node."""

    def __init__(self) -> None:
        self.table: dict[tuple, Node] = {}
        self.loops = False  # whether a loop was seen (then loop operands are pruned after)

    def __call__(self, new: Node) -> Node:
        if new.op in ("input", "loop"):
            self.loops |= new.op == "loop"
            return new
        try:
            attrs = tuple(sorted(new.attrs.items())) if new.attrs else ()
            key = (new.op, tuple(id(u.node) for u in new.inputs), attrs, new.type)
            return self.table.setdefault(key, new)
        except TypeError:  # an unhashable attribute: never shared
            return new


def _prune_loops(prog: Program) -> Program:
    """Drop loop operands and results that nothing live needs (to a fixed point)."""
    while True:
        users = _users(prog.nodes())
        remaps: dict[int, dict[int, int]] = {}  # id(pruned loop) -> old result index -> new

        def visit(node: Node, ops: list[Node], users=users, remaps=remaps) -> Node:
            new = rebuild(node, ops)
            if node.op == "loop":
                pruned = _prune_one(new, users.get(id(node), set()))
                if pruned is not None:
                    remaps[id(pruned[0])] = pruned[1]
                    return pruned[0]
            if node.op == "item" and id(ops[0]) in remaps:
                return _remap_item(node, ops[0], remaps[id(ops[0])])
            return new

        prog = rewrite_program(prog, visit, recurse=False)
        if not remaps:
            return prog


def _users(nodes: list[Node]) -> dict[int, set[int]]:
    """For each loop: the tuple indices read by `item` nodes."""
    out: dict[int, set[int]] = {}
    for n in nodes:
        if n.op == "item":
            out.setdefault(id(n.inputs[0].node), set()).add(n.attrs["index"])
    return out


def _live_body(v: LoopView, live_carry: set[int], live_buf: set[int]) -> set[int]:
    """ids of body nodes needed by the live results; a carried value that a needed node reads becomes
    live itself (added to `live_carry`). One worklist walk: linear in the body, however long a chain
    of carries (a delay d is d of them) feeds the results."""
    carry_at = {id(p): i for i, p in enumerate(v.carry_params)}
    stack = [v.carry_out[i] for i in live_carry] + [y for b in live_buf for y in v.y_results[b]]
    needed: set[int] = set()
    while stack:
        n = stack.pop()
        if id(n) in needed:
            continue
        needed.add(id(n))
        i = carry_at.get(id(n))
        if i is not None and i not in live_carry:
            live_carry.add(i)
            stack.append(v.carry_out[i])
        stack.extend(u.node for u in n.inputs)
    return needed


def _prune_one(node: Node, read: set[int]) -> tuple[Node, dict[int, int]] | None:
    """The loop without what no live value needs, and where each kept result moved; None if all is live."""
    v = LoopView(node)
    c = v.n_carry
    live_carry = {i for i in range(c) if i in read}
    live_buf = {b for b in range(v.n_buf) if c + b in read}
    # A carried value is live if read outside or needed by something live inside.
    needed = _live_body(v, live_carry, live_buf)
    live_x = [i for i in range(v.n_xs) if any(id(p) in needed for p in v.x_params[i])]
    live_k = [i for i in range(len(v.consts)) if id(v.const_params[i]) in needed]
    if len(live_carry) == c and len(live_buf) == v.n_buf and len(live_x) == v.n_xs and len(live_k) == len(v.consts):
        return None
    carries = sorted(live_carry)
    bufs = sorted(live_buf)
    remap = {old: new for new, old in enumerate(carries + [c + b for b in bufs])}
    loop = v.replace(
        carries=[v.carries()[i] for i in carries],
        seqs=[v.seqs()[i] for i in live_x],
        stacks=[v.stacks()[b] for b in bufs],
        invariants=[v.invariants()[i] for i in live_k],
    )
    return loop, remap


def _remap_item(item: Node, loop: Node, remap: dict[int, int]) -> Node:
    return Node("item", [Use(loop)], {"index": remap[item.attrs["index"]]}, item.type, item.name)
