"""The `plan` pass, and the storage decisions every backend makes the same way: when a buffer is
dead, which zeros need no array, which stacked buffers need no initialisation, and the one rule
for updating carried state in place.

- A value's buffer is free after the last unit that reads it (directly or through views), unless a
  loop or the block's results outlive the block's units (`last_use`).
- A `zeros` node read only as loops' stacked-buffer operands needs no array of its own
  (`only_loop_buffers`), and a stacked buffer that its loop writes whole needs no zero fill
  (`covers_all_slots`).
- A loop's carried state is overwritten in place by the unit computing its new value when every
  read of the old value happens in that unit's fused group at the group's own index, or in an
  earlier unit (`in_place`); otherwise the new value goes elsewhere and is copied in after the body.
"""

from __future__ import annotations

from dataclasses import replace

from ir import LoopView, Node
from ir.kernel_program import Block as KBlock
from ir.kernel_program import Buffer, KernelProgram, Place
from ir.symexpr import Sym

from .fuse import BlockPlan, identity_members, kind

GATHERS = ("stack", "concat")  # ops whose parts other units may store into


def direct(u: Node, m: Node) -> bool:
    """`u` reads `m` at its own index: the same shape, and not as select_active's step or lengths."""
    if u.op == "select_active" and any(x.node is m for x in u.inputs[:2]) or u.op == "philox_mask":
        return False  # (philox_mask reads its step and seed words, never at its own index)
    return u.type.shape == m.type.shape  # type: ignore[union-attr]


def in_place(v: LoopView, plan: BlockPlan, i: int) -> bool:
    """Whether carry i's new value may be written straight over its old value (`plan`: the body's).

    The new value must be the value of no other carry, the old value no result of the body, and the
    new value computed in the body: by a fused group (as a root) whose every read of the old value is
    at the group's own index (see fuse.identity_members) and whose other readers of it all run
    earlier; or by a kernel that does not read the old value, after every unit that does (not a
    stack or concatenation: other units store its parts, at their own times)."""
    p, r = v.carry_params[i], v.carry_out[i]
    if sum(x is r for x in v.carry_out) != 1 or any(x is p for x in v.body.results):
        return False
    if id(r) not in plan.order or r.op in GATHERS:
        return False
    g = plan.group_of.get(id(r))
    if g is None and kind(r) != "kernel":
        return False
    if g is not None and r not in g.roots:
        return False
    ident = identity_members(g, plan, direct) if g is not None else set()
    at = plan.order[id(r)]
    for u in plan.users.get(id(p), []):
        if g is not None and id(u) in g.members:
            if id(u) not in ident or not direct(u, p):
                return False
        elif kind(u) == "view" or plan.order.get(id(u), at) >= at:
            return False
    return True


def last_use(nid: int, plan: BlockPlan, keep: set[int]) -> int | None:
    """The last unit that reads node `nid` directly or through views; None if something that
    outlives the block's units reads it: a loop (which may keep the buffer as its own), or the
    block's results (`keep`), through a view too."""
    end, todo, seen = plan.order.get(nid, -1), [nid], {nid}
    while todo:
        for u in plan.users.get(todo.pop(), []):
            k = kind(u)
            if k in ("loop", "item", "bound") or id(u) in keep:
                return None
            if k == "view":
                if id(u) not in seen:
                    seen.add(id(u))
                    todo.append(id(u))
                continue
            if id(u) not in plan.order:
                return None
            end = max(end, plan.order[id(u)])
    return end


def covers_all_slots(v: LoopView, buf: Node) -> bool:
    """Whether the loop writes every slot of stacked buffer `buf` (each iteration writes its
    steps' slots whole): one step per iteration from step 0, as many iterations as slots."""
    n = v.length.text if isinstance(v.length, Sym) else v.length
    return int(v.stride) == 1 and v.start == 0 and n == buf.type.shape[0]  # type: ignore[union-attr]


def only_loop_buffers(node: Node, users: list[Node]) -> bool:
    """Whether every use of `node` is as a loop's stacked-buffer operand (a zeros node used so
    needs no array of its own: each loop fills, or fully overwrites, its own buffer)."""
    if not users:
        return False
    for u in users:
        if u.op != "loop":
            return False
        v = LoopView(u)
        first = v.n_carry + v.n_xs
        if any(x.node is node and not first <= i < first + v.n_buf for i, x in enumerate(u.inputs)):
            return False
    return True


# ---------------------------------------------------------------- the plan pass: where every value lives


def plan(kp: KernelProgram) -> KernelProgram:
    """The `plan` pass: a place for every value of every block of a fused kernel program (see the
    module and ir/kernel_program.py); buffers are handed back after their values' last readers and
    taken again by later values of the same type."""
    return KernelProgram(kp.program, _plan_block(kp.main, None), planned=True)


def _plan_block(b: KBlock, loop: Node | None) -> KBlock:
    bp: BlockPlan = b.schedule  # type: ignore[assignment]
    places: dict[int, Place] = {id(n): Place("given") for n in b.given}
    keep = {id(r) for r in b.results}
    kp_index = {id(u.nodes[0]): k for k, u in enumerate(b.units) if u.kind != "view"}
    sched_to_kp = [kp_index[id((u.group.nodes if u.group else [u.node])[0])] for u in bp.units]  # type: ignore[list-item]
    inplace: set[int] = set()
    if loop is not None:  # a body: carried states updated in place, per-step results into their slots
        v = LoopView(loop)
        inplace = {i for i in range(len(v.carry_out)) if in_place(v, bp, i)}
        for j, rs in enumerate(v.y_results):
            for r in rs:
                places.setdefault(id(r), Place("slot", index=j))
        for i in sorted(inplace):
            places[id(v.carry_out[i])] = Place("state", index=i)
    units = []
    free: dict[tuple, list[Buffer]] = {}
    buffers: list[Buffer] = []
    alive: list[tuple[int, Buffer]] = []  # (last unit, buffer) of values that die in this block
    for k, u in enumerate(b.units):
        body = _plan_block(u.body, u.nodes[0]) if u.body is not None else None
        units.append(replace(u, body=body))
        for n in u.nodes:
            if id(n) in places:
                continue
            if u.kind == "view":
                places[id(n)] = Place("view")
            elif u.kind == "fused" and n not in u.results:
                places[id(n)] = Place("inline")
            elif u.kind in ("loop", "item"):
                places[id(n)] = Place("loop", index=n.attrs.get("index", 0) if u.kind == "item" else 0)
            elif n.op == "zeros" and id(n) not in keep and only_loop_buffers(n, bp.users.get(id(n), [])):
                places[id(n)] = Place("constant")
            else:
                end = last_use(id(n), bp, keep)
                last = None if end is None else sched_to_kp[end] if end >= 0 else k
                key = (n.type.dtype, n.type.shape)  # type: ignore[union-attr]
                buf = free.get(key, []).pop() if free.get(key) else None
                if buf is None:
                    buf = Buffer(n.type)
                    buffers.append(buf)
                buf.values.append((n, k, last))
                places[id(n)] = Place("buffer", buf)
                if last is not None:
                    alive.append((last, buf))
        for last, buf in [a for a in alive if a[0] <= k]:
            alive.remove((last, buf))
            free.setdefault((buf.type.dtype, buf.type.shape), []).append(buf)  # type: ignore[attr-defined]
    return KBlock(b.given, units, b.results, b.nodes, places, buffers, inplace, schedule=bp)


__all__ = ["GATHERS", "covers_all_slots", "direct", "in_place", "last_use", "only_loop_buffers", "plan"]
