"""A Program as Graphviz DOT: inputs by role (inits as cylinders), nodes, each loop body a cluster.

A fully unrolled program shows every time copy (`h@0`, `h@1`, ...) wired to the init inputs.
"""

from __future__ import annotations

from .dot import DotWriter, draw_operands, node_attrs, node_label
from .graph import Node
from .names import name_nodes
from .program import Program

_ROLE_SHAPES = {"seq": "invhouse", "param": "note", "static": "component", "init": "cylinder", "lengths": "invhouse"}


def program_to_dot(prog: Program) -> str:
    """The program as a Graphviz digraph; loops are clusters holding their bodies."""
    w = DotWriter(prog.name, label=f"program {prog.name}", labelloc="t")
    ids: dict[int, str] = {}
    _graph(w, prog.nodes(), {id(n): prog.roles.get(n.name, "input") for n in prog.inputs}, ids)  # type: ignore[arg-type]
    for i, (k, n) in enumerate(prog.outputs.items()):
        w.node(f"out{i}", f"out {k}", shape="plain")
        w.edge(ids[id(n)], f"out{i}")
    return w.render()


def _graph(w: DotWriter, nodes: list[Node], roles: dict[int, str], ids: dict[int, str]) -> None:
    names = name_nodes(nodes)
    for n in nodes:
        ids[id(n)] = f"n{len(ids)}"
    for n in nodes:
        ident = ids[id(n)]
        if id(n) in roles:
            role = roles[id(n)]
            w.node(ident, f"{role} {names[id(n)]}\n{n.type}", shape=_ROLE_SHAPES.get(role, "box"))
            continue
        if n.op == "loop":
            body = n.attrs["body"]
            a = n.attrs
            label = f"{names[id(n)]} = loop(length={a['length']}, stride={a['stride']}, reverse={a['reverse']})"
            with w.cluster(f"cluster_{ident}", label):
                w.node(ident, f"{names[id(n)]} = loop\n{n.type}", shape="box3d")
                _graph(w, body.nodes(), {id(p): "param" for p in body.params}, ids)
                for i, r in enumerate(body.results):
                    w.edge(ids[id(r)], ident, style="dotted", label=f"yield {i}")
            for i, u in enumerate(n.inputs):
                w.edge(ids[id(u.node)], ident, headlabel=str(i))
            continue
        w.node(ident, node_label(names[id(n)], n), **node_attrs(n))
        draw_operands(w, n, ids)
