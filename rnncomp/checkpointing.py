"""What a training call keeps for its backward: the checkpoint schedule of one call's T and batch.

`checkpoint` is None (plain BPTT: one leaf over every step), an int k or "sqrt" (equal segments of
k or about sqrt(T) steps), or a byte budget such as "64MiB" (passes.schedule.optimal, planned for
the call's T and batch, cached per T). The schedule's unit is one iteration of the program's loop:
k steps for `unroll=k`, one step otherwise, so that every replayed piece runs whole iterations.
Positions are in processing order; `steps` maps them to [start, stop) of the sequence (reversed
for `reverse=True`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ir import ArgumentError
from passes.schedule import ADVANCE, KEEP, LEAF, Costs, Schedule, optimal, segments
from passes.sizes import FORMS, format_size, parse_size

PLAIN = None


def parse_checkpoint(value, what: str = "argument 'checkpoint'") -> int | str | None:
    """Validate `checkpoint=`: None, an int k >= 1, "sqrt", or a size with a unit (returned as bytes text).
    `what` names the value in errors (the CLI's `--checkpoint`)."""
    if value is None or value == "sqrt":
        return value
    if isinstance(value, (tuple, list)):
        ks = [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
        sizes = [v for v in value if isinstance(v, str)]
        if ks and sizes:
            raise ArgumentError(
                f"{what}: {value!r} gives both a budget ({sizes[0]!r}) and k={ks[0]} steps per segment; "
                f"keep one: checkpoint={sizes[0]!r} plans the schedule for the budget, checkpoint={ks[0]} stores "
                f"the state every {ks[0]} steps"
            )
    if isinstance(value, str):
        if value.strip().isdigit():
            raise ArgumentError(
                f"{what}: {value!r} has no unit; pass the int {int(value)} for {value.strip()} steps "
                f"per segment, or a size with a unit ({FORMS}, e.g. '64MiB') for a memory budget"
            )
        if not any(c.isdigit() for c in value) or not any(c.isalpha() for c in value):
            raise ArgumentError(
                f"{what}: expected an int >= 1, 'sqrt' or a size with a unit (one of {FORMS}; "
                f"e.g. '64MiB'), got {value!r}"
            )
        parse_size(value, what)
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(
            f"{what}: expected an int >= 1, 'sqrt' or a size with a unit (one of {FORMS}; e.g. '64MiB'), got {value!r}"
        )
    return value


def is_budget(checkpoint) -> bool:
    return isinstance(checkpoint, str) and checkpoint != "sqrt"


def segment_steps(checkpoint, T: int) -> int:
    """Steps per segment for an int k or "sqrt"."""
    if checkpoint == "sqrt":
        return max(1, math.isqrt(T - 1) + 1 if T > 1 else 1)
    return int(checkpoint)


@dataclass(frozen=True)
class StepPlan:
    """One call's schedule: units of `unit` steps over `T` steps, and the bytes it was planned with."""

    schedule: Schedule
    T: int
    unit: int
    reverse: bool
    per_step: int  # residual bytes of one step
    state: int  # bytes of one checkpoint (every carried state)
    budget: int | None

    def span(self, a: int, b: int) -> tuple[int, int]:
        """Units [a, b) in processing order as steps [start, stop) of the sequence."""
        p0, p1 = min(a * self.unit, self.T), min(b * self.unit, self.T)
        return (self.T - p1, self.T - p0) if self.reverse else (p0, p1)

    def leaf_bytes(self, a: int, b: int) -> int:
        """A live leaf's bytes: its residuals, and the state it starts from unless that is the init."""
        s0, s1 = self.span(a, b)
        return (s1 - s0) * self.per_step + (self.state if a > 0 else 0)

    def held(self) -> tuple[int, int]:
        """(bytes kept when the forward ends, the most held at any time)."""
        return self.schedule.held(self.leaf_bytes, self.state)

    def step_runs(self) -> np.ndarray:
        """How many times each step's forward runs, indexed by step of the sequence."""
        per_unit = self.schedule.executions()
        runs = np.repeat(per_unit, self.unit)[: self.T] if self.T else np.zeros(0, np.int64)
        return runs[::-1] if self.reverse else runs

    def stored(self) -> list[int]:
        """Steps whose state is kept as a checkpoint (the state before that step, in processing order)."""
        return sorted(self.span(a, a)[0] for a in self.schedule.kept())


def nbytes(types, dims: dict, itemsize: int) -> int:
    """Bytes of arrays of these types with their symbolic dims bound by `dims`."""
    total = 0
    for t in types:
        n = itemsize
        for d in t.shape:
            n *= int(dims[d]) if isinstance(d, str) else d
        total += n
    return total


class Planner:
    """Plans (and caches per T and dims) the schedule of a compiled program's training calls."""

    def __init__(self, prog):
        self.p = prog
        self._cache: dict[tuple, StepPlan] = {}

    def unit(self) -> int:
        u = self.p.unroll
        return u if isinstance(u, int) and u > 1 else 1

    def plan(self, T: int, dims: dict) -> StepPlan:
        key = (T, tuple(sorted((k, int(v)) for k, v in dims.items())))
        got = self._cache.get(key)
        if got is None:
            got = self._cache[key] = self._make(T, dims)
        return got

    def _make(self, T: int, dims: dict) -> StepPlan:
        p, plan = self.p, self.p.plan
        item = p.dtype.numpy.itemsize
        per_step = nbytes(plan.saved().values(), dims, item)
        state = nbytes(plan.cell.state_types.values(), dims, item)
        ck, budget = p.checkpoint, None
        if ck is PLAIN:
            unit, sch = max(T, 1), Schedule(1 if T else 0, ((LEAF, 0, 1 if T else 0),))
        elif is_budget(ck):
            budget = parse_size(ck, "argument 'checkpoint'")
            unit, sch = self._budgeted(T, dims, ck, budget, per_step, state)
        else:
            unit = segment_steps(ck, T)
            sch = segments(-(-T // unit))
        return StepPlan(sch, T, unit, p.reverse, per_step, state, budget)

    def _budgeted(self, T: int, dims: dict, ck: str, budget: int, per_step: int, state: int):
        """(unit, schedule) for a byte budget. A leaf's backward also reads the state it starts from, held
        with its residuals unless it is the init; the schedule is planned with one state set aside for it."""
        unit = self.unit()
        n = -(-T // unit)
        U = per_step * min(unit, T)
        if budget >= per_step * T:  # every step's residuals fit: plain BPTT
            return max(T, 1), Schedule(1 if T else 0, ((LEAF, 0, 1 if T else 0),))
        least = per_step * T if n <= 1 else min(U + state, per_step * T)
        if budget < least:
            what = f"one iteration's ({unit} steps)" if unit > 1 else "one step's"
            what += " residuals" if n <= 1 else " residuals and the state it starts from"
            if n > 1 and least == per_step * T:
                what = "every step's residuals (plain BPTT; a checkpointed schedule needs more)"
            raise ArgumentError(
                f"checkpoint={ck!r}: a budget of {format_size(budget)} is below the least any schedule of T={T} "
                f"steps needs at {_dims_text(dims)}: {format_size(least)} ({least} bytes: {what}); "
                f"raise it to at least {least} bytes"
            )
        return unit, optimal(n, Costs(U, state, budget - state))


def _dims_text(dims: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(dims.items())) or "these sizes"


def memory_report(sp: StepPlan) -> dict[str, float]:
    """`prog.memory(...)`'s numbers for one plan."""
    kept, peak = sp.held()
    runs = sp.step_runs()
    out: dict[str, float] = {"per_step": sp.per_step, "kept": kept, "peak": peak}
    out["recompute"] = float(runs.sum() / sp.T) if sp.T else 1.0
    if sp.budget is not None:
        out["budget"] = sp.budget
    return out


class ScheduleView:
    """`prog.schedule(T=..., B=...)`: which steps are stored, which recomputed and how many times."""

    def __init__(self, sp: StepPlan, what: str):
        self.plan, self.what = sp, what
        self.runs = sp.step_runs()
        self.stored = sp.stored()
        m = memory_report(sp)
        self.kept, self.peak, self.recompute = int(m["kept"]), int(m["peak"]), m["recompute"]
        self.actions = [(k, *sp.span(a, b)) for k, a, b in sp.schedule.actions]
        self.exact = sp.schedule.exact

    def __str__(self) -> str:
        sp, runs = self.plan, self.runs
        lines = [
            f"schedule {self.what}: T={sp.T} steps, units of {sp.unit} step{'s' if sp.unit > 1 else ''}"
            + (f", budget {format_size(sp.budget)}" if sp.budget is not None else ""),
            f"  bytes: {format_size(sp.per_step)} of residuals a step, {format_size(sp.state)} a checkpoint",
            f"  kept after the forward {format_size(self.kept)}, peak {format_size(self.peak)}, "
            f"recompute factor {self.recompute:.3f} ({int(runs.sum())} step runs for {sp.T} steps)"
            + ("" if self.exact else " (capacity rule: near-optimal)"),
        ]
        st = self.stored
        shown = ", ".join(map(str, st[:12])) + (", ..." if len(st) > 12 else "")
        at = f" at steps {shown}" if st else ""
        lines.append(f"  stored: {len(st)} checkpoint{'s' if len(st) != 1 else ''}{at}")
        if sp.T:
            counts = np.bincount(runs)
            per = [f"{c} step{'s' if c != 1 else ''} {r}x" for r, c in enumerate(counts) if c]
            lines.append("  runs per step: " + ", ".join(per))
            edges = np.flatnonzero(np.diff(runs)) + 1
            starts = [0, *edges.tolist()]
            stops = [*edges.tolist(), sp.T]
            ranges = [f"{a}-{b - 1}: {runs[a]}x" for a, b in zip(starts, stops)]
            lines.append("  by step: " + ", ".join(ranges[:16]) + (", ..." if len(ranges) > 16 else ""))
        n_adv = sum(1 for k, *_ in self.actions if k == ADVANCE)
        n_leaf = sum(1 for k, *_ in self.actions if k == LEAF)
        n_keep = sum(1 for k, *_ in self.actions if k == KEEP)
        lines.append(f"  actions: {n_leaf} leaves (a forward keeping residuals, then its backward), {n_adv} advances, ")
        lines[-1] += f"{n_keep} keeps"
        return "\n".join(lines)

    __repr__ = __str__
