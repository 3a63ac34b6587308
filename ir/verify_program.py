"""The Program verifier: acyclic, no delays left, every type re-inferred, loop signatures consistent."""

from __future__ import annotations

from .errors import RnncompError, VerifyError
from .graph import CycleFound, Node
from .limits import check_name_length
from .names import label, name_nodes
from .ops import check_attrs, describe_call, get_op, infer_type
from .program import LoopView, Program, Region
from .types import TensorType, TupleType


def verify_program(prog: Program) -> Program:
    """Check `prog` and return it; raise VerifyError naming the node (and loop) at fault."""
    check_name_length(str(prog.name), "program")
    where = f"program {prog.name!r}"
    try:
        nodes = prog.nodes()
    except CycleFound as e:
        raise VerifyError(
            f"{where}: cycle through {[label(n) for n in e.nodes]}; a program must be acyclic",
            node=e.nodes[0],
            cycle=e.nodes,
        ) from None
    names = {n.name for n in prog.inputs}
    if len(names) != len(prog.inputs) or None in names:
        raise VerifyError(f"{where}: inputs must have distinct names, got {[n.name for n in prog.inputs]}")
    for n in prog.inputs:
        check_name_length(str(n.name), f"{where}: input")
    unknown = set(prog.roles) ^ names
    if unknown:
        raise VerifyError(f"{where}: roles and inputs disagree on {sorted(unknown, key=str)}")
    _check_nodes(nodes, {id(n) for n in prog.inputs}, where)
    return prog


def _check_nodes(nodes: list[Node], params: set[int], where: str, region: tuple = ()) -> None:
    """Check each node; `region` is the path of loops whose bodies hold these nodes."""
    names = name_nodes(nodes)
    members = {id(n) for n in nodes}
    for node in nodes:
        at = f"{where}, node {label(node, names)}"
        if id(node) in params:
            if node.op != "input":
                raise VerifyError(f"{at}: a graph's parameters must be `input` nodes", node=node, region=region)
            continue
        if node.op == "input":
            raise VerifyError(
                f"{at}: input {node.name!r} is not a declared parameter of this graph (captured from outside?)",
                node=node,
                region=region,
            )
        for i, u in enumerate(node.inputs):
            if u.delay != 0:
                raise VerifyError(
                    f"{at}: operand {i} still has delay {u.delay}; programs hold no delays", node=node, region=region
                )
            if id(u.node) not in members:
                raise VerifyError(
                    f"{at}: operand {i} ({label(u.node)}) is not a node of this graph", node=node, region=region
                )
        try:
            op = get_op(node.op)
            attrs = check_attrs(op, node.attrs)
            got = infer_type(op, [u.node.type for u in node.inputs], attrs)  # type: ignore[misc]
        except RnncompError as e:
            call = describe_call(
                node.op, [u.node.type for u in node.inputs], [names.get(id(u.node), "?") for u in node.inputs]
            )  # type: ignore[misc]
            raise VerifyError(f"{at}: {e} in {call}", node=node, region=region) from None
        if node.type != got:
            raise VerifyError(
                f"{at}: recorded type {node.type} differs from the inferred {got}", node=node, region=region
            )
        if node.op == "loop":
            _check_loop(node, at, region)


def _check_loop(node: Node, at: str, region: tuple) -> None:
    v = LoopView(node)
    body: Region = v.body
    k = v.stride
    if k < 1:
        raise VerifyError(f"{at}: stride {k} must be >= 1", node=node, region=region)
    n_params = k + v.n_carry + v.n_xs * k + len(v.consts)
    if len(body.params) != n_params:
        raise VerifyError(
            f"{at}: the body takes {len(body.params)} params; the loop's operands need {n_params}",
            node=node,
            region=region,
        )
    if len(body.results) != v.n_carry + v.n_buf * k:
        raise VerifyError(
            f"{at}: the body yields {len(body.results)} results; expected {v.n_carry} carried + {v.n_buf}x{k} per-step",
            node=node,
            region=region,
        )

    def same(a, b, what: str) -> None:
        if a != b:
            raise VerifyError(f"{at}: {what}: {a} vs {b}", node=node, region=region)

    for i, (cin, prm, cout) in enumerate(zip(v.carry_in, v.carry_params, v.carry_out)):
        same(cin.node.type, prm.type, f"carried value {i} ({prm.name}): carry-in and body param types differ")
        same(prm.type, cout.type, f"carried value {i} ({prm.name}): carry-in and carry-out types differ")
    for t in v.t_params:
        if not isinstance(t.type, TensorType) or t.type.rank or t.type.dtype.is_float:
            raise VerifyError(
                f"{at}: step index param {t.name} must be an integer scalar, got {t.type}", node=node, region=region
            )
    for i, (x, prms) in enumerate(zip(v.xs, v.x_params)):
        for p in prms:
            same(
                TensorType(x.node.type.dtype, x.node.type.shape[1:]),
                p.type,
                f"xs {i}: a step of {x.node.type} vs body param {p.name}",
            )  # type: ignore[union-attr]
    for i, (b, ys) in enumerate(zip(v.bufs, v.y_results)):
        for y in ys:
            same(
                TensorType(b.node.type.dtype, b.node.type.shape[1:]),
                y.type,
                f"buf {i}: a step of {b.node.type} vs body result",
            )  # type: ignore[union-attr]
    for c, p in zip(v.consts, v.const_params):
        same(c.node.type, p.type, f"invariant {p.name}: operand and body param types differ")
    if not isinstance(node.type, TupleType):
        raise VerifyError(f"{at}: a loop's type must be a tuple", node=node, region=region)
    try:
        body_nodes = body.nodes()
    except CycleFound as e:
        raise VerifyError(
            f"{at}: the body has a cycle through {[label(n) for n in e.nodes]}",
            node=e.nodes[0],
            region=region + (node,),
            cycle=e.nodes,
        ) from None
    _check_nodes(body_nodes, {id(p) for p in body.params}, f"{at} body", region + (node,))
