"""Turning a parsed cell (`CellText`, the syntax tree `ir.parser` makes) into a verified `Cell`.

Names are resolved after the whole cell is read (references may point forward), states are bound
(see `ir.parser` for the rules), types are inferred with the op table, each after the types it
needs, and checked against annotations. Errors found here are `ParseError`s or `VerifyError`s
shown like parse errors (line:column, the source line and a caret); then `verify_cell` runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ParseError, RnncompError, VerifyError
from .graph import Cell, Node, Use
from .ops import OpDef, check_attrs, describe_call, infer_type
from .tokens import Token, located
from .types import TensorType, TupleType
from .verify import verify_cell

# ---------------------------------------------------------------- syntax tree of one cell


@dataclass
class Ref:
    """`h` or `h[t-2]` in the text."""

    name: str
    delay: int
    at: Token


@dataclass
class Call:
    """`op(args..., key=value...)` in the text; `node` is filled when the cell is built."""

    op: OpDef
    args: list[Ref | Call]
    attrs: dict[str, Any]
    at: Token
    annotation: TensorType | TupleType | None = None
    annotation_at: Token | None = None
    target: str | None = None  # the name it is defined under; None for a nested call
    node: Node | None = field(default=None, repr=False)


@dataclass
class CellText:
    """A parsed but not yet built cell: declarations and definitions with their positions."""

    name: str
    at: Token
    seqs: list[tuple[str, TensorType, Token]] = field(default_factory=list)
    params: list[tuple[str, TensorType, Token]] = field(default_factory=list)
    statics: list[tuple[str, TensorType, Token]] = field(default_factory=list)
    states: dict[str, tuple[TensorType | None, Token]] = field(default_factory=dict)
    defs: dict[str, Call] = field(default_factory=dict)  # target (NAME or %k) -> its call
    def_at: dict[str, Token] = field(default_factory=dict)
    outputs: dict[str, tuple[Ref | Call, Token]] = field(default_factory=dict)
    yields: list[tuple[str, Ref | None, Token]] | None = None
    declared_at: dict[str, tuple[str, Token]] = field(default_factory=dict)

    def input_at(self, name: str) -> Token | None:
        """Where `name` is declared as a seq, param or static, if it is."""
        for n, _, tok in self.seqs + self.params + self.statics:
            if n == name:
                return tok
        return None


# ---------------------------------------------------------------- building the cell


def build_cell(ct: CellText, text: str) -> Cell:
    """Turn a parsed cell into a verified Cell: resolve names, bind states, infer and check types."""
    return _Builder(ct, text).build()


class _Builder:
    """Resolves the names of one `CellText` into Nodes, types them, and verifies the Cell."""

    def __init__(self, ct: CellText, text: str):
        self.ct, self.text = ct, text
        self.nodes: dict[str, Node] = {}  # the names a reference can use
        for name, t, _ in ct.seqs:
            self.nodes[name] = Node("seq", (), {}, t, name)
        for name, t, _ in ct.params:
            self.nodes[name] = Node("param", (), {}, t, name)
        for name, t, _ in ct.statics:
            self.nodes[name] = Node("static", (), {}, t, name)
        self.calls: dict[int, Call] = {}  # id(node) -> the call that made it, in text order

    def located(self, cls: type[Exception], message: str, tok: Token) -> Exception:
        """An error of class `cls` at `tok`, shown like a parse error (see `ir.tokens.located`)."""
        return located(cls, message, self.text, tok)

    def build(self) -> Cell:
        ct = self.ct
        for target, call in ct.defs.items():  # every named node exists before any reference is resolved
            self.nodes[target] = self.new_node(call, None if target.startswith("%") else target)
        for call in ct.defs.values():
            self.wire(call)
        outputs = {k: self.operand(rhs, f"output {k!r}", delay_ok=False) for k, (rhs, _) in ct.outputs.items()}
        states = self.bind_states()
        self.check_delays({id(n) for n in states.values()})
        declared = {k: t for k, (t, _) in ct.states.items() if t is not None}
        self.state_type = {id(n): declared[k] for k, n in states.items() if k in declared}
        done: set[int] = set()
        for call in list(self.calls.values()):
            self.infer_from(call, done)
        seqs = [self.nodes[n] for n, _, _ in ct.seqs]
        params = [self.nodes[n] for n, _, _ in ct.params]
        statics = [self.nodes[n] for n, _, _ in ct.statics]
        state_types = dict(declared)
        state_types.update({k: states[k].type for k in self.implicit})  # type: ignore[misc]
        return verify_cell(Cell(ct.name, seqs, params, state_types, states, outputs, statics))

    # -- names
    def new_node(self, call: Call, name: str | None) -> Node:
        call.node = Node(call.op.name, (), {}, None, name)
        self.calls[id(call.node)] = call
        return call.node

    def wire(self, call: Call) -> None:
        """Resolve the operands of `call` (making nodes for nested calls) into its node's uses."""
        uses = []
        for arg in call.args:
            delay = arg.delay if isinstance(arg, Ref) else 0
            uses.append(Use(self.operand(arg, f"an operand of {call.op.name}"), delay))
        call.node.inputs = tuple(uses)  # type: ignore[union-attr]

    def operand(self, e: Ref | Call, where: str, delay_ok: bool = True) -> Node:
        """The node an operand names (a nested call becomes a new unnamed node)."""
        if isinstance(e, Call):
            node = self.new_node(e, None)
            self.wire(e)
            return node
        node = self.nodes.get(e.name)
        if node is None:
            hint = ""
            if e.name in self.ct.states:
                hint = f"; state {e.name!r} is declared but no line defines it ({e.name} = op(...))"
            elif e.name in self.ct.outputs:
                hint = "; an output cannot be read, read the node it names"
            raise self.located(
                ParseError,
                f"undefined name {e.name!r} in {where}: not a seq, param, static or node of this cell{hint}",
                e.at,
            )
        if e.delay and not delay_ok:
            raise self.located(
                ParseError, f"{where} names a node at this step; {e.name}[t-{e.delay}] has a delay", e.at
            )
        return node

    def bind_states(self) -> dict[str, Node]:
        """Each state's defining node: its `yield` binding, else the node written under its name.

        Without a `yield` line, a named node that is read with a delay and not declared is a state
        too (as in `h = tanh(matmul(h[t-1], U))`), its init type its own type, after the declared ones.
        """
        ct = self.ct
        self.implicit: list[str] = []
        if ct.yields is None:
            states = {}
            for k, (_, tok) in ct.states.items():
                if k not in ct.defs:
                    raise self.located(
                        VerifyError, f"state {k!r} is declared but never defined: add a line '{k} = op(...)'", tok
                    )
                states[k] = self.nodes[k]
            delayed = {id(u.node) for c in self.calls.values() for u in c.node.inputs if u.delay}  # type: ignore[union-attr]
            for k in ct.defs:
                if not k.startswith("%") and k not in states and id(self.nodes[k]) in delayed:
                    states[k] = self.nodes[k]
                    self.implicit.append(k)
            return states
        states = {}
        for k, ref, tok in ct.yields:
            if k not in ct.states:
                raise self.located(ParseError, f"yield names {k!r}, which is not a declared state", tok)
            if k in states:
                raise self.located(ParseError, f"yield names state {k!r} twice", tok)
            states[k] = self.operand(ref or Ref(k, 0, tok), f"yield {k!r}", delay_ok=False)
        return states

    def check_delays(self, state_nodes: set[int]) -> None:
        """Only states and seqs may be read with a delay (the verifier's rule, reported at the read)."""
        for call in self.calls.values():
            for arg, use in zip(call.args, call.node.inputs, strict=True):  # type: ignore[union-attr]
                if use.delay and use.node.op != "seq" and id(use.node) not in state_nodes:
                    why = {
                        "param": "a param is the same at every step",
                        "static": "a static is the same at every step",
                    }.get(use.node.op, "declare it as a state")
                    raise self.located(
                        VerifyError,
                        f"{arg.name} is read with delay {use.delay} ({_arg_text(arg)}), "  # type: ignore[union-attr]
                        f"but only states and seqs can be delayed ({why})",
                        arg.at,
                    )

    # -- types
    def delayed_type(self, node: Node) -> TensorType | TupleType | None:
        """The type of a delayed read that needs no inference: a declared input or state, or an annotation."""
        if id(node) not in self.calls:  # a seq or param
            return node.type
        if id(node) in self.state_type:
            return self.state_type[id(node)]
        return self.calls[id(node)].annotation

    def deps(self, call: Call) -> list[tuple[Call, bool]]:
        """The calls whose types `call` needs first, each with whether it is read through a delay."""
        out = []
        for use in call.node.inputs:  # type: ignore[union-attr]
            dep = self.calls.get(id(use.node))
            if dep is not None and not (use.delay and self.delayed_type(use.node) is not None):
                out.append((dep, use.delay > 0))
        return out

    def infer_from(self, root: Call, done: set[int]) -> None:
        """Type `root` and every call it depends on, each after its dependencies (iterative DFS)."""
        if id(root.node) in done:
            return
        stack = [(root, iter(self.deps(root)), False)]
        on_path = {id(root.node): 0}
        while stack:
            call, it, _ = stack[-1]
            for dep, delayed in it:
                if id(dep.node) in done:
                    continue
                if id(dep.node) in on_path:
                    ring = stack[on_path[id(dep.node)] :]
                    # the calls read through a delay along the ring (the edge back to `dep` last)
                    via_delay = [c for c, _, d in ring[1:] if d] + ([dep] if delayed else [])
                    self.cycle_error([c for c, _, _ in ring], via_delay)
                on_path[id(dep.node)] = len(stack)
                stack.append((dep, iter(self.deps(dep)), delayed))
                break
            else:
                stack.pop()
                del on_path[id(call.node)]
                self.type_call(call)
                done.add(id(call.node))

    def cycle_error(self, ring: list[Call], via_delay: list[Call]) -> None:
        """A dependency cycle: through a delay, a type that cannot be inferred; else an algebraic loop."""
        names = [c.target or f"{c.op.name}(...)" for c in ring]
        if via_delay:
            c = via_delay[0]
            name = c.target or f"{c.op.name}(...)"
            raise self.located(
                VerifyError,
                f"cannot infer the type of {name}: it is read through a delay before its type is known; "
                f"declare the state with a type (state {name} : f32[...]) or annotate its definition",
                c.at,
            )
        loop = " -> ".join(names + names[:1])
        raise self.located(
            VerifyError,
            f"algebraic loop: {loop} is a cycle of delay-0 edges; "
            "every cycle must pass through a delay >= 1 (read a state as h[t-1])",
            ring[0].at,
        )

    def type_call(self, call: Call) -> None:
        """Apply the op's type rule to the operand types; check the annotation where there is one."""
        node = call.node
        assert node is not None
        if call.op.infer is None:  # a source op written as a call (only in invalid cells): trust the annotation
            if call.annotation is None:
                raise self.located(VerifyError, f"{call.op.name} is a source op: annotate its type", call.at)
            node.type = call.annotation
            return
        ins = []
        for use in node.inputs:
            t = self.delayed_type(use.node) if use.delay else None
            ins.append(t if t is not None else use.node.type)
        try:
            attrs = check_attrs(call.op, call.attrs)
            t = infer_type(call.op, ins, attrs)
        except RnncompError as e:
            names = [_arg_text(a) for a in call.args]
            raise self.located(VerifyError, f"{e} in {describe_call(call.op.name, ins, names)}", call.at) from None
        if call.annotation is not None and call.annotation != t:
            raise self.located(
                VerifyError,
                f"{call.target or call.op.name} = {call.op.name}(...) has type {t}, but is annotated {call.annotation}",
                call.annotation_at or call.at,
            )
        node.attrs, node.type = attrs, t


def _arg_text(a: Ref | Call) -> str:
    if isinstance(a, Call):
        return f"{a.op.name}(...)"
    return f"{a.name}[t-{a.delay}]" if a.delay else a.name
