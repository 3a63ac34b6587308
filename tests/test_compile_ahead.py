"""value_and_grad compiles the backward module in a forked child (numba_cpu/ahead.py): the gradients
are the oracle's whatever becomes of the child (it succeeds, fails, stalls, is cancelled), no child
outlives its call, and it is off where it cannot pay (warm, one core, RNNCOMP_COMPILE_AHEAD=0)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip("numba")

import numba  # noqa: E402

import rnncomp as rc  # noqa: E402
from ir import ArgumentError  # noqa: E402
from rnncomp.backends.numba_cpu import ahead, runner  # noqa: E402


def cell(n: int) -> rc.Cell:
    """A small cell of its own per n (its modules are new cache entries); its loop has a row block."""
    g = rc.Graph(f"ahead{n}")
    x = g.seq("x", ("B", n))
    W = g.param("W", (n, n))
    h = g.state("h", ("B", n))
    h.define(rc.tanh(x @ W + h.prev(1)))
    g.output("y", h)
    g.output("loss", rc.sum(h * h, axis=-1))
    return g.build()


def arguments(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {"x": rng.standard_normal((4, 3, n)), "W": rng.standard_normal((n, n)) * 0.5}


def check(n: int, **kw) -> None:
    """value_and_grad on numba-cpu agrees with the numpy oracle (float64)."""
    got = rc.compile(cell(n), backend="numba-cpu", dtype="float64", **kw).value_and_grad("loss", **arguments(n))
    want = rc.compile(cell(n), backend="numpy", dtype="float64", **kw).value_and_grad("loss", **arguments(n))
    assert abs(got[0] - want[0]) <= 1e-10 * abs(want[0])
    assert got[1].keys() == want[1].keys()
    for k in want[1]:
        np.testing.assert_allclose(got[1][k], want[1][k], rtol=1e-10, atol=1e-12)


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty program cache; ahead on (as on any machine with two cores); the children joined, each
    join's outcome recorded."""
    monkeypatch.setenv("RNNCOMP_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(ahead.ENV, raising=False)
    monkeypatch.setattr(ahead.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(ahead.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    joins: list[bool] = []
    join = ahead.Ahead.join

    def recorded(self):
        ok = join(self)
        joins.append(ok)
        return ok

    monkeypatch.setattr(ahead.Ahead, "join", recorded)
    yield joins
    assert not ahead._LIVE  # every child was collected


def test_backward_compiled_in_a_child_is_loaded(fresh, monkeypatch):
    loaded: list[bool] = []  # per module the parent compiles: whether Numba loaded `program` from its cache
    compile_for = runner.Runner.compile_for
    parent = os.getpid()

    def counted(self, types, args=None):
        compile_for(self, types, args)
        if os.getpid() == parent:
            loaded.append(sum(self.fn.stats.cache_hits.values()) > 0)

    monkeypatch.setattr(runner.Runner, "compile_for", counted)
    check(5)
    assert fresh == [True]
    assert loaded == [False, True]  # the forward compiled here, the backward loaded from the child's files


def test_a_failing_child_means_compiling_here(fresh, monkeypatch):
    parent = os.getpid()
    compile_for = runner.Runner.compile_for

    def fails_in_child(self, types, args=None):
        if os.getpid() != parent:
            raise RuntimeError("the child fails")
        compile_for(self, types, args)

    monkeypatch.setattr(runner.Runner, "compile_for", fails_in_child)
    check(6)
    assert fresh == [False]


def test_a_stalled_child_is_killed_and_the_parent_compiles(fresh, monkeypatch):
    parent = os.getpid()
    monkeypatch.setattr(ahead, "STALL", 0.5)
    real = runner.factory

    def stalls_in_child(prog, options):
        if os.getpid() != parent:
            time.sleep(600)  # no CPU time: taken as stuck
        return real(prog, options)

    monkeypatch.setattr(runner, "factory", stalls_in_child)
    t = time.perf_counter()
    check(7)
    assert fresh == [False]
    assert time.perf_counter() - t < 60


def test_a_failing_forward_cancels_the_child(fresh, monkeypatch):
    from rnncomp.training import Trainer

    def broken(self, b, lengths):
        raise RuntimeError("the forward fails")

    forward = Trainer.forward
    monkeypatch.setattr(Trainer, "forward", broken)
    started: list[ahead.Ahead] = []
    start = ahead.compile_ahead

    def recorded(prog, options):
        a = start(prog, options)
        started.append(a)
        return a

    monkeypatch.setattr(ahead, "compile_ahead", recorded)
    p = rc.compile(cell(8), backend="numba-cpu", dtype="float64")
    with pytest.raises(RuntimeError, match="the forward fails"):
        p.value_and_grad("loss", **arguments(8))
    assert len(started) == 1 and started[0] is not None and started[0].pid is None  # killed and collected
    monkeypatch.setattr(Trainer, "forward", forward)
    check(8)  # the same program later: gradients as the oracle's


@pytest.mark.parametrize(
    "why",
    ["off", "one core", "no free core", "warm"],
)
def test_no_child_where_it_cannot_pay(fresh, monkeypatch, why):
    check(9)  # the cache filled (a child per module that was not there)
    forks = len(fresh)
    if why == "off":
        monkeypatch.setenv(ahead.ENV, "0")
    elif why == "one core":
        monkeypatch.setattr(ahead.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    elif why == "no free core":
        monkeypatch.setattr(ahead.os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    n = 9 if why == "warm" else 10
    monkeypatch.setattr(ahead.os, "fork", lambda: pytest.fail("forked"))
    check(n)
    assert len(fresh) == forks


def test_the_env_value_is_checked(monkeypatch):
    monkeypatch.setenv(ahead.ENV, "yes")
    want = r"RNNCOMP_COMPILE_AHEAD: expected 0 \(off\) or 1 \(on, the default\), got 'yes'"
    with pytest.raises(ArgumentError, match=want):
        ahead.enabled()


def test_the_signature_is_the_one_every_call_compiles(monkeypatch, tmp_path):
    """`Runner.signature()` (what the child compiles) equals the types of the arguments of real calls:
    plain, masked, checkpointed, truncated, float32 (the layernorm cell has constants)."""
    monkeypatch.setenv(ahead.ENV, "0")
    monkeypatch.setenv("RNNCOMP_CACHE_DIR", str(tmp_path))
    seen: list[int] = []
    compile_ = runner.Runner._compile

    def compared(self, args):
        assert self.signature() == tuple(numba.typeof(a) for a in args)
        seen.append(1)
        compile_(self, args)

    monkeypatch.setattr(runner.Runner, "_compile", compared)
    args = arguments(4)
    rc.compile(cell(4), backend="numba-cpu", dtype="float64").value_and_grad("loss", **args)
    rc.compile(cell(4), backend="numba-cpu").value_and_grad("y", lengths=np.array([4, 2, 3]), **args)
    rc.compile(cell(4), backend="numba-cpu", checkpoint=2).value_and_grad("loss", **args)
    rc.compile(cell(4), backend="numba-cpu", truncate=2).value_and_grad("loss", **args)
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
    from _demo import random_arguments
    from layernorm_lstm import make_layernorm_lstm

    ln = make_layernorm_lstm(4, 6)
    ln_args = random_arguments(ln, T=3, B=2)
    loss = next(k for k in ln.outputs if k not in ln.states)
    rc.compile(ln, backend="numba-cpu").value_and_grad(loss, **ln_args)
    assert len(seen) >= 9
