"""Checkpoint schedules for backpropagation through time: what the forward keeps, what the backward recomputes.

The sequence, in processing order, is cut into n *units* (a step, or one k-step iteration of a
partial unroll). A schedule is a list of actions over unit positions 0..n; one state is "in hand"
(the one the next forward starts from, like the init; it is not counted as held):

    restore a     take the checkpoint at a (or the init, a = 0) in hand
    advance a b   run the forward from the state in hand at a to b, keeping no residuals
    keep b        store the state in hand at b (a checkpoint)
    drop b        release the checkpoint at b
    leaf a b      run the forward from the state in hand at a keeping its residuals, then the backward of [a, b)

Bytes held for the backward are the kept checkpoints (S bytes each) plus the live leaf's residuals
(U bytes a unit); `optimal` never lets them exceed the budget M. With j checkpoints kept a leaf holds
at most l_j = floor((M - j*S)/U) units. The schedules are Gruslys et al. 2016's recursive family: a
range whose start is kept (or is the init) either runs as one leaf, after releasing its start (it is
not needed again), or advances y units, does the rest [a+y, a+m) from the state in hand (one leaf, or
keep that state and recurse one level deeper), then the range [a, a+y) again. An exhaustive search
over every schedule (any checkpoints, any residuals, any order; tests/test_schedule.py) finds nothing
cheaper for n <= 6. The cost counted is unit executions (each unit runs at least once).

`optimal` finds the split y exactly (the dynamic programme over every y) while n * levels is small, and
otherwise by a capacity rule: C(j, r), the longest range at depth j in which no unit runs more than r
times, obeys C(j, 1) = l_{j-1} (the released start) and C(j, r) = C(j, r-1) + C(j+1, r) (a Pascal-type
rule: with equal leaves of one unit it is the binomial of Revolve, Griewank and Walther); the rule
splits so that each part stays within its repetition count. Its cost is exact when every l_j is equal
(Revolve's case) and otherwise close (tests/test_schedule.py measures the gap against the programme).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ir import ArgumentError

from .sizes import format_size

RESTORE, ADVANCE, KEEP, DROP, LEAF = "restore", "advance", "keep", "drop", "leaf"


@dataclass(frozen=True)
class Costs:
    """The sizes a schedule is planned against (bytes)."""

    unit_bytes: int  # residuals one unit keeps for the backward (U)
    state_bytes: int  # one checkpoint: every carried state (S)
    budget: int  # M


def least_budget(n: int, costs: Costs) -> int:
    """The fewest bytes any schedule of n units needs: one unit's residuals (recomputing from the init)."""
    return costs.unit_bytes if n > 0 else 0


def _check(n: int, costs: Costs) -> None:
    if costs.budget < least_budget(n, costs):
        least = least_budget(n, costs)
        raise ArgumentError(
            f"a budget of {format_size(costs.budget)} ({costs.budget} bytes) is below the least any schedule of "
            f"{n} units needs: {format_size(least)} ({least} bytes, one unit's residuals); "
            f"raise it to at least {least} bytes"
        )


class Levels:
    """The leaf limits l_j and the capacities C(j, r) of one (n, costs)."""

    def __init__(self, n: int, costs: Costs):
        U, S, M = costs.unit_bytes, costs.state_bytes, costs.budget
        J = n if S == 0 else min(n, (M - U) // S)  # the most checkpoints that still leave room for one unit
        leaf = np.minimum((M - S * np.arange(max(0, J) + 1, dtype=np.int64)) // U, n)  # l_j
        # levels past the one where l_0 + ... + l_j reaches n are never needed (two runs a unit cover n)
        J = min(max(0, J), int(np.searchsorted(np.cumsum(leaf), n)) + 1)
        self.n, self.J, self.leaf = n, J, leaf[: J + 1]
        self.top = self.leaf.copy()  # C(j, 1): l_{j-1} (the start is released), l_0 at the init
        self.top[1:] = self.leaf[:-1]
        self.C = self._capacities()
        self._cols: dict[int, list[int]] = {}

    def _capacities(self) -> np.ndarray:
        """C(r, j) for r = 0..R (rows), R the first r with C(0, r) >= n; row by row while rows are few."""
        J, n = self.J, self.n
        deepest = int(self.leaf[J])
        rows = [np.zeros(J + 1, np.int64), self.top.copy()]
        while rows[-1][0] < n and len(rows) <= 64:
            prev = rows[-1]
            nxt = prev.copy()
            nxt[J] += deepest  # the pieces at depth J are single leaves
            # C(j, r) = C(j, r-1) + C(j+1, r): from the deepest level up, a running sum
            nxt[:J] = prev[:J] + np.cumsum(prev[1:][::-1])[::-1] + (nxt[J] - prev[J])
            rows.append(np.minimum(nxt, n))
        if rows[-1][0] >= n:
            return np.stack(rows)
        R = 2 * len(rows)
        while True:  # few levels, many repetitions: column by column
            table = np.zeros((R + 1, J + 1), np.int64)
            table[1:, J] = np.minimum(self.top[J] + deepest * np.arange(R), n)
            for j in range(J - 1, -1, -1):
                table[1:, j] = np.minimum(self.top[j] + np.concatenate(([0], np.cumsum(table[2:, j + 1]))), n)
            if table[R, 0] >= n:
                return table[: int(np.searchsorted(table[:, 0], n)) + 1]
            R *= 2

    def col(self, j: int) -> list[int]:
        """C(j, r) for r = 0..R."""
        c = self._cols.get(j)
        if c is None:
            c = self._cols[j] = self.C[:, j].tolist()
        return c

    def piece(self, j: int) -> list[int]:
        """The capacities of the part done from the state in hand at depth j: C(j+1, r), or leaves at J."""
        if j < self.J:
            return self.col(j + 1)
        c = self._cols.get(-1)
        if c is None:
            c = self._cols[-1] = [int(self.leaf[j]) if r else 0 for r in range(len(self.col(j)))]
        return c


@dataclass(frozen=True)
class Schedule:
    """A schedule's actions over n units; the forward runs `actions[:forward]` and the first leaf's forward."""

    units: int
    actions: tuple[tuple[str, int, int], ...]
    exact: bool = True  # known optimal (the dynamic programme, or equal segments as asked)

    @cached_property
    def forward(self) -> int:
        """Index of the first leaf: the forward pass runs every action before it and its forward half."""
        return next(i for i, a in enumerate(self.actions) if a[0] == LEAF)

    def executions(self) -> np.ndarray:
        """How many times each unit's forward runs (advances and leaves); 1 everywhere is plain BPTT."""
        diff = np.zeros(self.units + 1, np.int64)
        for kind, a, b in self.actions:
            if kind in (ADVANCE, LEAF):
                diff[a] += 1
                diff[b] -= 1
        return np.cumsum(diff[:-1])

    def kept(self) -> list[int]:
        """The positions whose state is kept at some point (checkpoints), ascending."""
        return sorted({a for kind, a, _ in self.actions if kind == KEEP})

    def held(self, leaf_bytes, state_bytes: int) -> tuple[int, int]:
        """(bytes held when the forward ends, the most held at any time): kept states plus the live leaf's
        residuals, `leaf_bytes(a, b)` those of the leaf [a, b)."""
        states = peak = kept = 0
        for i, (kind, a, b) in enumerate(self.actions):
            if kind == KEEP:
                states += state_bytes
                peak = max(peak, states)
            elif kind == DROP:
                states -= state_bytes
            elif kind == LEAF:
                now = states + leaf_bytes(a, b)
                peak = max(peak, now)
                if i == self.forward:
                    kept = now
        return kept, peak


EXACT_WORK = 2048  # n * levels at most for the dynamic programme (a few ms); larger plans use the capacity rule


def optimal(n: int, costs: Costs) -> Schedule:
    """The schedule of n units with the fewest unit executions whose bytes stay within `costs.budget`.

    Exact (the dynamic programme) while n * levels <= EXACT_WORK; beyond, the capacity rule (see the
    module docstring). Raises ArgumentError naming the least budget when none fits.
    """
    _check(n, costs)
    if n == 0:
        return Schedule(0, ((LEAF, 0, 0),), True)
    lv = Levels(n, costs)
    exact = n * (lv.J + 1) <= EXACT_WORK
    split = _exact(n, lv) if exact else _rule(lv)
    leaf = lv.leaf.tolist()
    top = lv.top.tolist()
    out: list[tuple[str, int, int]] = []
    hand = 0
    # work items: ("G", a, m, j) a range whose start is kept (or the init), ("R", b, x, j) from the hand
    stack: list[tuple] = [("G", 0, n, 0)]
    while stack:
        item = stack.pop()
        kind = item[0]
        if kind == "A":  # an action
            out.append(item[1])
            continue
        _, a, m, j = item
        if kind == "R":
            if m <= leaf[j]:
                out.append((LEAF, a, a + m))
                hand = -1
                continue
            out.append((KEEP, a, a))
            kind, j = "G", j + 1
        if hand != a:
            out.append((RESTORE, a, a))
        if m <= top[j]:
            if j:
                out.append((DROP, a, a))
            out.append((LEAF, a, a + m))
            hand = -1
            continue
        y = split(m, j)
        out.append((ADVANCE, a, a + y))
        hand = a + y
        stack.append(("G", a, y, j))
        stack.append(("R", a + y, m - y, j))
    return Schedule(n, tuple(out), exact)


def _rule(lv: Levels):
    """The capacity rule: for C(j, r-1) < m <= C(j, r), the largest y <= C(j, r-1) whose rest fits r repetitions."""
    from bisect import bisect_left

    def split(m: int, j: int) -> int:
        here, piece = lv.col(j), lv.piece(j)
        r = bisect_left(here, m)
        lo = max(here[r - 2] if r >= 2 else 0, m - piece[r], 1)
        y = min(here[r - 1], m - piece[r - 1], m - 1)
        return max(lo, y) if lo <= m - 1 else m - 1

    return split


def _exact(n: int, lv: Levels):
    """The dynamic programme over every split: G(m, j) = min_y y + R(m - y, j) + G(y, j), where R(x, j) is
    x for x <= l_j and G(x, j+1) otherwise; returned as a split function (the largest minimising y)."""
    big = np.int64(1) << np.int64(50)
    J = min(lv.J, n)
    leaf, top = lv.leaf, lv.top
    G = np.full((J + 2, n + 1), big, np.int64)
    best = np.zeros((J + 1, n + 1), np.int64)
    for j in range(J, -1, -1):
        R = np.arange(n + 1, dtype=np.int64)
        R[int(leaf[j]) + 1 :] = G[j + 1, int(leaf[j]) + 1 :] if j < J else big
        t = int(top[j])
        G[j, : t + 1] = np.arange(t + 1)
        for m in range(t + 1, n + 1):
            cost = np.arange(1, m) + R[m - 1 : 0 : -1] + G[j, 1:m]
            k = m - 2 - int(np.argmin(cost[::-1]))
            G[j, m], best[j, m] = cost[k], k + 1
    return lambda m, j: int(best[j, m])


def cost_of(schedule: Schedule) -> int:
    """Unit executions of a schedule (the objective)."""
    return int(schedule.executions().sum())


def segments(n: int) -> Schedule:
    """Equal segments, one unit each (`checkpoint=k`, "sqrt"; n = 1 is plain BPTT): keep every start but the
    last (the forward's own leaf starts from the state in hand)."""
    if n == 0:
        return Schedule(0, ((LEAF, 0, 0),))
    out: list[tuple[str, int, int]] = []
    for i in range(1, n):
        out.append((ADVANCE, i - 1, i))
        if i < n - 1:
            out.append((KEEP, i, i))
    out.append((LEAF, n - 1, n))
    for i in range(n - 2, -1, -1):
        out.append((RESTORE, i, i))
        if i:
            out.append((DROP, i, i))
        out.append((LEAF, i, i + 1))
    return Schedule(n, tuple(out))
