"""The `hoist` pass: loop-invariant code motion and time-batching of input projections.

Inside a loop body, a node whose operands are all invariant leaves the loop (computed once, passed
in as an invariant). A matmul that depends on this step's sequence slices and invariants only
(never on carried state) is rewritten over the whole sequence at once: for
`x@j @ W` the loop gets a new stacked input `x @ W` of shape (T, B, H), one GEMM over all T*B rows.
In a fully unrolled program the same rule turns `matmul(step(x, t), W)` into `step(matmul(x, W), t)`,
and CSE shares the batched node between steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from ir import LoopView, Node, Program, Region, RnncompError, TensorType, Use
from ir.ops import check_attrs, get_op, infer_type

from .registry import Analyses, Pass, register_pass
from .rewrite import rebuild, rewrite_program

STARTS = ("init", "lengths", "dstate")  # input roles that are values at a step, not whole sequences


def _batchable(node: Node) -> bool:
    """The op's record says (`time_batchable`): elementwise ops stay in the loop, fused there, since
    batching them costs a T-long temporary."""
    return get_op(node.op).time_batchable


def _batched(op: Node, operands: list[Node], memo: dict) -> Node | None:
    """`op` applied to whole-sequence operands, if its type rule agrees it is the stacked result."""
    key = (op.op, tuple(id(o) for o in operands), tuple(sorted(op.attrs.items())))
    if key in memo:
        return memo[key]
    try:
        t = infer_type(get_op(op.op), [o.type for o in operands], check_attrs(get_op(op.op), op.attrs))  # type: ignore[misc]
    except RnncompError:
        return None
    lead = next(o.type.shape[0] for o in operands if o.type.rank == op.type.rank + 1 and _is_timed(o, memo))  # type: ignore[union-attr]
    if t != TensorType(op.type.dtype, (lead,) + op.type.shape):  # type: ignore[union-attr]
        return None
    memo[key] = Node(op.op, [Use(o) for o in operands], op.attrs, t)
    return memo[key]


def _is_timed(node: Node, memo: dict) -> bool:
    return id(node) in memo.get("__timed__", set())


@register_pass
@dataclass(frozen=True)
class Hoist(Pass):
    """Program -> Program: loop-invariant code motion, input projections as one GEMM over T*B rows."""

    name = "hoist"

    def apply(self, prog: Program, analyses: Analyses) -> Program:
        return hoist(prog)


def hoist(prog: Program) -> Program:
    """`prog` with loop invariants hoisted and input projections batched over the sequence."""
    memo: dict = {"__timed__": set()}
    stepform: dict[int, tuple[int, Node]] = {}  # id(new node) -> (step index, whole-sequence node)
    # ids of nodes that depend on a step slice or on a per-run start value (an init, a final-state
    # cotangent, lengths): batching such a node over all steps would compute every step from step
    # t's value, T times the work.
    timed: set[int] = {id(n) for n in prog.inputs if prog.roles.get(n.name) in STARTS}  # type: ignore[arg-type]

    def visit(node: Node, ops: list[Node]) -> Node:
        new = rebuild(node, ops)
        if node.op == "loop":
            return _hoist_loop(new, memo)
        if node.op == "step":
            stepform[id(new)] = (node.attrs["index"], ops[0])
            memo["__timed__"].add(id(ops[0]))
            timed.add(id(new))
            return new
        if any(id(o) in timed for o in ops):
            timed.add(id(new))
        if _batchable(node) and any(id(o) in stepform for o in ops):
            ts = {stepform[id(o)][0] for o in ops if id(o) in stepform}
            if len(ts) == 1 and all(id(o) in stepform or id(o) not in timed for o in ops):
                (t,) = ts
                whole = [stepform[id(o)][1] if id(o) in stepform else o for o in ops]
                batched = _batched(node, whole, memo)
                if batched is not None:
                    memo["__timed__"].add(id(batched))
                    s = Node("step", [Use(batched)], {"index": t}, node.type, node.name)
                    stepform[id(s)] = (t, batched)
                    timed.add(id(s))
                    return s
        return new

    return rewrite_program(prog, visit, recurse=False)


def _hoist_loop(loop: Node, memo: dict) -> Node:
    v = LoopView(loop)
    body = v.body
    outer_of = {id(p): u.node for p, u in zip(v.const_params, v.consts)}  # invariant param -> outer node
    new_consts: list[tuple[Node, Node]] = []  # (outer node, new body param)
    new_xs: list[tuple[Node, list[Node]]] = []  # (outer stacked node, params per copy)
    by_outer: dict[int, Node] = {}
    by_xs: dict[int, list[Node]] = {}
    inv: dict[int, Node] = {}  # id(body node) -> outer node computing the same invariant value
    seq: dict[int, tuple[int, Node]] = {}  # id(body node) -> (copy j, outer stacked node)
    for p in v.const_params:
        inv[id(p)] = outer_of[id(p)]
    for i, ps in enumerate(v.x_params):
        for j, p in enumerate(ps):
            seq[id(p)] = (j, v.xs[i].node)
            memo["__timed__"].add(id(v.xs[i].node))
    replace: dict[int, Node] = {}
    nodes = body.nodes()
    users: dict[int, list[Node]] = {}
    for n in nodes:
        for u in n.inputs:
            users.setdefault(id(u.node), []).append(n)
    results = {id(r) for r in body.results}
    for n in nodes:
        if n.op == "input" or not n.inputs:
            continue
        op = get_op(n.op)
        if all(id(u.node) in inv for u in n.inputs) and op.kind not in ("source", "control"):
            inv[id(n)] = _outer(n, [inv[id(u.node)] for u in n.inputs], memo)
        elif _batchable(n) and all(id(u.node) in inv or id(u.node) in seq for u in n.inputs):
            js = {seq[id(u.node)][0] for u in n.inputs if id(u.node) in seq}
            if len(js) == 1:
                whole = [seq[id(u.node)][1] if id(u.node) in seq else inv[id(u.node)] for u in n.inputs]
                b = _batched(n, whole, memo)
                if b is not None:
                    memo["__timed__"].add(id(b))
                    seq[id(n)] = (js.pop(), b)
    # Cut at the frontier: hoisted values used by nodes that stay (or by results) become params.
    for n in nodes:
        if n.op == "input" or (id(n) not in inv and id(n) not in seq):
            continue
        stays = [m for m in users.get(id(n), []) if id(m) not in inv and id(m) not in seq]
        if not stays and id(n) not in results:
            continue
        if id(n) in inv:
            if n.op == "constant":
                continue
            outer = inv[id(n)]
            if id(outer) not in by_outer:
                p = Node("input", (), {}, n.type, f"inv{len(v.consts) + len(new_consts)}")
                by_outer[id(outer)] = p
                new_consts.append((outer, p))
            replace[id(n)] = by_outer[id(outer)]
        else:
            j, outer = seq[id(n)]
            if id(outer) not in by_xs:
                ps = [Node("input", (), {}, n.type, f"xh{len(v.xs) + len(new_xs)}@{c}") for c in range(v.stride)]
                by_xs[id(outer)] = ps
                new_xs.append((outer, ps))
            replace[id(n)] = by_xs[id(outer)][j]
    if not replace:
        return loop
    results_new = _substitute(body, replace)

    c, k = v.n_carry, v.stride
    carries = [(x, p, r) for (x, p, _), r in zip(v.carries(), results_new[:c])]
    stacks = [(b, results_new[c + i * k : c + (i + 1) * k]) for i, (b, _) in enumerate(v.stacks())]
    return v.replace(carries=carries, seqs=v.seqs() + new_xs, stacks=stacks, invariants=v.invariants() + new_consts)


def _outer(n: Node, operands: list[Node], memo: dict) -> Node:
    key = ("inv", n.op, tuple(id(o) for o in operands), tuple(sorted(n.attrs.items())))
    if key not in memo:
        memo[key] = Node(n.op, [Use(o) for o in operands], n.attrs, n.type, None)
    return memo[key]


def _substitute(body: Region, replace: dict[int, Node]) -> list[Node]:
    new: dict[int, Node] = {id(p): p for p in body.params}
    for n in body.nodes():
        if id(n) in new:
            continue
        if id(n) in replace:
            new[id(n)] = replace[id(n)]
            continue
        new[id(n)] = rebuild(n, [new[id(u.node)] for u in n.inputs])
    return [new[id(r)] for r in body.results]
