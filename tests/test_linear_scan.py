"""The `linear_scan` pass: which carried values it scans, and that the scanned programs (numpy and
numba-cpu; CUDA in tests/test_linear_scan_cuda.py) agree with the oracle, forward and gradients,
under lengths, reverse, truncate and checkpoint; what it leaves sequential, and why."""

from __future__ import annotations

import numpy as np
import pytest

import rnncomp as rc
from ir import PassError, Program
from ir.verify_program import verify_program
from passes.linear_scan import explain
from rnncomp import Param, Seq, State
from rnncomp.cli import main
from rnncomp.reference import run
from tests.gradcheck import check_vjp
from tests.hand_rnns import load_example
from tests.support import max_err, random_args, random_lengths
from tests.test_program_text import assert_round_trip

SCANNED = ["mingru", "minlstm", "diagonal_rnn", "qrnn"]
OFF = "simplify,hoist,simplify"  # the default pipeline without linear_scan
T, B = 7, 4


def example(name: str) -> rc.Cell:
    return getattr(load_example(name), name)


def ops_of(prog: Program) -> list[str]:
    out, stack = [], list(prog.nodes())
    while stack:
        n = stack.pop()
        out.append(n.op)
        if n.op == "loop":
            stack += n.attrs["body"].nodes()
    return out


def kw(lengths) -> dict:
    return {} if lengths is None else {"lengths": lengths}


def grads_agree(prog, ref, args, lengths=None) -> float:
    """Largest difference of outputs and gradients (random cotangents) between two programs."""
    (o1, b1), (o2, b2) = prog.vjp(**kw(lengths), **args), ref.vjp(**kw(lengths), **args)
    rng = np.random.default_rng(3)
    cot = {k: rng.standard_normal(v.shape) for k, v in o1.items()}
    return max(max_err(o1, o2), max_err(b1(cot), b2(cot)))


# ---------------------------------------------------------------- what is scanned


@pytest.mark.parametrize("name", SCANNED)
def test_the_new_examples_are_scanned_forward_and_backward(name):
    prog = rc.compile(example(name), backend="numpy")
    for variant in ({}, {"lengths": True}, {"grad": True}, {"grad": True, "lengths": True}):
        stages = prog.stages(**variant)
        assert "linear_scan" in stages
        final = list(stages.values())[-1]
        assert "linear_scan" in ops_of(final), variant
        verify_program(final)
        assert_round_trip(final, f"{name} {variant}")
        assert all(why is None for _, why in explain(stages["hoist"])), explain(stages["hoist"])


def test_existing_examples_stay_sequential_with_a_reason():
    for name in ("elman", "lstm", "gru", "narx", "stacked_lstm", "three_node"):
        prog = rc.compile(example(name), backend="numpy")
        for grad in (False, True):
            stages = prog.stages(grad=grad)
            assert "linear_scan" not in ops_of(list(stages.values())[-1]), (name, grad)
            rows = explain(stages["hoist"])
            assert rows and all(why for _, why in rows), (name, grad, rows)


def test_the_scan_op_prints_parses_and_verifies():
    final = list(rc.compile(example("qrnn"), backend="numpy").stages(grad=True, lengths=True).values())[-1]
    text = str(final)
    assert "linear_scan(" in text and "hi=true" in text and "reverse=true" in text and "last_step(" in text
    assert_round_trip(final)


# ---------------------------------------------------------------- agreement with the oracle


@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
@pytest.mark.parametrize("name", SCANNED)
def test_forward_agrees_with_the_oracle(name, backend):
    cell = example(name)
    args = random_args(cell, T, B, inits=True)
    prog = rc.compile(cell, backend=backend, dtype="float64")
    for lengths in (None, random_lengths(T, B)):
        assert max_err(prog(**kw(lengths), **args), run(cell, lengths=lengths, **args)) <= 1e-10


@pytest.mark.parametrize("name", SCANNED)
def test_gradients_agree_with_finite_differences(name):
    cell = example(name)
    args = random_args(cell, T, B, inits=True)
    for reverse in (False, True):
        prog = rc.compile(cell, backend="numpy", dtype="float64", reverse=reverse)
        for lengths in (None, random_lengths(T, B)):
            assert check_vjp(prog, args, lengths=lengths) <= 1e-6


@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
@pytest.mark.parametrize("name", SCANNED)
def test_gradients_equal_the_sequential_loops(name, backend):
    """Against the same cell with the pass off: reverse, lengths, truncate, checkpoint."""
    cell = example(name)
    args = random_args(cell, T, B, inits=True)
    L = random_lengths(T, B)
    options = [{}, {"reverse": True}, {"truncate": 3}, {"checkpoint": 2}, {"checkpoint": "sqrt"}]
    for opts in options if backend == "numpy" else options[:2] + options[3:4]:
        prog = rc.compile(cell, backend=backend, dtype="float64", **opts)
        ref = rc.compile(cell, backend="numpy", dtype="float64", passes=OFF, **opts)
        for lengths in (None, L):
            assert grads_agree(prog, ref, args, lengths) <= 1e-10, (opts, lengths is not None)


def test_a_zero_length_sequence_returns_the_init():
    cell = example("mingru")
    args = random_args(cell, 0, B, inits=True)
    out = rc.compile(cell, backend="numpy", dtype="float64")(**args)
    assert out["y"].shape == (0, B, 32) and np.array_equal(out["h"], args["h"])


# ---------------------------------------------------------------- several states, mixed cells


@rc.cell
def chained(
    x: Seq["B", 3],  # noqa: F821
    h1: State["B", 4],  # noqa: F821
    h2: State["B", 4],  # noqa: F821
    s: State["B", 4],  # noqa: F821
    W: Param[3, 4],
    V: Param[4, 4],
    U: Param[4, 4],
    lam: Param[4],
):
    h1_new = lam * h1 + x @ W  # scanned
    h2_new = rc.sigmoid(x @ W) * h2 + h1_new @ V  # scanned after h1 (its b reads h1's new value)
    s_new = rc.tanh(x @ W + s @ U + h2_new)  # nonlinear: stays; it reads the scanned states
    return {"h1": h1_new, "h2": h2_new, "s": s_new, "y": s_new + h2}


def test_several_linear_states_and_a_nonlinear_one():
    prog = rc.compile(chained, backend="numpy", dtype="float64")
    rows = dict(explain(prog.stages()["hoist"]))
    assert rows["h1"] is None and rows["h2"] is None
    assert "tanh" in rows["s"] or "matmul" in rows["s"]
    assert ops_of(list(prog.stages().values())[-1]).count("linear_scan") == 2
    args = random_args(chained, T, B, inits=True)
    for lengths in (None, random_lengths(T, B)):
        assert max_err(prog(**kw(lengths), **args), run(chained, lengths=lengths, **args)) <= 1e-10
        assert (
            grads_agree(prog, rc.compile(chained, backend="numpy", dtype="float64", passes=OFF), args, lengths) <= 1e-10
        )


# ---------------------------------------------------------------- bad input: almost linear, left sequential


@rc.cell
def reads_a_state(x: Seq["B", 3], h: State["B", 4], s: State["B", 4], W: Param[3, 4], U: Param[4, 4]):  # noqa: F821
    s_new = rc.tanh(x @ W + s @ U)
    h_new = rc.sigmoid(s) * h + x @ W  # the coefficient a reads another state
    return {"h": h_new, "s": s_new, "y": h_new}


@rc.cell
def fed_by_a_state(x: Seq["B", 3], h: State["B", 4], s: State["B", 4], W: Param[3, 4], U: Param[4, 4]):  # noqa: F821
    s_new = rc.tanh(x @ W + s @ U)
    h_new = 0.5 * h + s_new  # linear, but fed by a nonlinear state
    return {"h": h_new, "s": s_new, "y": h_new}


@rc.cell
def squashed(x: Seq["B", 3], h: State["B", 4], W: Param[3, 4]):  # noqa: F821
    h_new = rc.tanh(0.5 * h + x @ W)  # a nonlinearity around the sum
    return {"h": h_new, "y": h_new}


@rc.cell
def squared(x: Seq["B", 3], h: State["B", 4], W: Param[3, 4]):  # noqa: F821
    h_new = h * h + x @ W  # the state times itself
    return {"h": h_new, "y": h_new}


ALMOST = {
    "reads_a_state": (reads_a_state, "h", "its coefficient a reads state 's'"),
    "fed_by_a_state": (fed_by_a_state, "h", "its coefficient b reads state 's', which stays sequential"),
    "squashed": (squashed, "h", "passes through tanh, which is not linear"),
    "squared": (squared, "h", "it multiplies its previous value by itself"),
}


@pytest.mark.parametrize("case", sorted(ALMOST))
def test_an_almost_linear_state_stays_sequential_and_correct(case):
    cell, state, reason = ALMOST[case]
    prog = rc.compile(cell, backend="numpy", dtype="float64")
    assert reason in dict(explain(prog.stages()["hoist"]))[state]
    assert "linear_scan" not in ops_of(list(prog.stages().values())[-1])
    args = random_args(cell, T, B, inits=True)
    for lengths in (None, random_lengths(T, B)):
        assert max_err(prog(**kw(lengths), **args), run(cell, lengths=lengths, **args)) <= 1e-10
    assert check_vjp(prog, args) <= 1e-6


@pytest.mark.parametrize("case", sorted(ALMOST))
def test_forcing_the_pass_names_the_state_and_the_reason(case):
    cell, state, reason = ALMOST[case]
    prog = rc.compile(cell, backend="numpy", passes="simplify,hoist,linear_scan{require=true},simplify")
    with pytest.raises(PassError) as e:
        prog(**random_args(cell, T, B))
    assert f"state {state!r}" in str(e.value) and reason in str(e.value) and "stays sequential" in str(e.value)


def test_forcing_the_pass_on_a_linear_cell_runs():
    cell = example("mingru")
    args = random_args(cell, T, B)
    prog = rc.compile(
        cell, backend="numpy", dtype="float64", passes="simplify,hoist,linear_scan{require=true},simplify"
    )
    assert max_err(prog(**args), run(cell, **args)) <= 1e-10


def test_a_k_step_unroll_stays_sequential_and_says_why():
    prog = rc.compile(example("mingru"), backend="numpy", unroll=2)
    rows = explain(prog.stages()["hoist"])
    assert rows and all("2 steps per iteration" in why or "starts at step" in why for _, why in rows)


def test_cli_explains(capsys):
    assert main(["dump", "examples/mingru.py", "--explain", "linear_scan"]) == 0
    assert "state 'h': scanned" in capsys.readouterr().out
    assert main(["dump", "examples/lstm.py", "--explain", "linear_scan", "--grad"]) == 0
    out = capsys.readouterr().out
    assert "state 'dstate@c': stays sequential: its coefficient b reads state 'dstate@h'" in out
    assert main(["dump", "examples/mingru.py", "--after", "linear_scan"]) == 0
    assert "linear_scan(" in capsys.readouterr().out
