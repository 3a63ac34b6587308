"""Loops: a loop node becomes a `for` over iterations in `program`, its body's units called inside
(or, when its batch rows are independent, a parallel kernel over blocks of rows: rowloops.py).

Carried values live in state buffers. A fused group may write a state's new value in place when
every read of the old value happens in that group at the same index, or in an earlier unit;
otherwise the new values are copied in at the end of the iteration, ordered so that no copy
overwrites a state another copy still reads (a cycle goes through a scratch buffer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ir import LoopView, Node, TensorType
from passes.fuse import VIEWS, BlockPlan, kind
from passes.plan import covers_all_slots
from passes.plan import in_place as may_update_in_place
from passes.rows import ROWS, rows_plan

from ..common.values import Index, Ref, Scope
from ..common.writer import describe, safe_name
from .rowloops import open_part, recurrent_sizes, row_step_work, small_weight, transposed

if TYPE_CHECKING:
    from .codegen import Generator


def emit_loop(gen: Generator, node: Node) -> None:
    blk = gen.blk
    assert blk is not None
    plan, why = rows_plan(node) if gen.loop_depth == 0 else (None, "a loop inside a loop")
    v = LoopView(plan.loop if plan is not None else node)
    label = describe(node, blk.names)
    with gen.w.owned_by(label):
        way = "reverse" if v.reverse else "forward"
        gen.w.comment(f"{label} [{way}: {v.length} iterations of {v.stride} step(s) from step {v.start}]")
        n_iter, start = gen.count(v.length, "n"), gen.count(v.start, "start")
        cs = [_take(gen, u.node) for u in v.carry_in]
        bufs = [_take(gen, u.node, covers_all_slots(v, u.node)) for u in v.bufs]
        xs = [blk.scope.get(u.node) or gen.array(u.node) for u in v.xs]
        if plan is not None:  # a row block is passed arrays of program's by name (launch.py)
            xs = [x if _named(gen, x) else _copy_of(gen, u.node) for x, u in zip(xs, v.xs)]
        if plan is None:
            gen.steps_in_program |= gen.part is None
            gen.w.comment(f"rows in sequence: {why}")
            consts = _consts(gen, v, {}, named=False)
        else:
            parts, width = gen.int_name("np"), gen.int_name("w")
            D, threads = gen.dim(plan.dim), gen.threads()
            gen.w.comment(f"batch rows independent: {parts} blocks of {width} rows, one per thread, as the work allows")
            work = f"{gen.value(n_iter)} * {D} * {row_step_work(gen, v.body.nodes())}"
            sizes = recurrent_sizes(gen, v)
            if sizes is not None:
                step = gen.int_name("st")
                gen.w.comment(f"or one block whose step GEMMs are split into {step} column slices, one per thread")
                gen.w.line(f"{step} = step_parts({threads}, {D}, {D} * {sizes[0]}, {sizes[1]}, STEP_WORK)")
                threads = f"1 if {step} > 1 else {threads}"
            gen.w.line(f"{parts} = blocks_for({threads}, {D}, {work}, ROW_WORK)")
            gen.w.line(f"{width} = ({D} + {parts} - 1) // {parts}")
            consts = _consts(gen, v, {ROWS: width}, named=True)
    if plan is None:
        _steps(gen, v, label, n_iter, start, cs, bufs, xs, consts)
    else:

        def rows() -> None:
            part = open_part(gen, plan.dim, parts, width, step if sizes is not None else None)
            gen.part = part
            try:
                cs_p = [part.rows_of(gen, c, p) for c, p in zip(cs, v.carry_params)]
                consts_p = [part.rows_of(gen, c) if cut else c for c, cut in zip(consts, plan.sliced_consts)]
                take = lambda ref, step: part.step_rows(gen, ref, step)  # noqa: E731
                _steps(gen, v, label, n_iter, start, cs_p, bufs, xs, consts_p, take)
            finally:
                gen.part = None

        with gen.w.owned_by(label):
            gen.unit("rows", f"{label}: blocks of rows in parallel", rows)
    gen.loop_results[id(node)] = cs + bufs


def _steps(gen, v, label, n_iter, start, cs, bufs, xs, consts, take=None) -> None:
    """The `for` over iterations, the body's units inside it and the carried values' updates.
    `take(ref, step)`: a stacked array's slot for one step (default: `ref[step]`)."""
    k = int(v.stride)
    take = take or (lambda ref, step: ref.slot(step))
    it, base = gen.main_name("it"), gen.main_name("b")
    gen.w.line(f"for {it} in range({gen.value(n_iter)}):")
    gen.loop_depth += 1
    with gen.w.indent():
        order = f"({gen.value(n_iter)} - 1 - {it})" if v.reverse else it
        first = gen.value(start)
        gen.w.line(f"{base} = {first} + {order} * {k}" if k > 1 else f"{base} = {first} + {order}")
        step = [base if j == 0 else f"{base} + {j}" for j in range(k)]
        scope = Scope()
        for j, p in enumerate(v.t_params):
            scope.set(p, Ref(step[j], scalar=True, home=gen.home()))
        for p, ref in zip(v.carry_params, cs):
            scope.set(p, ref)
        for ps, ref in zip(v.x_params, xs):
            for j, p in enumerate(ps):
                scope.set(p, take(ref, step[j]))
        for p, ref in zip(v.const_params, consts):
            scope.set(p, ref)
        slots = [(r, take(buf, step[j])) for rs, buf in zip(v.y_results, bufs) for j, r in enumerate(rs)]
        targets: dict[int, list[Ref]] = {}
        for r, slot in slots:
            if kind(r) in ("scalar", "kernel"):
                targets.setdefault(id(r), []).append(slot)
        results = list(v.body.results)
        blk = gen.blk
        written, inplace = gen.block(v.body.nodes(), scope, results, targets, (v, cs))
        gen.blk = type(blk)(scope, BlockPlan([], {}, {}, {}), blk.names, {})
        try:
            for r, slot in slots:
                if id(r) not in written:
                    gen.copy(slot, r.type.shape, lambda idx, r=r: gen.read(r, idx), f"{label}: a per-step result")  # type: ignore[union-attr]
            moves = [(i, cs[i], r) for i, r in enumerate(v.carry_out) if i not in inplace]
            _parallel_move(gen, moves, {id(p): i for i, p in enumerate(v.carry_params)}, label)
        finally:
            gen.blk = blk
            gen.loop_depth -= 1


def _named(gen: Generator, ref: Ref) -> bool:
    """Whether `ref` is a whole array of `program`'s with a known type (what a row block is passed)."""
    return ref.var in gen.abi and not ref.prefix


def _consts(gen: Generator, v: LoopView, dims: dict[str, str], named: bool) -> list[Ref]:
    """The loop invariants' refs. A matrix only multiplied from the right (a recurrent weight) is
    prepared once by `pack_b` and never copied; others are made contiguous (and, if `named`, whole
    arrays of program's) if they are not. `dims`: names for the body's extents that are not
    `program`'s own (a row block's)."""
    blk = gen.blk
    assert blk is not None
    users: dict[int, list[Node]] = {id(p): [] for p in v.const_params}
    for n in v.body.nodes():
        for u in n.inputs:
            if id(u.node) in users:
                users[id(u.node)].append(n)
    out = []
    for u, p in zip(v.consts, v.const_params):
        ref = blk.scope.get(u.node) or gen.array(u.node)
        uses = users[id(p)]
        weights = [n for n in uses if n.op == "matmul" and n.inputs[1].node is p and n.inputs[0].node is not p]
        if weights and p.type.rank == 2 and not ref.scalar:  # type: ignore[union-attr]
            base = transposed(gen, u.node)
            # a small weight that a loop nest may stream (codegen.matmul) is copied into a buffer of
            # the pool, which starts on a cache line: the caller's array may not (pool.py)
            copy = not ref.contiguous or (base is None and small_weight(p.type))  # type: ignore[arg-type]
            operand = base or (_copy_of(gen, u.node) if copy else ref)
            lhs: TensorType = weights[0].inputs[0].node.type  # type: ignore[assignment]
            rows = gen.product([dims.get(d) or gen.dim(d) for d in lhs.shape[:-1]])  # type: ignore[arg-type]
            pk = gen.main_name("pk")
            gen.abi[pk] = ("pack", p.type.dtype.value)  # type: ignore[union-attr]
            gen.helpers.add("pack_b")
            what = safe_name(p.name or "%?")
            gen.w.line(f"{pk} = pack_b({gen.arr(operand)}, {base is not None}, {rows}, BLAS)  # {what}, once per call")
            gen.packs[id(p)] = (pk, operand, base is not None)
            if len(weights) == len(uses):
                out.append(ref)  # read through the pack only
                continue
        usable = ref.scalar or (ref.contiguous and (_named(gen, ref) or not named))
        out.append(ref if usable else _copy_of(gen, u.node))
    return out


def _take(gen: Generator, node: Node, overwritten: bool = False) -> Ref:
    """A state or stacked buffer the loop may overwrite: the operand's own buffer if nothing else
    reads it, else a copy; a buffer the loop `overwritten` whole and that starts as zeros is not
    initialised at all."""
    blk = gen.blk
    assert blk is not None
    ref = blk.scope.get(node)
    if ref is not None and ref.owned and blk.uses.get(id(node), 0) == 1:
        return ref
    if overwritten and node.op == "zeros":
        return gen.buffer(node.type)  # type: ignore[arg-type]
    return _copy_of(gen, node)


def _copy_of(gen: Generator, node: Node) -> Ref:
    buf = gen.buffer(node.type)  # type: ignore[arg-type]
    gen.copy(buf, node.type.shape, lambda idx: gen.read(node, idx), f"a copy of {describe(node, gen.blk.names)}")  # type: ignore[union-attr]
    return buf


def _parallel_move(gen: Generator, moves: list[tuple[int, Ref, Node]], carry_index: dict[int, int], label: str) -> None:
    """state_i = result_i for all i at once."""

    def reads_state(n: Node) -> int | None:
        while id(n) not in carry_index and n.op in VIEWS:
            n = n.inputs[0].node
        return carry_index.get(id(n))

    pending: list[tuple[int, Ref, Callable[[Index], str], TensorType, int | None]] = []
    for i, dst, n in moves:
        if carry_index.get(id(n)) == i:
            continue  # the state keeps its value
        pending.append((i, dst, lambda idx, n=n: gen.read(n, idx), n.type, reads_state(n)))  # type: ignore[misc,arg-type]
    while pending:
        for pos, (i, dst, src, t, _) in enumerate(pending):
            if all(other[4] != i for other in pending):
                gen.copy(dst, t.shape, src, f"{label}: carried value {i}")
                pending.pop(pos)
                break
        else:  # every pending copy overwrites a state another still reads: save one source first
            i, dst, src, t, _ = pending[0]
            tmp = gen.buffer(t)
            gen.copy(tmp, t.shape, src, f"{label}: carried value {i}, saved")
            pending[0] = (i, dst, lambda idx, tmp=tmp: gen.at(tmp, idx), t, None)


def in_place(plan: BlockPlan, v: LoopView, cs: list[Ref], targets: dict[int, list[Ref]]) -> set[int]:
    """The carries whose new value is written straight into the state buffer (passes/plan.py's
    rule): the state becomes a target of the unit computing it. Their indices."""
    done = set()
    for i, r in enumerate(v.carry_out):
        if may_update_in_place(v, plan, i):
            if plan.group_of.get(id(r)) is None:
                targets.setdefault(id(r), []).insert(0, cs[i])  # a kernel's first target is its output
            else:
                targets.setdefault(id(r), []).append(cs[i])
            done.add(i)
    return done
