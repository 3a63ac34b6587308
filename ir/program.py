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

from .graph import Node, topo_order
from .types import TensorType


class Region:
    """A body graph: `params` (op `input` nodes) and `results`, every edge of delay 0."""

    def __init__(self, params: list[Node], results: list[Node]):
        self.params = list(params)
        self.results = list(results)

    def nodes(self) -> list[Node]:
        """Params first, then every node the results need, operands before users."""
        seen = {id(p) for p in self.params}
        return self.params + [n for n in topo_order(reversed(self.results)) if id(n) not in seen]

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


class Program:
    """A whole-sequence computation: named inputs (roles seq/param/init/lengths), nodes, outputs."""

    def __init__(self, name: str, inputs: list[Node], roles: dict[str, str], outputs: dict[str, Node]):
        self.name = name
        self.inputs = list(inputs)
        self.roles = dict(roles)
        self.outputs = dict(outputs)

    def nodes(self) -> list[Node]:
        seen = {id(n) for n in self.inputs}
        return self.inputs + [n for n in topo_order(reversed(list(self.outputs.values()))) if id(n) not in seen]

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

    def __str__(self) -> str:
        from .program_printer import print_program

        return print_program(self)

    def __repr__(self) -> str:
        return f"<Program {self.name}: inputs {[n.name for n in self.inputs]}, outputs {list(self.outputs)}>"


def input_node(name: str, t: TensorType) -> Node:
    return Node("input", (), {}, t, name)
