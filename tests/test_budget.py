"""Training under a memory budget (`checkpoint="64MiB"`, rnncomp/checkpointing.py) on real calls.

Gradients equal plain BPTT's in float64 for random budgets, T, lengths, unroll modes, `reverse` and
`truncate`; the bytes held for the backward, counted by watching every program call of a real
`vjp` (as benchmarks/memory.py counts them: `nbytes` of the arrays held, each buffer once), never
exceed the budget; the steps a call runs are the brute-force optimum's; bad budgets are clear errors.
"""

from __future__ import annotations

import functools
import sys
import weakref

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnncomp as rc
from rnncomp.backends.numba_cpu.pool import ALIGN
from tests.support import cell_of, max_err, random_args, random_lengths
from tests.test_schedule import recursive

B = 3
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


class Watch:
    """Wraps a program's runners: at every program call, the bytes of the states and residuals that earlier
    calls produced and that are still alive (held by anyone but the caller's outputs; each buffer once).
    A free buffer that only numba-cpu's pool keeps for the next call (backends/numba_cpu/pool.py) is
    workspace, like a program's temporaries, and not counted. Also counts the steps each forward runs."""

    def __init__(self, prog):
        self.prog, self.runner = prog, prog._runner
        plan = prog.plan
        self.states, self.residuals = set(plan.cell.state_types), set(plan.saved())
        self.inputs = {s.name for s in plan.cell.seqs} | {q.name for q in plan.cell.params}
        self.alive: list[weakref.ref] = []
        self.exclude: set[int] = set()
        self.residual_ids: set[int] = set()
        self.init: set[int] | None = None
        self.pools: dict[int, object] = {}
        self.most, self.step_runs = 0, 0
        prog._runner = self._wrap

    def outputs(self, out: dict) -> None:
        """Leave out the caller's outputs, unless they are residuals the backward reads (plain BPTT may
        return a residual array as an output)."""
        self.exclude = {id(_root(a)) for a in out.values()} - self.residual_ids

    def held(self) -> int:
        """Bytes of the arrays alive, each counted by its data: a pool buffer is a view starting on a cache
        line inside a byte buffer (its root) ALIGN bytes longer; the padding is not the program's data.
        A pool buffer nothing else refers to is free (the pool's own rule: the pool's list, the loop
        variable and getrefcount's argument; its byte buffer only from the view and the argument)."""
        free = {
            id(p.base)
            for pool in self.pools.values()
            for kept in pool.arrays.values()
            for p in kept
            if sys.getrefcount(p) == 3 and sys.getrefcount(p.base) == 2
        }
        seen: dict[int, int] = {}
        for r in self.alive:
            a = r()
            if a is None or id(a) in self.exclude or id(a) in (self.init or set()) or id(a) in free:
                continue
            seen[id(a)] = a.nbytes - ALIGN if a.dtype == np.uint8 and a.ndim == 1 else a.nbytes
        return sum(seen.values())

    def _wrap(self, kind, masked, T, *rest, **kw):
        fn = self.runner(kind, masked, T, *rest, **kw)
        if hasattr(fn, "pool"):
            self.pools[id(fn)] = fn.pool

        def call(args, symbols):
            if self.init is None:  # the first call starts from the init (not held for the backward, like the caller's)
                self.init = {id(_root(args[k])) for k in self.states if k in args}
            self.init |= {id(_root(args[k])) for k in self.inputs if k in args}  # inputs (a state may view one)
            self.most = max(self.most, self.held())
            out = fn(args, symbols)
            if kind in ("segment", "train"):
                self.step_runs += int(symbols[self.prog.tsym])
                self.alive += [weakref.ref(_root(out[k])) for k in self.states if k in out]
                if kind == "train":
                    got = [_root(out[k]) for k in self.residuals if k in out]
                    self.alive += [weakref.ref(a) for a in got]
                    self.residual_ids |= {id(a) for a in got}
            return out

        return call


@functools.lru_cache(None)
def _plain(name: str, reverse: bool, truncate):
    return rc.compile(cell_of(name), dtype="float64", reverse=reverse, truncate=truncate)


@SETTINGS
@given(
    st.sampled_from(["elman", "lstm", "narx"]),
    st.integers(0, 16),
    st.sampled_from(["loop", 2, 3, "full"]),
    st.booleans(),  # lengths
    st.booleans(),  # reverse
    st.sampled_from([None, 1, 4]),  # truncate
    st.floats(0, 1.2),  # where the budget lies between the least one and plain BPTT's bytes
    st.booleans(),  # an int length instead of the symbolic T
    st.integers(0, 2**16),
)
def test_budget_gradients_equal_plain_bptt_within_the_budget(
    name, T, unroll, lengths, reverse, truncate, frac, fixed, seed
):
    check_budget(name, T, unroll, lengths, reverse, truncate, frac, fixed, seed)


@pytest.mark.parametrize("unroll", ["loop", 2, 3, "full"])
@pytest.mark.parametrize("frac", [0.0, 0.3])
def test_budget_every_unroll_mode_with_lengths_reverse_truncate(unroll, frac):
    check_budget("lstm", 11, unroll, True, True, 4, frac, False, 7)
    check_budget("narx", 12, unroll, False, False, None, frac, True, 8)


def check_budget(name, T, unroll, lengths, reverse, truncate, frac, fixed, seed):
    """One real call under a budget `frac` of the way from the least budget to plain BPTT's bytes."""
    cell = cell_of(name)
    args = random_args(cell, T, B, seed=seed, inits=True)
    kw = {"lengths": random_lengths(T, B, seed=seed)} if lengths else {}
    T_run = int(kw["lengths"].max()) if lengths else T
    plain = _plain(name, reverse, truncate)
    mem = plain.memory(T=T_run, B=B)
    unit = unroll if isinstance(unroll, int) else 1
    least = mem["kept"] if T_run <= unit else min(mem["per_step"] * unit + _state_bytes(plain, B), mem["kept"])
    budget = max(1, int(least + frac * (mem["kept"] - least)))
    prog = rc.compile(
        cell,
        dtype="float64",
        unroll=unroll,
        reverse=reverse,
        truncate=truncate,
        checkpoint=f"{budget}B",
        **({"length": T} if fixed else {}),
    )
    out, backward = plain.vjp(**kw, **args)
    rng = np.random.default_rng(seed)
    cot = {k: rng.standard_normal(v.shape) for k, v in out.items()}
    want = backward(cot)

    watch = Watch(prog)
    got_out, backward = prog.vjp(**kw, **args)
    assert max_err(got_out, out) <= 1e-12
    watch.outputs(got_out)
    assert watch.held() <= backward.nbytes <= budget  # less where a state is a view of an input (NARX's delayed x)
    got = backward(cot)
    assert max_err(got, want) <= 1e-12
    planned = prog.memory(T=T_run, B=B)
    assert watch.most <= budget and backward.peak <= budget and planned["peak"] <= budget
    assert backward.peak == planned["peak"] and backward.nbytes == planned["kept"]
    sv = prog.schedule(T=T_run, B=B)
    plain_like = len(sv.actions) == 1  # one leaf (the budget holds every step): kept for another backward
    assert watch.held() <= (planned["kept"] if plain_like else 0)  # else every checkpoint and residual released
    assert watch.step_runs == int(sv.runs.sum())
    if unit == 1 and T_run:  # the steps run are the optimum of every schedule of the recursive family
        S = _state_bytes(prog, B)  # planned with one state set aside for the state a leaf starts from
        want_runs = T_run if budget >= mem["kept"] else recursive(T_run, mem["per_step"], S, budget - S)
        assert watch.step_runs == want_runs
    assert max_err(backward(cot), want) <= 1e-12  # a second backward replays the schedule again


def _state_bytes(prog, B: int) -> int:
    plan, item = prog.plan, prog.dtype.numpy.itemsize
    return sum(int(np.prod([B if d == "B" else d for d in t.shape])) * item for t in plan.cell.state_types.values())


@pytest.mark.parametrize("unroll", ["loop", 4])
def test_budget_on_numba_cpu_within_the_budget(unroll):
    cell = cell_of("lstm")
    T = 23
    args = random_args(cell, T, B, seed=1, inits=True)
    want_out, backward = _plain("lstm", False, None).vjp(**args)
    want = backward({"y": np.ones_like(want_out["y"])})
    per_step = _plain("lstm", False, None).memory(T=T, B=B)["per_step"]
    budget = per_step * (8 if unroll == 4 else 6) + 2 * B * 32 * 8  # two iterations or six steps, and a state
    prog = rc.compile(cell, dtype="float64", unroll=unroll, backend="numba-cpu", checkpoint=f"{budget}B")
    watch = Watch(prog)
    out, backward = prog.vjp(**args)
    watch.outputs(out)
    got = backward({"y": np.ones_like(out["y"])})
    assert max_err(got, want) <= 1e-12
    assert watch.most <= budget and backward.peak <= budget
    assert watch.step_runs == int(prog.schedule(T=T, B=B).runs.sum()) > T  # it did recompute


def test_budget_with_unroll_auto_plans_in_the_picked_modes_iterations(monkeypatch, tmp_path):
    """unroll="auto" (forced to 4 here) plans each mode's schedule in that mode's iterations; memory() and
    schedule() report the plan of the mode picked last, which is what the call held."""
    from rnncomp import autotune

    monkeypatch.setenv("RNNCOMP_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(autotune.ENV, "4")
    cell, T = cell_of("lstm"), 23
    args = random_args(cell, T, B, seed=2, inits=True)
    plain = _plain("lstm", False, None)
    want_out, backward = plain.vjp(**args)
    want = backward({"y": np.ones_like(want_out["y"])})
    budget = plain.memory(T=T, B=B)["per_step"] * 8 + 2 * _state_bytes(plain, B)  # two iterations and a state
    prog = rc.compile(cell, dtype="float64", unroll="auto", checkpoint=f"{budget}B")
    out, backward = prog.vjp(**args)
    assert max_err(backward({"y": np.ones_like(out["y"])}), want) <= 1e-12
    sv, mem = prog.schedule(T=T, B=B), prog.memory(T=T, B=B)
    assert sv.plan.unit == 4 and all((b - a) % 4 == 0 or b == T for _, a, b in sv.actions)
    assert backward.peak == mem["peak"] <= budget and mem["recompute"] > 1


def test_budget_below_the_least_names_the_least():
    cell = cell_of("lstm")  # H = 32: one step's residuals are 6 * B * 32 * 8 bytes, a state (h, c) 2 * B * 32 * 8
    least = 6 * B * 32 * 8 + 2 * B * 32 * 8
    args = random_args(cell, 10, B)
    ok = rc.compile(cell, dtype="float64", checkpoint=f"{least}B")
    ok.value_and_grad("y", **args)
    assert ok.memory(T=10, B=B)["peak"] == least
    low = rc.compile(cell, dtype="float64", checkpoint=f"{least - 1}B")
    msg = (
        rf"checkpoint='{least - 1}B': a budget of 6.0 KiB is below the least any schedule of T=10 steps needs "
        rf"at B=3: 6.0 KiB \({least} bytes: one step's residuals and the state it starts from\); raise it to "
        rf"at least {least} bytes"
    )
    with pytest.raises(rc.ArgumentError, match=msg):
        low.value_and_grad("y", **args)
    with pytest.raises(rc.ArgumentError, match=msg):
        low.memory(T=10, B=B)
    k4 = rc.compile(cell, dtype="float64", unroll=4, checkpoint=f"{least}B")
    least4 = 4 * 6 * B * 32 * 8 + 2 * B * 32 * 8
    msg4 = rf"one iteration's \(4 steps\) residuals and the state it starts from\); raise it to at least {least4}"
    with pytest.raises(rc.ArgumentError, match=msg4):
        k4.schedule(T=10, B=B)
    short = rc.compile(cell, dtype="float64", unroll=4, checkpoint="100B")  # T <= one iteration: no state needed
    msg3 = r"needs at B=3: 13.5 KiB \(13824 bytes: one iteration's \(4 steps\) residuals\)"
    with pytest.raises(rc.ArgumentError, match=msg3):
        short.memory(T=3, B=B)


FORMS = r"B, KiB, MiB, GiB, KB, MB, GB"
CK = "argument 'checkpoint'"
EXPECTED = rf"{CK}: expected an int >= 1, 'sqrt' or a size with a unit"


@pytest.mark.parametrize(
    "value,message",
    [
        ("64 parsecs", rf"{CK}: '64 parsecs' is not a size; write a number and a unit, one of {FORMS}"),
        ("-64MiB", rf"{CK}: a budget must be at least 1 byte, got '-64MiB' \(e.g. '64MiB'; units {FORMS}\)"),
        ("0B", rf"{CK}: a budget must be at least 1 byte, got '0B' \(e.g. '64MiB'; units {FORMS}\)"),
        ("64", rf"{CK}: '64' has no unit; pass the int 64 for 64 steps per segment, or a size with a unit \({FORMS}"),
        ("cbrt", rf"{EXPECTED} \(one of {FORMS}; e.g. '64MiB'\), got 'cbrt'"),
        (0, rf"{EXPECTED} \(one of {FORMS}; e.g. '64MiB'\), got 0"),
        (-3, rf"{EXPECTED} .*got -3"),
        (2.5, rf"{EXPECTED} .*got 2.5"),
    ],
)
def test_bad_budgets_name_the_accepted_forms(value, message):
    with pytest.raises(rc.ArgumentError, match=message):
        rc.compile(cell_of("elman"), checkpoint=value)


@pytest.mark.parametrize("value", [(4, "64MiB"), ["64MiB", 4]])
def test_budget_with_steps_per_segment_is_refused_saying_which_to_keep(value):
    msg = (
        r"argument 'checkpoint': .* gives both a budget \('64MiB'\) and k=4 steps per segment; keep one: "
        r"checkpoint='64MiB' plans the schedule for the budget, checkpoint=4 stores the state every 4 steps"
    )
    with pytest.raises(rc.ArgumentError, match=msg):
        rc.compile(cell_of("elman"), checkpoint=value)


def test_steps_per_segment_keep_their_meaning():
    """checkpoint=k: a checkpoint every k steps (the last segment's residuals kept from the forward)."""
    cell = cell_of("elman")
    prog = rc.compile(cell, dtype="float64", checkpoint=4)
    sv = prog.schedule(T=10, B=B)
    assert sv.stored == [4]  # segments [0,4) from the init, [4,8) from the checkpoint, [8,10) kept whole
    assert sv.runs.tolist() == [2] * 8 + [1] * 2
    args = random_args(cell, 10, B)
    out, backward = prog.vjp(**args)
    assert backward.nbytes == prog.memory(T=10, B=B)["kept"]
    _, want = _plain("elman", False, None).value_and_grad("y", **args)
    assert max_err(backward({"y": np.ones_like(out["y"])}), want) <= 1e-12
