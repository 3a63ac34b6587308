"""The Cell verifier: every rule of a well-formed cell, each broken rule a VerifyError naming the place."""

from __future__ import annotations

import re

from .errors import RnncompError, VerifyError
from .graph import Cell, CycleFound, Node
from .limits import check_delay, check_name_length
from .names import label, name_nodes
from .ops import check_attrs, describe_call, get_op, infer_type
from .shapes import is_identifier
from .types import TensorType


def verify_cell(cell: Cell) -> Cell:
    """Check `cell` and return it; raise VerifyError naming the node, op or state at fault."""
    where = f"cell {cell.name!r}"
    if not is_identifier(cell.name):
        raise VerifyError(f"cell name {cell.name!r} is not an identifier")
    check_name_length(cell.name, "cell")
    _check_names(cell, where)
    try:
        nodes = cell.nodes()
    except CycleFound as e:
        names = name_nodes(e.nodes)
        ring = " -> ".join(names[id(n)] for n in e.nodes + e.nodes[:1])
        raise VerifyError(
            f"{where}: algebraic loop: {ring} is a cycle of delay-0 edges; "
            "every cycle must pass through a delay >= 1 (read a state as h[t-1])",
            node=e.nodes[0],
            cycle=e.nodes,
        ) from None
    names = name_nodes(nodes)
    declared = {id(n) for n in cell.inputs}
    defs = {id(n): k for k, n in cell.states.items()}
    for node in nodes:  # first: a placeholder left over is the root cause of any error about its readers
        if node.op == "state":
            readers = [label(m, names) for m in nodes if any(u.node is node for u in m.inputs)]
            raise VerifyError(
                f"{where}: state {node.name!r} is read (by {', '.join(readers) or 'an output'}) "
                "but never defined: give it a value (State.define(...) or a return key)",
                node=node,
            )
    for node in nodes:
        if isinstance(node.name, str):
            check_name_length(node.name, f"{where}: node")
        at = f"{where}, node {label(node, names)}"
        op = _op(node, at)
        if op.kind == "source" and node.op not in ("constant", "dropout_mask"):
            if node.op not in ("seq", "param", "static"):
                raise VerifyError(
                    f"{at}: a {node.op!r} node only appears in Programs (after unrolling), not in a cell", node=node
                )
            if id(node) not in declared:
                raise VerifyError(
                    f"{at}: reference to {node.name!r}, which is not a declared seq, param or static of this cell",
                    node=node,
                )
            continue
        if node.name is not None and not _node_name_ok(node.name):
            raise VerifyError(
                f"{at}: node name {node.name!r} is not an identifier (optionally with an @suffix)", node=node
            )
        for i, use in enumerate(node.inputs):
            _check_use(cell, node, i, use, at, names, defs)
        _check_type(node, op, at, names)
    _check_statics(cell, where)
    for name in cell.state_types:
        if name not in cell.states:
            raise VerifyError(
                f"{where}: state {name!r} is declared but never defined: "
                "give it a value (State.define(...) or a return key)"
            )
    for name, node in cell.states.items():
        if get_op(node.op).kind == "source" or node.name != name:
            raise VerifyError(
                f"{where}: state {name!r} is defined by {label(node, names)}; a state's value must be a compute "
                "node named after it",
                node=node,
            )
        decl = cell.state_types.get(name)
        if decl is not None and decl != node.type:
            raise VerifyError(
                f"{where}: state {name!r}: its init has type {decl} but its node "
                f"{label(node, names)} has type {node.type}; they must be equal",
                node=node,
            )
    return cell


def _op(node: Node, at: str):
    try:
        return get_op(node.op)
    except RnncompError as e:
        raise type(e)(f"{at}: {e}", node=node) from None


def _check_use(cell: Cell, node: Node, i: int, use, at: str, names, defs) -> None:
    if not isinstance(use.node, Node):
        raise VerifyError(f"{at}: operand {i} is {use.node!r}, not a node of this graph", node=node)
    d = use.delay
    if isinstance(d, bool) or not isinstance(d, int):
        raise VerifyError(f"{at}: operand {i} has delay {d!r}; delays are ints >= 0", node=node)
    if d < 0:
        raise VerifyError(
            f"{at}: operand {i} reads {names.get(id(use.node), '?')} with delay {d}; delays must be >= 0 "
            "(a delay d reads the value d steps back)",
            node=node,
        )
    check_delay(d, f"{at}: operand {i}")
    if d > 0 and id(use.node) not in defs and use.node.op != "seq":
        src = label(use.node, names)
        hint = {"param": "a param is the same at every step", "static": "a static is the same at every step"}.get(
            use.node.op, "declare it as a state"
        )
        raise VerifyError(
            f"{at}: operand {i} reads {src} with delay {d}, but only states and seqs can be delayed ({hint})", node=node
        )


def _check_type(node: Node, op, at: str, names) -> None:
    ins = [u.node.type for u in node.inputs]
    try:
        attrs = check_attrs(op, node.attrs)
        got = infer_type(op, ins, attrs)  # type: ignore[arg-type]
    except RnncompError as e:
        call = describe_call(node.op, ins, [names.get(id(u.node), "?") for u in node.inputs])  # type: ignore[arg-type]
        raise VerifyError(f"{at}: {e} in {call}", node=node) from None
    if not isinstance(node.type, TensorType) or node.type != got:
        raise VerifyError(f"{at}: recorded type {node.type} differs from the inferred {got}", node=node)


_SUFFIX = re.compile(r"@[A-Za-z0-9_+-]+\Z")


def _node_name_ok(name: str) -> bool:
    base, at, suffix = name.partition("@")
    return is_identifier(base) and (not at or bool(_SUFFIX.match(at + suffix)))


def _check_names(cell: Cell, where: str) -> None:
    seen: dict[str, str] = {}
    groups = [
        ("seq", [n.name for n in cell.seqs]),
        ("param", [n.name for n in cell.params]),
        ("static", [n.name for n in cell.statics]),
        ("state", list(cell.state_types) + [k for k in cell.states if k not in cell.state_types]),
        ("output", list(cell.outputs)),
    ]
    for kind, names in groups:
        for name in names:
            if not is_identifier(name):
                raise VerifyError(f"{where}: {kind} name {name!r} is not an identifier")
            check_name_length(name, f"{where}: {kind}")
            if name in seen:
                raise VerifyError(f"{where}: name {name!r} is used twice (as {seen[name]} and as {kind})")
            seen[name] = kind


def batch_dim(cell: Cell) -> int | str | None:
    """The cell's batch dim: the leading dim of its first seq or state that has one (None if none does)."""
    lead = [n.type.shape[0] for n in cell.seqs + list(cell.states.values()) if n.type.shape]  # type: ignore[union-attr]
    return lead[0] if lead else None


def _check_statics(cell: Cell, where: str) -> None:
    """A static holds one value per batch row: its leading dim is the batch (B), as the seqs' and states' is."""
    batch = batch_dim(cell)
    for n in cell.statics:
        shape = n.type.shape  # type: ignore[union-attr]
        want = "B" if batch is None else batch
        if not shape or shape[0] != want:
            lead = f"leading dim {shape[0]!r}" if shape else "no leading dim"
            whose = (
                "the batch symbol 'B'"
                if batch is None
                else f"the batch dim {batch!r} (the leading dim of the cell's seqs and states)"
            )
            raise VerifyError(
                f"{where}: static {n.name!r} has type {n.type}, with {lead}, but a static holds one value per "
                f"batch row: its leading dim must be {whose}, e.g. Static[{want!r}, 16]",
                node=n,
            )
