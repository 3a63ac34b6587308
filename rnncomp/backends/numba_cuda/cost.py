"""A per-step cost estimate of a persistent kernel, from the IR of its loop body: synchronisations
(grid-wide and block-wide, each at an assumed latency of the target: targets.py), FLOPs, and bytes
moved to and from global memory and read from shared memory. It is a model for a GPU run to check,
not a measurement.

The model, per unit of the body's schedule (a phase of the persistent kernel):
- FLOPs: a matmul `a[M, K] @ b[K, N]` (or `a^T b`) counts 2*M*K*N; every elementwise op counts one
  per element of its result (a transcendental too); any other op one per element of its largest
  operand; views count nothing.
- global bytes: each distinct operand from outside the phase read once (a view reads min(its size, its base's size): a
  slice reads its part, a broadcast its source), each stored result written once per place it goes
  (a new state that is also a per-step output: twice); a weight the
  kernel holds in shared memory is read from there instead: M*K*N elements per step (each output
  reads its column). A carried state that is not updated in place is copied (read and written).
Symbolic dims (the batch B) stay symbolic until `StepCost.at(env)`; a k-unrolled body's figures
are divided by its k steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ir import Node
from ir import symexpr as sx
from passes.fuse import VIEWS, BlockPlan

MATMULS = ("matmul", "matmul_tn")


@dataclass(frozen=True)
class Term:
    """`factor` times the product of `shape`'s dims (ints or symbolic dims)."""

    factor: int
    shape: tuple

    def at(self, env: dict[str, int]) -> int:
        return self.factor * math.prod(sx.evaluate(sx.count(d), env) for d in self.shape)

    def symbols(self) -> set[str]:
        out: set[str] = set()
        for d in self.shape:
            c = sx.count(d)
            if not isinstance(c, int):
                out |= c.symbols
        return out


@dataclass(frozen=True)
class Figures:
    """The estimate for one time step at given dims."""

    grid_syncs: float
    block_syncs: float
    sync_ns: float  # the syncs' time at the target's assumed latencies
    flops: float
    global_bytes: float
    shared_bytes: float


@dataclass
class StepCost:
    """What one loop iteration of a persistent kernel does, in terms of the body's dims."""

    steps: int = 1  # time steps per iteration
    grid_syncs: int = 0  # per iteration
    block_syncs: int = 0  # per iteration (between phases of a one-block kernel)
    flops: list[Term] = field(default_factory=list)
    global_bytes: list[Term] = field(default_factory=list)
    shared_bytes: list[Term] = field(default_factory=list)

    def symbols(self) -> set[str]:
        return {s for ts in (self.flops, self.global_bytes, self.shared_bytes) for t in ts for s in t.symbols()}

    def at(self, env: dict[str, int], grid_sync_ns: float, block_sync_ns: float) -> Figures:
        """The figures of one time step with dims bound by `env` (every symbol of `symbols()`)."""
        k = self.steps
        total = lambda ts: sum(t.at(env) for t in ts) / k  # noqa: E731
        g, b = self.grid_syncs / k, self.block_syncs / k
        return Figures(
            g,
            b,
            g * grid_sync_ns + b * block_sync_ns,
            total(self.flops),
            total(self.global_bytes),
            total(self.shared_bytes),
        )


def numel_term(n: Node, factor: int = 1) -> Term:
    return Term(factor, tuple(n.type.shape))  # type: ignore[union-attr]


def _size(n: Node) -> int | None:
    """The element count of `n` when it is concrete (to compare a view with its base)."""
    shape = n.type.shape  # type: ignore[union-attr]
    return math.prod(shape) if all(isinstance(d, int) for d in shape) else None


def read_term(n: Node, itemsize: int) -> Term:
    """The bytes a phase reads of operand `n`: a view reads at most its base's elements."""
    base = n
    while base.op in VIEWS:
        base = base.inputs[0].node
    if base is n:
        return numel_term(n, itemsize)
    a, b = _size(n), _size(base)
    if a is not None and b is not None:
        return numel_term(base if b < a else n, itemsize)
    if n.op in ("broadcast_to", "expand_dims"):
        return numel_term(base, itemsize)
    return numel_term(n, itemsize)


def estimate(
    plan: BlockPlan, results: list[Node], on_chip: set[int], itemsize: int, copies: list[Node], steps: int
) -> StepCost:
    """The cost of one iteration of a body scheduled as `plan` and yielding `results` (carries, then
    per-step outputs), whose weights `on_chip` (ids of the matmuls' right operands) are held in
    shared memory; `copies`: carries copied back after the body."""
    cost = StepCost(steps)

    def writes(n: Node) -> Term:  # a value yielded twice (a state and a per-step output) is stored twice
        return numel_term(n, itemsize * max(1, sum(r is n for r in results)))

    for unit in plan.units:
        if unit.group is not None:
            members = unit.group.nodes
            inside = unit.group.members
            cost.flops += [numel_term(m) for m in members if m.op not in VIEWS]
            reads = _distinct(u.node for m in members for u in m.inputs if not _computed_in(u.node, inside))
            cost.global_bytes += [read_term(r, itemsize) for r in reads]
            cost.global_bytes += [writes(r) for r in unit.group.roots]
            continue
        n = unit.node
        assert n is not None
        ins = [u.node for u in n.inputs]
        if n.op in MATMULS:
            a, w = ins
            lead, last = tuple(a.type.shape[:-1]), a.type.shape[-1]  # type: ignore[union-attr]
            rows, inner = (lead, (last,)) if n.op == "matmul" else ((last,), lead)
            cost.flops.append(Term(2, (*rows, *inner, w.type.shape[-1])))  # type: ignore[union-attr]
            cost.global_bytes.append(read_term(a, itemsize))
            if id(w) in on_chip:
                cost.shared_bytes.append(Term(itemsize, (*rows, *w.type.shape)))  # type: ignore[union-attr]
            else:
                cost.global_bytes.append(read_term(w, itemsize))
        else:
            biggest = max(ins, key=lambda x: len(x.type.shape), default=n)  # type: ignore[union-attr]
            cost.flops.append(numel_term(biggest))
            cost.global_bytes += [read_term(x, itemsize) for x in _distinct(ins)]
        cost.global_bytes.append(writes(n))
    for c in copies:
        cost.global_bytes.append(numel_term(c, 2 * itemsize))
    return cost


def _computed_in(n: Node, members: set[int]) -> bool:
    """Whether `n` is a member of a group, or a view of one (computed inline, not read from memory)."""
    while id(n) not in members and n.op in VIEWS:
        n = n.inputs[0].node
    return id(n) in members


def _distinct(nodes) -> list[Node]:
    seen: dict[int, Node] = {}
    for n in nodes:
        seen.setdefault(id(n), n)
    return list(seen.values())


__all__ = ["Figures", "StepCost", "Term", "estimate"]
