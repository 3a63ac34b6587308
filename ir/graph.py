"""Nodes, delayed uses, and the Cell: one time step of a recurrent network as a cyclic graph.

A Node has identity (two equal-looking nodes are different values); its inputs are `Use`s,
each a (source node, delay d) pair: the source's value at step t - d. Names are optional hints;
the printer names the rest. A Cell's cycles must pass through a delay >= 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .types import TensorType, TupleType


class Node:
    """One value: `op` over `inputs` with `attrs`, of type `type`; `name` is a user's hint or None.

    `loc` is where it was made, for messages (`file.py:12`: the DSL's line of user code), or None;
    it is no part of the value (printing, equality and passes ignore it).
    """

    __slots__ = ("op", "inputs", "attrs", "type", "name", "loc")

    def __init__(
        self,
        op: str,
        inputs: Iterable[Use] = (),
        attrs: dict[str, Any] | None = None,
        type: TensorType | TupleType | None = None,
        name: str | None = None,
        loc: str | None = None,
    ):
        self.op = op
        self.inputs: tuple[Use, ...] = tuple(inputs)
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.type = type
        self.name = name
        self.loc = loc

    @property
    def operands(self) -> list[Node]:
        return [u.node for u in self.inputs]

    def __repr__(self) -> str:
        label = self.name or f"<{self.op}@{id(self):x}>"
        return f"Node({label}: {self.op} {self.type})"


@dataclass(frozen=True, eq=False)
class Use:
    """An edge: read `node` at step t - `delay` (delay 0: this step)."""

    node: Node
    delay: int = 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Use) and other.node is self.node and other.delay == self.delay

    def __hash__(self) -> int:
        return hash((id(self.node), self.delay))


def topo_order(roots: Iterable[Node], follow_delayed: bool = True) -> list[Node]:
    """Every node reachable from `roots`, each after its delay-0 operands.

    Delayed edges are followed to find nodes (a state read only through its delay must still be
    computed) but do not order them. Raises `CycleFound` carrying the nodes of a delay-0 cycle.
    (An explicit stack, not recursion: a fully unrolled program is deep.)
    """
    order: list[Node] = []
    state: dict[int, int] = {}  # id -> 1 on the stack, 2 done
    pending = list(roots)
    while pending:
        root = pending.pop()
        if id(root) in state:
            continue
        state[id(root)] = 1
        stack: list[list] = [[root, 0]]
        while stack:
            frame = stack[-1]
            node, i = frame
            ins = node.inputs
            pushed = False
            while i < len(ins):
                use = ins[i]
                i += 1
                src = use.node
                if not isinstance(src, Node):
                    continue  # not a node: the verifier reports it with its place
                if use.delay:
                    if follow_delayed and id(src) not in state:
                        pending.append(src)
                    continue
                s = state.get(id(src))
                if s is None:
                    frame[1] = i
                    state[id(src)] = 1
                    stack.append([src, 0])
                    pushed = True
                    break
                if s == 1:
                    on_stack = [f[0] for f in stack]
                    raise CycleFound(on_stack[next(k for k, n in enumerate(on_stack) if n is src) :])
            if not pushed:
                stack.pop()
                state[id(node)] = 2
                order.append(node)
    return order


class CycleFound(Exception):
    """Internal: raised by topo_order; the verifier turns it into a VerifyError naming the nodes."""

    def __init__(self, nodes: list[Node]):
        super().__init__(nodes)
        self.nodes = nodes


class Cell:
    """One time step: sequence inputs, params, states (name -> declared init type and defining
    node), per-step outputs (name -> node), and statics (one value per batch row, the same at every
    step: a conditioning vector). Build one with the DSL, the Graph builder or the parser."""

    def __init__(
        self,
        name: str,
        seqs: list[Node],
        params: list[Node],
        state_types: dict[str, TensorType],
        states: dict[str, Node],
        outputs: dict[str, Node],
        statics: list[Node] = (),  # type: ignore[assignment]
    ):
        self.name = name
        self.seqs = list(seqs)
        self.params = list(params)
        self.state_types = dict(state_types)
        self.states = dict(states)
        self.outputs = dict(outputs)
        self.statics = list(statics)

    # -- views
    @property
    def inputs(self) -> list[Node]:
        return self.seqs + self.params + self.statics

    def roots(self) -> list[Node]:
        """The nodes the cell's results hang from: state definitions then outputs, in order."""
        return list(self.states.values()) + list(self.outputs.values())

    def nodes(self) -> list[Node]:
        """All nodes in evaluation order: inputs first, then compute nodes after their delay-0 operands."""
        inputs = self.inputs
        seen = {id(n) for n in inputs}
        body = [n for n in topo_order(reversed(self.roots())) if id(n) not in seen]
        return inputs + body

    def state_of(self, node: Node) -> str | None:
        for k, v in self.states.items():
            if v is node:
                return k
        return None

    # -- structural equality (independent of the printer)
    def structure(self) -> tuple:
        nodes = self.nodes()
        index = {id(n): i for i, n in enumerate(nodes)}

        def key(n: Node) -> tuple:
            ins = tuple((index.get(id(u.node), -1), u.delay) for u in n.inputs)
            attrs = tuple((k, repr(v)) for k, v in sorted(n.attrs.items(), key=lambda kv: kv[0]))  # repr: nan == nan
            return (n.op, ins, attrs, str(n.type), n.name)

        return (
            self.name,
            tuple(key(n) for n in nodes),
            tuple((k, str(t)) for k, t in self.state_types.items()),
            tuple((k, index[id(v)]) for k, v in self.states.items()),
            tuple((k, index[id(v)]) for k, v in self.outputs.items()),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cell) and self.structure() == other.structure()

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        from .printer import print_cell

        return print_cell(self)

    def __repr__(self) -> str:
        static = f", {len(self.statics)} static" if self.statics else ""
        return (
            f"<Cell {self.name}: {len(self.seqs)} seq, {len(self.params)} param{static}, "
            f"states {list(self.states)}, outputs {list(self.outputs)}>"
        )
