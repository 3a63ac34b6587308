"""Programs: acyclic graphs (all delays gone) that may hold Loop regions, the output of unrolling.

A `Region` is a body graph with ordered params and results. A loop is a node of op `loop` whose
`body` attribute is a Region and whose operands are, in order: carried values, stacked sequence
inputs (xs, `(T, ...)`), output buffers (bufs, `(T, ...)`, written step by step), and invariants
(consts). Iteration i covers steps `base + j`, j < stride, where `base = start + i*stride`
(forward) or `start + (length-1-i)*stride` (reverse). Body params, in order: the step index of
each copy `t@j`, the carried values, `x@j` for each xs and copy, the consts. Body results: the new
carried values, then `y@j` for each buf and copy (written to `buf[base + j]`). This is `lax.scan`
with k steps per iteration and in-place stacked results, so the backward pass is another loop.
"""

from __future__ import annotations

from .graph import Node, Use, topo_order
from .types import TensorType, TupleType


class Region:
    """A body graph: `params` (op `input` nodes) and `results`, every edge of delay 0."""

    def __init__(self, params: list[Node], results: list[Node]):
        self.params = list(params)
        self.results = list(results)
        self._nodes: list[Node] | None = None

    def nodes(self) -> list[Node]:
        """Params first, then every node the results need, operands before users.

        Computed once: a Region is not changed after it is built (passes build new ones).
        """
        if self._nodes is None:
            seen = {id(p) for p in self.params}
            self._nodes = self.params + [n for n in topo_order(reversed(self.results)) if id(n) not in seen]
        return list(self._nodes)

    def structure(self) -> tuple:
        """A canonical nested tuple: the nodes in evaluation order (bodies recursively), how many are
        params, and the results by position. Regions with equal structures compute the same thing."""
        keys, index = _graph_structure(self.nodes())
        return (keys, len(self.params), tuple(index[id(r)] for r in self.results))

    def __repr__(self) -> str:
        return f"<Region {len(self.params)} params -> {len(self.results)} results>"


class LoopView:
    """Named access to a loop node's operand groups and body (read-only convenience)."""

    def __init__(self, node: Node):
        a = node.attrs
        self.node, self.body = node, a["body"]
        self.n_carry, self.n_xs, self.n_buf, self.stride = a["n_carry"], a["n_xs"], a["n_buf"], a["stride"]
        self.length, self.start, self.reverse = a["length"], a["start"], a["reverse"]
        ops = list(node.inputs)
        c, x, b = self.n_carry, self.n_xs, self.n_buf
        self.carry_in, self.xs, self.bufs, self.consts = (
            ops[:c],
            ops[c : c + x],
            ops[c + x : c + x + b],
            ops[c + x + b :],
        )
        k = self.stride
        p = self.body.params
        self.t_params = p[:k]
        self.carry_params = p[k : k + c]
        self.x_params = [p[k + c + i * k : k + c + (i + 1) * k] for i in range(x)]  # [xs][copy]
        self.const_params = p[k + c + x * k :]
        r = self.body.results
        self.carry_out = r[:c]
        self.y_results = [r[c + i * k : c + (i + 1) * k] for i in range(b)]  # [buf][copy]

    # -- the operand groups, each with its body params and results, and rebuilding from them

    def carries(self) -> list[tuple[Node, Node, Node]]:
        """(init operand, body param, new value) of each carried value."""
        return [(u.node, p, r) for u, p, r in zip(self.carry_in, self.carry_params, self.carry_out)]

    def seqs(self) -> list[tuple[Node, list[Node]]]:
        """(stacked operand, a body param per copy) of each sequence input."""
        return [(u.node, list(ps)) for u, ps in zip(self.xs, self.x_params)]

    def stacks(self) -> list[tuple[Node, list[Node]]]:
        """(buffer operand, a body result per copy) of each stacked result."""
        return [(u.node, list(ys)) for u, ys in zip(self.bufs, self.y_results)]

    def invariants(self) -> list[tuple[Node, Node]]:
        """(operand, body param) of each loop invariant."""
        return [(u.node, p) for u, p in zip(self.consts, self.const_params)]

    def with_body(self, body: Region) -> Node:
        """The loop with another body of the same params and results (renamed or rewritten inside)."""
        n = self.node
        return Node(n.op, n.inputs, {**n.attrs, "body": body}, n.type, n.name)

    def replace(
        self,
        carries: list[tuple[Node, Node, Node]] | None = None,
        seqs: list[tuple[Node, list[Node]]] | None = None,
        stacks: list[tuple[Node, list[Node]]] | None = None,
        invariants: list[tuple[Node, Node]] | None = None,
    ) -> Node:
        """A new loop node like this one with the given operand groups (the others kept): the one
        way a pass rebuilds a loop, so operands, body params, results, counts and type stay in step."""
        return make_loop(
            self.t_params,
            self.carries() if carries is None else carries,
            self.seqs() if seqs is None else seqs,
            self.stacks() if stacks is None else stacks,
            self.invariants() if invariants is None else invariants,
            length=self.length,
            start=self.start,
            stride=self.stride,
            reverse=self.reverse,
            name=self.node.name,
        )


def make_loop(
    t_params: list[Node],
    carries: list[tuple[Node, Node, Node]],
    seqs: list[tuple[Node, list[Node]]],
    stacks: list[tuple[Node, list[Node]]],
    invariants: list[tuple[Node, Node]],
    *,
    length,
    start,
    stride: int,
    reverse: bool,
    name: str | None = None,
) -> Node:
    """A loop node from its operand groups (see the module for their order), its body built from
    the groups' params and results: what LoopView reads back."""
    params = (
        list(t_params) + [p for _, p, _ in carries] + [p for _, ps in seqs for p in ps] + [p for _, p in invariants]
    )
    results = [r for _, _, r in carries] + [y for _, ys in stacks for y in ys]
    operands = [c for c, _, _ in carries] + [x for x, _ in seqs] + [b for b, _ in stacks] + [k for k, _ in invariants]
    types = tuple(c.type for c, _, _ in carries) + tuple(b.type for b, _ in stacks)
    attrs = {
        "body": Region(params, results),
        "length": length,
        "start": start,
        "stride": stride,
        "reverse": reverse,
        "n_carry": len(carries),
        "n_xs": len(seqs),
        "n_buf": len(stacks),
    }
    return Node("loop", [Use(o) for o in operands], attrs, TupleType(types), name)  # type: ignore[arg-type]


class Program:
    """A whole-sequence computation: named inputs (roles seq/param/static/init/lengths), nodes, outputs."""

    def __init__(self, name: str, inputs: list[Node], roles: dict[str, str], outputs: dict[str, Node]):
        self.name = name
        self.inputs = list(inputs)
        self.roles = dict(roles)
        self.outputs = dict(outputs)
        self._nodes: tuple | None = None

    def nodes(self) -> list[Node]:
        """Inputs first, then every node the outputs need, operands before users (computed once:
        a Program is not changed after it is built; passes build new ones)."""
        key = (tuple(id(n) for n in self.inputs), tuple(id(n) for n in self.outputs.values()))
        if self._nodes is None or self._nodes[0] != key:
            seen = {id(n) for n in self.inputs}
            order = [n for n in topo_order(reversed(list(self.outputs.values()))) if id(n) not in seen]
            self._nodes = (key, self.inputs + order)
        return list(self._nodes[1])

    def input(self, name: str) -> Node:
        for n in self.inputs:
            if n.name == name:
                return n
        raise KeyError(name)

    def loops(self) -> list[Node]:
        """Every loop node, nested ones included."""
        out: list[Node] = []

        def walk(nodes: list[Node]) -> None:
            for n in nodes:
                if n.op == "loop":
                    out.append(n)
                    walk(n.attrs["body"].nodes())

        walk(self.nodes())
        return out

    def size(self) -> int:
        """Node count, loop bodies included: how big the IR is."""
        total = 0

        def walk(nodes: list[Node]) -> None:
            nonlocal total
            for n in nodes:
                total += 1
                if n.op == "loop":
                    walk(n.attrs["body"].nodes())

        walk(self.nodes())
        return total

    # -- structural equality (independent of the printer)
    def structure(self) -> tuple:
        """A canonical nested tuple: name, nodes in evaluation order (loop bodies recursively, attributes
        by repr so NaN == NaN), input roles, outputs by position. `parse_program(print_program(p)) == p`."""
        nodes = self.nodes()
        keys, index = _graph_structure(nodes)
        return (
            self.name,
            keys,
            tuple((n.name, self.roles.get(n.name)) for n in self.inputs),  # type: ignore[arg-type]
            tuple((k, index[id(v)]) for k, v in self.outputs.items()),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Program) and self.structure() == other.structure()

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        from .program_printer import print_program

        return print_program(self)

    def __repr__(self) -> str:
        return f"<Program {self.name}: inputs {[n.name for n in self.inputs]}, outputs {list(self.outputs)}>"


def _graph_structure(nodes: list[Node]) -> tuple[tuple, dict[int, int]]:
    """Each node as (op, operand positions and delays, attributes, type, name), and id -> position."""
    index = {id(n): i for i, n in enumerate(nodes)}

    def attr(v: object) -> object:
        return ("region", v.structure()) if isinstance(v, Region) else repr(v)  # repr: nan == nan

    def key(n: Node) -> tuple:
        ins = tuple((index.get(id(u.node), -1), u.delay) for u in n.inputs)
        attrs = tuple((k, attr(v)) for k, v in sorted(n.attrs.items(), key=lambda kv: kv[0]))
        return (n.op, ins, attrs, str(n.type), n.name)

    return tuple(key(n) for n in nodes), index


def input_node(name: str, t: TensorType) -> Node:
    return Node("input", (), {}, t, name)
