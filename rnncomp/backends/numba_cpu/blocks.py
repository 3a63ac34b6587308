"""Blocks: a block's nodes, planned into units, emitted in schedule order (a mixin of the generator)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from ir import LoopView, Node
from ir.dtypes import DType
from ir.names import name_nodes
from passes.fuse import BOUND, BlockPlan, Group, count_uses, plan_block
from passes.plan import last_use, only_loop_buffers

from ..common.values import Arg, Index, Ref, Scope
from ..common.writer import describe, safe_name
from . import loops
from .emit import EMIT, Kernel, lowering
from .storage import Storage

if TYPE_CHECKING:
    from .codegen import Generator


@dataclass
class Block:
    """A block being emitted: its refs, plan, display names and use counts."""

    scope: Scope
    plan: BlockPlan
    names: dict[int, str]
    uses: dict[int, int]  # id(node) -> how many operand slots and results read it
    group: Group | None = None  # the group being emitted
    memo: dict = field(default_factory=dict)  # (id(node), index) -> temp name, inside a group
    fresh: dict = field(default_factory=dict)  # id(node) -> (its own buffer, type), until handed back
    ends: dict = field(default_factory=dict)  # id(node) -> the last unit reading it (None: never free it)


class Operand:
    """An operand as emit.py's kernels see it: `.at(idx)` and `.array()`."""

    def __init__(self, gen: Generator, node: Node):
        self.gen, self.node = gen, node

    def at(self, idx: Index) -> str:
        return self.gen.read(self.node, tuple(idx))

    def array(self) -> str:
        return self.gen.arr(self.gen.array(self.node))


class Place:
    """A buffer as emit.py's kernels see it (an output or a scratch buffer)."""

    def __init__(self, gen: Generator, ref: Ref):
        self.gen, self.ref = gen, ref

    def at(self, idx: Index) -> str:
        return self.gen.at(self.ref, tuple(idx))

    def array(self) -> str:
        return self.gen.arr(self.ref)


class Blocks(Storage):
    """Constants, blocks, fused groups and kernel nodes."""

    def constant(self, node: Node) -> Ref:
        value = np.asarray(node.attrs["value"], dtype=np.float64)
        dt: DType = node.attrs["dtype"]
        if value.ndim == 0:
            return Ref(self.lit(float(value), dt), scalar=True, const=True)
        name = self.main_name("k")
        self.args.append(Arg(name, "const", value.astype(dt.numpy)))
        self.abi[name] = ("array", dt.value, value.ndim)
        return Ref(name)

    def block(
        self,
        nodes: list[Node],
        scope: Scope,
        results: list[Node],
        targets: dict[int, list[Ref]],
        loop: tuple[LoopView, list[Ref]] | None = None,
    ) -> tuple[set[int], set[int]]:
        """Emit a block's units. `targets`: places a value must also be stored (slots of stacked
        buffers); `loop`: the loop whose body this is and its state buffers (carries updated in place
        where passes/plan.py allows). Returns the ids of nodes whose targets were written, and the
        carries done in place."""
        for n in nodes:
            if n.op == "constant" and scope.get(n) is None:
                scope.set(n, self.constant(n))
            elif n.op not in BOUND and n.op not in ("loop", "item"):
                lowering(n)  # a clear error naming op and backend if the table has no entry
        bound = {id(n) for n in nodes if scope.get(n) is not None}
        plan = plan_block(nodes, bound, results)
        outer, self.blk = self.blk, Block(scope, plan, name_nodes(nodes), count_uses(nodes, results))
        try:
            inplace = loops.in_place(plan, loop[0], loop[1], targets) if loop is not None else set()
            joined = self.joined(plan, results, targets)
            written: set[int] = {n for n in joined if targets.get(n)}
            given: dict[str, Node] = {}  # loop result buffer -> the item node that names it
            for at, unit in enumerate(plan.units):
                self._unit(unit, plan, results, targets, joined, written, given)
                self._release(at, plan, results)
            return written, inplace
        finally:
            self.blk = outer

    def _release(self, at: int, plan: BlockPlan, results: list[Node]) -> None:
        """Hand back the buffers of values that no unit after `at` reads (storage.py)."""
        blk = self.blk
        assert blk is not None
        keep = {id(r) for r in results}
        for nid in [n for n in blk.fresh if n not in keep]:
            if nid not in blk.ends:
                blk.ends[nid] = last_use(nid, plan, keep)
            if blk.ends[nid] is not None and blk.ends[nid] <= at:
                self.release([blk.fresh.pop(nid)])

    def _unit(self, unit, plan: BlockPlan, results, targets, joined, written, given) -> None:
        """Emit one unit of the block's schedule."""
        blk = self.blk
        assert blk is not None
        scope = blk.scope
        if unit.group is not None:
            self.group(unit.group, targets)
            written |= {id(r) for r in unit.group.roots if targets.get(id(r))}
            return
        n = unit.node
        assert n is not None
        if id(n) in joined:
            return  # its operands stored it
        if n.op == "zeros" and n not in results and only_loop_buffers(n, plan.users[id(n)]):
            scope.set(n, Ref(self.lit(0.0, n.type.dtype), scalar=True, const=True))  # read as 0
        elif n.op == "loop":
            loops.emit_loop(self, n)
        elif n.op == "item":
            ref = self.loop_results[id(n.inputs[0].node)][n.attrs["index"]]
            if ref.var in given:  # two nodes name one buffer: neither may be overwritten in place
                ref = replace(ref, owned=False)
                scope.set(given[ref.var], replace(scope.get(given[ref.var]), owned=False))  # type: ignore[arg-type]
            given[ref.var] = n
            scope.set(n, ref)
        else:
            self.kernel_node(n, targets.get(id(n), []))
            written.add(id(n))

    def _own(self, n: Node) -> Ref:
        """A buffer for `n`'s value, handed back once nothing reads it (storage.py)."""
        blk = self.blk
        assert blk is not None
        ref = self.buffer(n.type)  # type: ignore[arg-type]
        blk.fresh[id(n)] = (ref, n.type)
        return ref

    def group(self, g: Group, targets: dict[int, list[Ref]]) -> None:
        blk = self.blk
        assert blk is not None
        stores: list[tuple[Node, list[Ref]]] = []
        for r in g.roots:
            refs = list(targets.get(id(r), [])) or [self._own(r)]
            blk.scope.set(r, refs[0])
            stores.append((r, refs))
        names = ", ".join(safe_name(blk.names.get(id(r), "%?")) for r in g.roots)
        shape = ", ".join(map(str, g.shape))

        def body() -> None:
            self.w.comment(f"{len(g.members)} elementwise node(s) in one loop, storing {names} : [{shape}]")
            blk.group, blk.memo = g, {}
            try:
                with self.loops([self.dim(d) for d in g.shape]) as idx:
                    vals = [self.member(r, idx) for r in g.roots]
                    for (r, refs), v in zip(stores, vals):
                        with self.w.owned_by(describe(r, blk.names)):
                            for ref in refs:
                                self.w.line(f"{self.at(ref, idx)} = {v}")
            finally:
                blk.group, blk.memo = None, {}

        self.unit("fused", f"fused: {names}", body)

    def kernel_node(self, n: Node, targets: list[Ref]) -> None:
        blk = self.blk
        assert blk is not None
        label = describe(n, blk.names)
        rule = EMIT[n.op]
        assert isinstance(rule, Kernel)
        out = targets[0] if targets else self._own(n)

        def body() -> None:
            self.w.comment(label)
            rule.fn(self, n, Place(self, out), [Operand(self, u.node) for u in n.inputs])

        self.unit(n.op, label, body)
        blk.scope.set(n, out)
        for extra in targets[1:]:
            self.copy(extra, n.type.shape, lambda idx: self.at(out, idx), label)  # type: ignore[union-attr]
