"""The kernel program: a final Program cut into units with explicit operands and results (the `fuse`
pass), then told where every value lives (the `plan` pass). What both Numba printers compute from.

```
kernel program elman(B, T) {
  given x, W, U, b, h
  u0 gemm %0 = matmul(x, W) : f32[T, B, 16]  <- x, W  -> %0 in buf0 [u0..u3]
  u1 loop %2 <- h, %0, %1, U, b {
    given t@0, h@t-1, xh1@0, U, b
    u0 gemm %0 = matmul(h@t-1, U) : f32[B, 16]  <- h@t-1, U  -> %0 in buf0 [u0..u1]
    u1 fused [B, 16] {%1, %2, h@0}  <- xh1@0, %0, b  -> h@0 in state 0 (in place)
    yield h@0, h@0
    in place: state 0
    buf0 f32[B, 16]: %0 [u0..u1]
  }
  ...
}
```
A block is the program's top level or a loop body. Its units, in schedule order, are: a fused
group of elementwise nodes (one loop over `shape`; `results` are its stored roots, the other
members computed where they are read), a view (re-indexes its operand, computes nothing), a kernel
(one op), a GEMM (matmul, matmul_tn), a loop (with its body as a block of its own) or an item (one
result of a loop). Each unit names the values it reads from outside (`operands`) and the values it
makes for others (`results`).

After `plan`, each value a unit makes has a `Place`: a buffer of the block (`Buffer`, which holds
values one after another: each value's lifetime is the units from its maker to its last reader,
and values of one type whose lifetimes do not meet share a buffer), a carried state of the loop
(updated in place), a slot of a loop's stacked result, the result of a loop, or none at all
(`inline`: a fused member computed where it is read; `constant`: zeros read as the literal 0). Names are given at
print time (`ir.names`): a node prints as the Program printer shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import VerifyError
from .graph import Node
from .names import name_nodes
from .printer import INDENT, format_attr, format_type
from .program import Program
from .shapes import symbols_of

UNIT_KINDS = ("fused", "view", "kernel", "gemm", "loop", "item")
PLACES = ("buffer", "state", "slot", "loop", "given", "inline", "view", "constant")


@dataclass(eq=False)
class Buffer:
    """One array of a block, holding `values` one after another: (node, first unit, last unit)."""

    type: object  # TensorType
    values: list[tuple[Node, int, int | None]] = field(default_factory=list)  # last None: outlives the block


@dataclass(frozen=True)
class Place:
    """Where a value lives: `kind` one of PLACES; `buffer` for a buffer, `index` for a state or slot."""

    kind: str
    buffer: Buffer | None = None
    index: int = 0


@dataclass(eq=False)
class Unit:
    """One step of a block's schedule (see the module)."""

    kind: str
    nodes: list[Node]  # every node the unit computes (fused: all members; else one)
    results: list[Node]  # what it makes for other units or the block's results
    operands: list[Node]  # values of other units (or given) that it reads
    shape: tuple | None = None  # a fused group's iteration shape
    body: Block | None = None  # a loop's body


@dataclass(eq=False)
class Block:
    """The program's top level or a loop body: given values, units in order, results."""

    given: list[Node]
    units: list[Unit]
    results: list[Node]
    nodes: list[Node]  # every node, in IR order (for names)
    places: dict[int, Place] | None = None  # after plan: id(node) -> where it lives
    buffers: list[Buffer] | None = None
    in_place: set[int] = field(default_factory=set)  # a loop body: carries its units update in place
    schedule: object = None  # the fuse pass's passes.fuse.BlockPlan (what plan reads; not printed)

    def unit_of(self) -> dict[int, int]:
        """id(node) -> index of the unit computing it (views and members included)."""
        return {id(n): k for k, u in enumerate(self.units) for n in u.nodes}


@dataclass(eq=False)
class KernelProgram:
    """A Program's kernel program: its top-level block (loops nest their bodies)."""

    program: Program
    main: Block
    planned: bool = False

    def blocks(self) -> list[Block]:
        """Every block, the top level first, nested bodies after their loop."""
        out: list[Block] = []

        def walk(b: Block) -> None:
            out.append(b)
            for u in b.units:
                if u.body is not None:
                    walk(u.body)

        walk(self.main)
        return out

    def __str__(self) -> str:
        return print_kernel_program(self)


# ---------------------------------------------------------------- printer


def print_kernel_program(kp: KernelProgram) -> str:
    prog = kp.program
    syms = sorted(set().union(*(symbols_of(getattr(n.type, "shape", ())) for n in prog.inputs)))
    head = f"kernel program {prog.name}" + (f"({', '.join(syms)})" if syms else "") + " {"
    lines = [head]
    names = _block(kp.main, lines, INDENT, outputs=prog.outputs)
    del names
    lines.append("}")
    return "\n".join(lines) + "\n"


def _block(b: Block, lines: list[str], indent: str, outputs: dict[str, Node] | None = None) -> dict[int, str]:
    names = name_nodes(b.nodes)
    nm = lambda n: names.get(id(n), n.name or "%?")  # noqa: E731
    buffers = {id(buf): k for k, buf in enumerate(b.buffers or [])}
    lines.append(f"{indent}given " + ", ".join(nm(n) for n in b.given))
    for k, u in enumerate(b.units):
        text = f"{indent}u{k} {u.kind} " + _what(u, nm)
        if u.operands:
            text += "  <- " + ", ".join(nm(n) for n in u.operands)
        if b.places is not None and u.kind != "loop":
            where = [f"{nm(r)} {_place(b.places.get(id(r)), buffers, k, b.in_place)}" for r in u.results]
            if where:
                text += "  -> " + ", ".join(where)
        if u.body is not None:
            lines.append(text + " {")
            _block(u.body, lines, indent + INDENT)
            lines.append(f"{indent}}}")
        else:
            lines.append(text)
    if outputs is not None:
        lines += [f"{indent}out {k} = {nm(n)}" for k, n in outputs.items()]
    else:
        lines.append(f"{indent}yield " + ", ".join(nm(n) for n in b.results))
    if b.in_place:
        lines.append(f"{indent}in place: " + ", ".join(f"state {i}" for i in sorted(b.in_place)))
    for k, buf in enumerate(b.buffers or []):
        held = ", ".join(f"{nm(n)} [u{lo}..{'end' if hi is None else f'u{hi}'}]" for n, lo, hi in buf.values)
        lines.append(f"{indent}buf{k} {format_type(buf.type)}: {held}")
    return names


def _what(u: Unit, nm) -> str:
    if u.kind == "fused":
        shape = ", ".join(map(str, u.shape or ()))
        return f"[{shape}] {{" + ", ".join(nm(n) for n in u.nodes) + "}"
    (n,) = u.nodes
    args = ", ".join(nm(x.node) for x in n.inputs)
    extra = ""
    if u.kind == "loop":
        a = n.attrs
        way = "reverse" if a["reverse"] else "forward"
        length, start = format_attr(a["length"]), format_attr(a["start"])
        extra = f" [{way}: {length} iterations of {a['stride']} step(s) from step {start}]"
    elif u.kind == "item":
        extra = f" [result {n.attrs['index']}]"
    return f"{nm(n)} = {n.op}({args}) : {format_type(n.type)}{extra}"


def _place(p: Place | None, buffers: dict[int, int], at: int, in_place: set[int]) -> str:
    if p is None:
        return "(unplaced)"
    if p.kind == "buffer":
        return f"in buf{buffers[id(p.buffer)]}"
    if p.kind == "state":
        return f"in state {p.index}" + (" (in place)" if p.index in in_place else "")
    if p.kind == "slot":
        return f"in a slot of stacked result {p.index}"
    if p.kind == "loop":
        return "a loop's result"
    return p.kind


# ---------------------------------------------------------------- verifier


def verify_kernel_program(kp: KernelProgram) -> None:
    """Check each block: every computed node is in exactly one unit; a unit reads only given values
    and results of earlier units (or members of its own group); after plan, every result has a
    place, a buffer holds values of its type, and no two values of a buffer are alive at once."""
    for b in kp.blocks():
        _verify_block(b, kp.planned)


def _verify_block(b: Block, planned: bool) -> None:
    names = name_nodes(b.nodes)
    nm = lambda n: names.get(id(n), n.name or "%?")  # noqa: E731
    given = {id(n) for n in b.given}
    at: dict[int, int] = {}
    for k, u in enumerate(b.units):
        if u.kind not in UNIT_KINDS:
            raise VerifyError(f"kernel program: unit u{k} has unknown kind {u.kind!r}; kinds: {UNIT_KINDS}")
        for n in u.nodes:
            if id(n) in at or id(n) in given:
                raise VerifyError(f"kernel program: node {nm(n)} is computed twice (unit u{k})")
            at[id(n)] = k
    for n in b.nodes:
        if id(n) not in at and id(n) not in given:
            raise VerifyError(f"kernel program: node {nm(n)} ({n.op}) is computed by no unit")
    for k, u in enumerate(b.units):
        own = {id(n) for n in u.nodes}
        for n in u.nodes:
            for x in n.inputs:
                src = x.node
                if id(src) in own or id(src) in given:
                    continue
                if at.get(id(src), k) >= k:
                    raise VerifyError(
                        f"kernel program: unit u{k} ({u.kind}) reads {nm(src)} before the unit computing it"
                    )
        if u.kind == "fused" and any(r.type.shape != u.shape for r in u.results):  # type: ignore[union-attr]
            raise VerifyError(f"kernel program: fused unit u{k} stores a result not of its shape {u.shape}")
    if not planned:
        return
    assert b.places is not None
    for k, u in enumerate(b.units):
        for r in u.results:
            if id(r) not in b.places:
                raise VerifyError(f"kernel program: result {nm(r)} of unit u{k} has no place")
    for i, buf in enumerate(b.buffers or []):
        spans = sorted((lo, 1 << 30 if hi is None else hi, n) for n, lo, hi in buf.values)
        for n, _, _ in buf.values:
            if n.type != buf.type:
                raise VerifyError(f"kernel program: buf{i} is {buf.type} but holds {nm(n)} : {n.type}")
        for (lo1, hi1, n1), (lo2, _, n2) in zip(spans, spans[1:]):
            if lo2 <= hi1:
                raise VerifyError(
                    f"kernel program: buf{i} holds {nm(n1)} (u{lo1}..u{hi1}) and {nm(n2)} (from u{lo2}) at once"
                )


__all__ = ["PLACES", "UNIT_KINDS", "Block", "Buffer", "KernelProgram", "Place", "Unit", "print_kernel_program"]
