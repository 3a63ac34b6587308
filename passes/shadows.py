"""Delays > 1 become chains of delay 1: the grad pass differentiates a cell whose every delayed read
is one step back. A read `h[t-d]` (d >= 2), or any delayed read of a sequence input, goes through
shadow states (`h@d1` holds h one step further back, ...), each recorded as a `Slot` (passes/roles.py).
"""

from __future__ import annotations

from ir import Cell, Node, Use

from .roles import Role, Slot


def normalize_delays(cell: Cell, slots: dict[str, Slot] | None = None) -> tuple[Cell, dict[str, str], set[str]]:
    """A copy of `cell` where each read at delay d >= 2 (or a delayed seq read) goes through shadow
    states (each recorded in `slots`)."""
    slots = {} if slots is None else slots
    new: dict[int, Node] = {}
    nodes = cell.nodes()
    for n in nodes:
        new[id(n)] = Node(n.op, (), n.attrs, n.type, n.name)
    states = {k: new[id(v)] for k, v in cell.states.items()}
    state_types = dict(cell.state_types)
    roots: dict[str, str] = {}
    seq_shadows: set[str] = set()
    chain: dict[tuple[int, int], Node] = {}  # (id(source), k) -> shadow state holding source[t-k] at t-1... see below

    def make_shadow(src: Node, k: int) -> None:
        """The shadow holding src[t-k] at t-1, from the one at k-1 (which exists)."""
        base = src.name if src.op == "seq" else cell.state_of(src)
        slot = Slot(Role.SHADOW, base, k, of_seq=src.op == "seq")  # type: ignore[arg-type]
        if k == 0:  # a seq read with a delay: the shadow at k=0 is the seq itself, as a state
            node = Node("identity", [Use(new[id(src)])], {}, src.type, slot.name)
        else:
            prev = new[id(src)] if (k == 1 and src.op != "seq") else chain[(id(src), k - 1)]
            node = Node("identity", [Use(prev, 1)], {}, src.type, slot.name)
        name = slot.name
        slots[name] = slot
        states[name] = node  # type: ignore[index]
        state_types[name] = src.type  # type: ignore[index,assignment]
        roots[name] = base  # type: ignore[index]
        if src.op == "seq":
            seq_shadows.add(name)  # type: ignore[arg-type]
        chain[(id(src), k)] = node

    def shadow(src: Node, k: int) -> Node:
        """A state whose value at step t is src[t-k] (so reading it at delay 1 gives src[t-k-1]).
        The chain is built upward in a loop, not by recursion: a delay may be in the thousands."""
        lo = 0 if src.op == "seq" else 1
        j = k
        while j > lo and (id(src), j - 1) not in chain:
            j -= 1
        for i in range(j, k + 1):
            if (id(src), i) not in chain:
                make_shadow(src, i)
        return chain[(id(src), k)]

    for n in nodes:
        ins = []
        for u in n.inputs:
            if u.delay == 0:
                ins.append(Use(new[id(u.node)]))
            elif u.node.op == "seq":
                ins.append(Use(shadow(u.node, u.delay - 1), 1))
            elif u.delay == 1:
                ins.append(Use(new[id(u.node)], 1))
            else:
                ins.append(Use(shadow(u.node, u.delay - 1), 1))
        new[id(n)].inputs = tuple(ins)
    out = Cell(
        cell.name,
        [new[id(s)] for s in cell.seqs],
        [new[id(p)] for p in cell.params],
        state_types,
        states,
        {k: new[id(v)] for k, v in cell.outputs.items()},
        [new[id(s)] for s in cell.statics],
    )
    return out, roots, seq_shadows
