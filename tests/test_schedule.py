"""Checkpoint schedules under a byte budget (passes/schedule.py) and byte sizes (passes/sizes.py).

The schedules are checked against two brute forces written here independently: an exhaustive search
over every schedule (any checkpoints, any residuals, any order) for tiny n, and the recursive
family's programme over every split for every n <= 30 and every budget.
"""

from __future__ import annotations

import functools
from collections import deque
from math import comb

import pytest

import passes.schedule as sched
from ir import ArgumentError
from passes.schedule import ADVANCE, DROP, KEEP, LEAF, RESTORE, Costs, cost_of, optimal, segments
from passes.sizes import format_size, parse_size


def replay(s, U: int, S: int, M: int) -> int:
    """Run a schedule's actions on an abstract machine; check every rule and the budget; its cost."""
    n = s.units
    hand, kept, done, cost = 0, set(), n, 0
    for kind, a, b in s.actions:
        if kind == RESTORE:
            assert a == 0 or a in kept, f"restore {a}: not kept"
            hand = a
        elif kind == ADVANCE:
            assert hand == a and a < b <= done, (kind, a, b, hand)
            cost, hand = cost + b - a, b
        elif kind == KEEP:
            assert hand == a and a not in kept
            kept.add(a)
            assert len(kept) * S <= M, "checkpoints over the budget"
        elif kind == DROP:
            kept.remove(a)
        else:
            assert kind == LEAF and hand == a and b == done, (kind, a, b, hand, done)
            assert len(kept) * S + (b - a) * U <= M, "leaf over the budget"
            cost, done, hand = cost + b - a, a, -1
            assert all(c < done for c in kept), "a checkpoint outlived its range"
    assert done == 0 and not kept
    return cost


def exhaustive(n: int, U: int, S: int, M: int) -> int | None:
    """0-1 BFS over every schedule: state (units left to reverse, checkpoints, residuals held, hand)."""
    start = (n, frozenset(), frozenset(), 0)
    dist, queue = {start: 0}, deque([(0, start)])
    while queue:
        d, st = queue.popleft()
        if dist[st] < d:
            continue
        g, C, R, p = st
        if g == 0:
            return d
        mem = len(C) * S + len(R) * U
        moves = []
        if g - 1 in R:
            g2 = g - 1
            moves.append(
                (0, (g2, frozenset(c for c in C if c < g2), R - {g2}, p if p is not None and p <= g2 else None))
            )
        if p is not None and 1 <= p < g and p not in C and mem + S <= M:
            moves.append((0, (g, C | {p}, R, p)))
        moves += [(0, (g, C - {c}, R, p)) for c in C] + [(0, (g, C, R - {r}, p)) for r in R]
        moves += [(0, (g, C, R, c)) for c in C | {0} if c != p]
        if p is not None and p < g:
            moves.append((1, (g, C, R, p + 1)))
            if p not in R and mem + U <= M:
                moves.append((1, (g, C, R | {p}, p + 1)))
        for w, s2 in moves:
            if d + w < dist.get(s2, 1 << 60):
                dist[s2] = d + w
                (queue.appendleft if w == 0 else queue.append)((d + w, s2))
    return None


def recursive(n: int, U: int, S: int, M: int) -> int:
    """Every split of the recursive family, memoised: G(m, j) with the start kept (j checkpoints held)."""

    def leaf(j):
        return (M - j * S) // U

    @functools.lru_cache(None)
    def G(m, j):
        if m <= leaf(max(j - 1, 0)):  # one leaf, its start released first
            return m
        best = 1 << 60
        for y in range(1, m):
            x = m - y
            right = x if x <= leaf(j) else G(x, j + 1) if leaf(j + 1) >= 1 else 1 << 60
            best = min(best, y + right + G(y, j))
        return best

    return G(n, 0)


CONFIGS = [(1, 1), (3, 1), (1, 3), (2, 3), (4, 3)]  # (unit bytes, state bytes)


@pytest.mark.parametrize("U,S", [(1, 1), (2, 1), (1, 2)])
def test_recursive_family_is_optimal_over_every_schedule(U, S):
    for n in range(1, 6):
        for M in range(U, n * U + 1):
            assert recursive(n, U, S, M) == exhaustive(n, U, S, M), (n, U, S, M)


@pytest.mark.parametrize("U,S", CONFIGS)
def test_optimal_equals_brute_force_for_every_T_up_to_30_and_every_budget(U, S):
    for n in range(1, 31):
        for M in range(U, n * U + 1):
            s = optimal(n, Costs(U, S, M))
            assert s.exact
            assert replay(s, U, S, M) == cost_of(s) == recursive(n, U, S, M), (n, U, S, M)


@pytest.mark.parametrize("U,S", CONFIGS)
def test_capacity_rule_is_valid_and_close(U, S, monkeypatch):
    monkeypatch.setattr(sched, "EXACT_WORK", 0)  # the rule used for large n, here on small ones
    worst = 0.0
    for n in (7, 19, 30):
        for M in range(U, n * U + 1):
            s = optimal(n, Costs(U, S, M))
            got, best = replay(s, U, S, M), recursive(n, U, S, M)
            assert got >= best
            worst = max(worst, got / best - 1)
    assert worst <= (0.04 if S <= U else 0.15), worst  # measured: 3.1% and 13.9%


def test_revolve_binomial_count():
    """Leaves of one unit and c checkpoints besides the init: Revolve's forward steps with c + 1 snapshots."""
    for c in range(4):
        s = c + 1
        for n in range(1, 40):
            r = next(r for r in range(n + 1) if comb(s + r, s) >= n)
            revolve = r * n - comb(s + r, r - 1) if r else 0
            assert cost_of(optimal(n, Costs(100, 1, 100 + c))) - n == revolve, (c, n)


def test_large_T_is_planned_within_the_budget():
    n, U, S = 100_000, 24, 8
    for frac in (0.01, 0.05, 0.5):
        M = int(frac * n * U)
        s = optimal(n, Costs(U, S, M))
        kept, peak = s.held(lambda a, b: (b - a) * U, S)
        assert peak <= M and kept <= peak
        assert s.executions().min() == 1


def test_whole_budget_is_plain_bptt():
    s = optimal(10, Costs(3, 1, 30))
    assert s.actions == ((LEAF, 0, 10),) and cost_of(s) == 10


def test_segments_replay():
    for n in range(1, 6):
        assert replay(segments(n), 1, 1, n) == 2 * n - 1


def test_least_budget_error_names_it():
    with pytest.raises(ArgumentError, match=r"below the least any schedule of 5 units needs: 24 B \(24 bytes"):
        optimal(5, Costs(24, 8, 23))
    assert cost_of(optimal(5, Costs(24, 8, 24))) == 15  # one unit, recomputed from the init each time


@pytest.mark.parametrize(
    "text,n",
    [
        ("64MiB", 64 * 2**20),
        ("1.5 GB", 1_500_000_000),
        ("512b", 512),
        ("2KiB", 2048),
        ("1e3KB", 10**6),
        ("3GiB", 3 * 2**30),
    ],
)
def test_parse_size(text, n):
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["64 parsecs", "64", "MiB", "", "1.2.3MB"])
def test_parse_size_names_the_accepted_forms(text):
    with pytest.raises(ArgumentError, match=r"is not a size; write a number and a unit, one of B, KiB, MiB, GiB, KB"):
        parse_size(text, "argument 'checkpoint'")


@pytest.mark.parametrize("text", ["-5MiB", "0B", "0.1B"])
def test_parse_size_refuses_non_positive(text):
    with pytest.raises(ArgumentError, match=r"a budget must be at least 1 byte.*units B, KiB, MiB, GiB, KB, MB, GB"):
        parse_size(text)


def test_parse_size_refuses_huge():
    with pytest.raises(ArgumentError, match="too large a size"):
        parse_size("1e400GiB")


def test_format_size():
    assert format_size(512) == "512 B" and format_size(64 * 2**20) == "64.0 MiB" and format_size(1536) == "1.5 KiB"
