"""Graphviz DOT for the IR: `cell_to_dot(cell)`, and a small writer other graphs (Programs) reuse.

Drawing conventions, shared by every graph kind:
  - sequence inputs are inverted houses, params boxes with a fold (`note`), statics `component`
    boxes, state inits cylinders;
  - compute nodes are rounded boxes labelled `name = op(attrs)` over their type; a state's
    defining node has a double border;
  - delay-0 edges are solid; a delay edge is dashed and labelled `t-d`;
  - outputs are sink nodes (`house`), fed by the node they name.
Every string that reaches the DOT text goes through `quote`, so names cannot break the syntax.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .graph import Cell, Node
from .names import name_nodes

# Node shapes by role; a Program's drawing uses the same table.
SHAPES = {
    "seq": "invhouse",
    "param": "note",
    "static": "component",
    "init": "cylinder",
    "constant": "plain",
    "compute": "box",
    "output": "house",
}

_ATTR_TEXT_MAX = 40  # a constant's value can be large: its label is cut after this many characters


def quote(text: object) -> str:
    """`text` as a DOT double-quoted string: backslashes, quotes and line breaks escaped."""
    s = str(text).replace("\\", "\\\\").replace('"', '\\"')
    s = s.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return f'"{s}"'


def _attr_list(attrs: dict[str, Any]) -> str:
    items = [f"{k}={quote(v)}" for k, v in attrs.items() if v is not None]
    return f" [{', '.join(items)}]" if items else ""


class DotWriter:
    """Accumulates a `digraph`: nodes, edges and cluster subgraphs (a Program's Loop regions)."""

    def __init__(self, name: str, **graph_attrs: Any):
        self.lines: list[str] = [f"digraph {quote(name)} {{"]
        self.indent = 1
        self.declared: set[str] = set()
        for k, v in {"rankdir": "TB", **graph_attrs}.items():
            self._emit(f"{k}={quote(v)};")
        self._emit(f"node [fontname={quote('monospace')}];")
        self._emit(f"edge [fontname={quote('monospace')}];")

    def _emit(self, line: str) -> None:
        self.lines.append("  " * self.indent + line)

    def node(self, ident: str, label: str, **attrs: Any) -> None:
        """Declare node `ident` once; attribute values are quoted for you (None is left out)."""
        if ident in self.declared:
            raise ValueError(f"DOT node {ident!r} is declared twice")
        self.declared.add(ident)
        self._emit(quote(ident) + _attr_list({"label": label, **attrs}) + ";")

    def edge(self, src: str, dst: str, **attrs: Any) -> None:
        self._emit(f"{quote(src)} -> {quote(dst)}{_attr_list(attrs)};")

    def delay_edge(self, src: str, dst: str, delay: int, **attrs: Any) -> None:
        """An edge reading `src` at step t - delay: solid for delay 0, else dashed and labelled `t-d`."""
        if delay:
            attrs = {"style": "dashed", "label": f"t-{delay}", **attrs}
        self.edge(src, dst, **attrs)

    @contextmanager
    def cluster(self, ident: str, label: str, **attrs: Any) -> Iterator[None]:
        """A boxed subgraph (`subgraph cluster_...`): what a Program draws around a Loop body."""
        self._emit(f"subgraph {quote('cluster_' + ident)} {{")
        self.indent += 1
        for k, v in {"label": label, **attrs}.items():
            self._emit(f"{k}={quote(v)};")
        try:
            yield
        finally:
            self.indent -= 1
            self._emit("}")

    def render(self) -> str:
        return "\n".join(self.lines + ["}"]) + "\n"


def attrs_text(attrs: dict[str, Any]) -> str:
    """`parts=4, index=0`: a node's attributes as a label shows them, long values cut with `...`."""
    parts = []
    for k, v in attrs.items():
        text = str(v)
        if len(text) > _ATTR_TEXT_MAX:
            text = text[: _ATTR_TEXT_MAX - 3] + "..."
        parts.append(f"{k}={text}")
    return ", ".join(parts)


def node_label(name: str, node: Node) -> str:
    """`h = tanh` over `f32[B, 8]`; sources show their role instead of an op."""
    if node.op in ("seq", "param", "static"):
        head = f"{node.op} {name}"
    else:
        call = f"{node.op}({attrs_text(node.attrs)})" if node.attrs else node.op
        head = f"{name} = {call}"
    return f"{head}\n{node.type}"


def node_attrs(node: Node) -> dict[str, str]:
    """A node's shape (and style) by its role: sources from SHAPES, compute nodes as rounded boxes."""
    if node.op in ("seq", "param", "static", "constant"):
        return {"shape": SHAPES[node.op]}
    return {"shape": SHAPES["compute"], "style": "rounded"}


def draw_operands(w: DotWriter, node: Node, ids: dict[int, str]) -> None:
    """One edge per operand of `node` (numbered at the head when order matters), dashed where delayed."""
    numbered = len(node.inputs) > 1 and node.op not in _COMMUTATIVE
    for i, use in enumerate(node.inputs):
        port = {"headlabel": str(i)} if numbered else {}
        w.delay_edge(ids[id(use.node)], ids[id(node)], use.delay, **port)


def cell_to_dot(cell: Cell) -> str:
    """The cell as a Graphviz digraph (see the module docstring for the conventions)."""
    nodes = cell.nodes()
    names = name_nodes(nodes)
    ids = {id(n): f"n{i}" for i, n in enumerate(nodes)}
    defined = {id(n) for n in cell.states.values()}
    w = DotWriter(cell.name, label=f"cell {cell.name}", labelloc="t")
    for node in nodes:
        double = {"peripheries": 2} if id(node) in defined else {}
        w.node(ids[id(node)], node_label(names[id(node)], node), **node_attrs(node), **double)
    for k, (state, t) in enumerate(cell.state_types.items()):
        w.node(f"init{k}", f"init {state}\n{t}", shape=SHAPES["init"])
        if state in cell.states:
            w.edge(f"init{k}", ids[id(cell.states[state])], style="dotted", label="t<0", arrowhead="none")
    for node in nodes:
        draw_operands(w, node, ids)
    for k, (out, node) in enumerate(cell.outputs.items()):
        w.node(f"out{k}", f"out {out}\n{node.type}", shape=SHAPES["output"])
        w.edge(ids[id(node)], f"out{k}")
    return w.render()


_COMMUTATIVE = ("add", "mul")  # operand order does not matter: the drawing leaves off operand numbers


__all__ = ["DotWriter", "SHAPES", "attrs_text", "cell_to_dot", "draw_operands", "node_attrs", "node_label", "quote"]
