"""The text form of a Program: inputs with their roles, nodes, loops as indented regions, outputs.

```
program lstm(T) {
  input seq x : f32[T, B, 16]
  input init h : f32[B, 32]
  %1 = matmul(x, Wx) : f32[T, B, 128]
  %2 = loop(h, c, %1, %0, Wh, b, length="T", start=0, stride=1, reverse=false, n_carry=2, n_xs=1, n_buf=1) {
    ^(t@0: i64[], h@t-1: f32[B, 32], c@t-1: f32[B, 32], xh1@0: f32[B, 128], Wh: f32[32, 128], b: f32[128])
    %0 = matmul(h@t-1, Wh) : f32[B, 128]
    ...
    yield h@0, c@0, h@0
  } : (f32[B, 32], f32[B, 32], f32[T, B, 32])
  out y = %5
}
```
Names are given at print time, per region (a body numbers its own `%k`). `ir.program_parser` reads
all of this back: `parse_program(print_program(p)) == p`, and printing that gives the same text.
"""

from __future__ import annotations

from .graph import Node
from .names import name_nodes
from .printer import INDENT, format_attr, format_type, format_use
from .program import Program, Region
from .shapes import symbols_of


def print_program(prog: Program) -> str:
    """The program as text; loop bodies nest, indented, under their loop."""
    syms = sorted(set().union(*(symbols_of(getattr(n.type, "shape", ())) for n in prog.inputs)))
    head = f"program {prog.name}" + (f"({', '.join(syms)})" if syms else "") + " {"
    nodes = prog.nodes()
    names = name_nodes(nodes)
    lines = [head]
    lines += [f"{INDENT}input {prog.roles.get(n.name, 'input')} {n.name} : {format_type(n.type)}" for n in prog.inputs]
    _body(nodes, {id(n) for n in prog.inputs}, names, lines, INDENT)
    lines += [f"{INDENT}out {k} = {names[id(n)]}" for k, n in prog.outputs.items()]
    lines.append("}")
    return "\n".join(lines) + "\n"


def print_region(region: Region, indent: str = "") -> str:
    """A loop body on its own (params line, nodes, yield)."""
    lines: list[str] = []
    _region(region, lines, indent)
    return "\n".join(lines) + "\n"


def _body(nodes: list[Node], params: set[int], names: dict[int, str], lines: list[str], indent: str) -> None:
    for n in nodes:
        if id(n) in params:
            continue
        call = _call(n, names)
        if n.op == "loop":
            lines.append(f"{indent}{names[id(n)]} = {call} {{")
            _region(n.attrs["body"], lines, indent + INDENT)
            lines.append(f"{indent}}} : {format_type(n.type)}")
        else:
            lines.append(f"{indent}{names[id(n)]} = {call} : {format_type(n.type)}")


def _region(region: Region, lines: list[str], indent: str) -> None:
    nodes = region.nodes()
    names = name_nodes(nodes)
    params = ", ".join(f"{names[id(p)]}: {format_type(p.type)}" for p in region.params)
    lines.append(f"{indent}^({params})")
    _body(nodes, {id(p) for p in region.params}, names, lines, indent)
    lines.append(f"{indent}yield " + ", ".join(names[id(r)] for r in region.results))


def _call(n: Node, names: dict[int, str]) -> str:
    args = [format_use(u, names) for u in n.inputs]
    for k, v in n.attrs.items():
        if k == "body":
            continue
        args.append(f"{k}={format_attr(v, 'value' if n.op == 'constant' and k == 'value' else None)}")
    return f"{n.op}(" + ", ".join(args) + ")"
