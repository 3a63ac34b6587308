"""Where a block's values are stored: joined into the array of the concat or stack that gathers
them, and in buffers reused once their values are dead (a mixin of the generator, for blocks.py).

- A concat whose operands are fused loops' results read by nothing else (or only inside their own
  loop, as a local: a bias's row sum): those loops store straight into the concat's array (a window
  of it each). A stack: each operand (a fused loop's
  result or a kernel's) lives in its slot of the stack's array from the start, so a fully unrolled
  program's per-step outputs need neither buffers of their own nor a copy.
- A buffer made for a value is handed back after the last unit that reads it (directly or through
  views) and taken again by a later value of the same type and shape: a full unroll of T steps
  then needs a step's worth of temporaries, not T (and far fewer arguments for Numba to compile).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ir import Node, TensorType
from ir.ops import axes_of
from passes.fuse import BlockPlan, kind

from ..common.values import Ref

if TYPE_CHECKING:
    from .blocks import Block


class Storage:
    """Joins and buffer reuse (mixed into codegen.Generator)."""

    blk: Block | None
    part: object | None
    free: dict[tuple, list[str]]  # (dtype, shape) -> names of dead buffers

    def buffer(self, t: TensorType) -> Ref:
        raise NotImplementedError

    def reused(self, t: TensorType) -> Ref | None:
        """A dead buffer of this type and shape, if there is one (never inside a row block)."""
        names = self.free.get((t.dtype, t.shape)) if self.part is None else None
        return Ref(names.pop(), owned=True) if names else None

    def joined(self, plan: BlockPlan, results: list[Node], targets: dict[int, list[Ref]]) -> set[int]:
        """Concats and stacks whose operands store into them (see the module); their ids."""
        blk = self.blk
        assert blk is not None
        done: set[int] = set()
        for unit in reversed(plan.units):  # consumers first: a concat stacked stores into its slot
            n = unit.node
            if n is None or n.op not in ("concat", "stack") or len(targets.get(id(n), [])) > 1:
                continue
            ops = [u.node for u in n.inputs]
            if len({id(o) for o in ops}) < len(ops) or not all(_joinable(o, n, plan, results, targets) for o in ops):
                continue
            axis = axes_of(n)[0] if n.op == "concat" else 0
            if n.op == "concat" and not all(isinstance(o.type.shape[axis], int) for o in ops):  # type: ignore[union-attr]
                continue
            out = targets[id(n)][0] if targets.get(id(n)) else self.buffer(n.type)  # type: ignore[arg-type]
            at = 0
            for k, o in enumerate(ops):
                if n.op == "stack":  # a result keeps an array of its own (outputs never alias)
                    mine = targets.get(id(o)) or ([self.buffer(o.type)] if any(r is o for r in results) else [])  # type: ignore[arg-type]
                    targets[id(o)] = mine + [out.slot(str(k))]
                    continue
                width = o.type.shape[axis]  # type: ignore[union-attr]
                targets[id(o)] = [replace(out, window=(axis, at, at + width), owned=False, contiguous=axis == 0)]
                at += width
            blk.scope.set(n, out)
            done.add(id(n))
        return done

    def release(self, dead: list) -> None:
        for ref, t in dead:
            self.free.setdefault((t.dtype, t.shape), []).append(ref.var)


def _joinable(o: Node, gather: Node, plan: BlockPlan, results: list[Node], targets: dict) -> bool:
    """An operand that can be stored straight into the concat (a fused loop's result read by
    nothing else outside its loop) or stack (any fused loop's or kernel's result)."""
    g = plan.group_of.get(id(o))
    root = g is not None and any(r is o for r in g.roots)
    if gather.op == "stack":
        return root or (g is None and kind(o) == "kernel" and id(o) in plan.order)
    if not root:
        return False
    users = plan.users.get(id(o), [])
    alone = sum(u is gather for u in users) == 1 and all(u is gather or id(u) in g.members for u in users)  # type: ignore[union-attr]
    return alone and not any(r is o for r in results) and not targets.get(id(o))
