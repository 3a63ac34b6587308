"""Gradients (numpy backend) against finite differences, checkpointing and truncation, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import rnncomp as rc
from rnncomp import Param, Seq, State
from tests.gradcheck import check_vjp
from tests.support import EXAMPLES, cell_of, max_err, random_args, random_lengths

B = 3


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("mode", ["full", "loop", 2, 3])
@pytest.mark.parametrize("T", [1, 2, 7, 16])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gradients_match_finite_differences(name, mode, T, with_lengths):
    cell = cell_of(name)
    prog = rc.compile(cell, length="T", unroll=mode, dtype="float64")
    args = random_args(cell, T, B, seed=T, inits=True)
    lengths = random_lengths(T, B, seed=T) if with_lengths else None
    assert check_vjp(prog, args, lengths, seed=T) <= 1e-6


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("mode", ["full", "loop", 3])
@pytest.mark.parametrize("T", [1, 7])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_reverse_gradients_match_finite_differences(name, mode, T, with_lengths):
    cell = cell_of(name)
    prog = rc.compile(cell, length="T", unroll=mode, dtype="float64", reverse=True)
    args = random_args(cell, T, B, seed=T, inits=True)
    lengths = random_lengths(T, B, seed=T) if with_lengths else None
    assert check_vjp(prog, args, lengths, seed=T) <= 1e-6


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("checkpoint", [1, 3, "sqrt"])
@pytest.mark.parametrize("mode", ["full", "loop", 2])
@pytest.mark.parametrize("reverse", [False, True])
def test_checkpointed_equals_plain(name, checkpoint, mode, reverse):
    cell = cell_of(name)
    args = random_args(cell, 10, B, inits=True)
    L = random_lengths(10, B)
    for kw in ({}, {"lengths": L}):
        plain = rc.compile(cell, length="T", unroll=mode, dtype="float64", reverse=reverse)
        ckpt = rc.compile(cell, length="T", unroll=mode, dtype="float64", reverse=reverse, checkpoint=checkpoint)
        out_p, bwd_p = plain.vjp(**kw, **args)
        out_c, bwd_c = ckpt.vjp(**kw, **args)
        cot = {k: np.ones_like(v) for k, v in out_p.items()}
        assert max_err(out_c, out_p) <= 1e-12
        assert max_err(bwd_c(cot), bwd_p(cot)) <= 1e-12


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("reverse", [False, True])
def test_truncate_T_equals_plain(name, reverse):
    cell = cell_of(name)
    T = 6
    args = random_args(cell, T, B, inits=True)
    for kw in ({}, {"lengths": random_lengths(T, B)}):
        _, g_plain = rc.compile(cell, dtype="float64", reverse=reverse).value_and_grad(
            next(iter(cell.outputs)), **kw, **args
        )
        _, g_trunc = rc.compile(cell, dtype="float64", reverse=reverse, truncate=T).value_and_grad(
            next(iter(cell.outputs)), **kw, **args
        )
        assert max_err(g_trunc, g_plain) <= 1e-12


@rc.cell
def scalar_rnn(x: Seq["B", 1], h: State["B", 1], w: Param[1, 1], u: Param[1, 1]):  # noqa: F821
    h = rc.tanh(x @ w + h @ u)
    return {"h": h, "y": h}


def test_truncate_one_by_hand():
    """h_t = tanh(w x_t + u h_{t-1}), loss = sum_t y_t: with truncate=1 only each step's own term counts."""
    T, x = 4, np.array([0.5, -1.0, 2.0, 0.3]).reshape(4, 1, 1)
    w, u, h0 = 0.7, -0.4, 0.2
    hs, prev = [], h0
    for t in range(T):
        prev = np.tanh(w * x[t, 0, 0] + u * prev)
        hs.append(prev)
    # truncate=1 (Theano): only the last step is differentiated, and only through itself.
    d = 1 - hs[-1] ** 2
    want_w, want_u, want_x_last = d * x[-1, 0, 0], d * hs[-2], d * w
    prog = rc.compile(scalar_rnn, dtype="float64", truncate=1)
    _, g = prog.value_and_grad("y", x=x, w=np.array([[w]]), u=np.array([[u]]), h=np.array([[h0]]))
    assert np.allclose(g["w"], want_w, atol=1e-14) and np.allclose(g["u"], want_u, atol=1e-14)
    assert np.allclose(g["x"][:-1], 0) and np.allclose(g["x"][-1], want_x_last, atol=1e-14)
    assert np.allclose(g["h"], 0)  # the window does not reach the init


def test_truncate_bounds_how_far_gradient_flows():
    cell = cell_of("elman")
    args = random_args(cell, 8, B, inits=True)
    _, g = rc.compile(cell, dtype="float64", truncate=3).value_and_grad("y", **args)
    assert np.all(g["x"][:5] == 0) and np.any(g["x"][5:] != 0)


def test_inference_stores_nothing_and_plain_bptt_stores_the_strict_need():
    cell = cell_of("lstm")  # H = 32 in the example; residuals: i, f, g, o gates, and h, c
    prog = rc.compile(cell, dtype="float32")
    mem = prog.memory(T=100, B=32)
    assert mem["per_step"] == 6 * 32 * 32 * 4
    args = {k: v.astype(np.float32) for k, v in random_args(cell, 100, 32).items()}
    _, backward = prog.vjp(**args)
    assert backward.nbytes == mem["kept"]
    sq = rc.compile(cell, dtype="float32", checkpoint="sqrt")
    _, backward = sq.vjp(**args)
    assert backward.nbytes == sq.memory(T=100, B=32)["kept"] < mem["kept"] / 4


def test_a_cell_can_compute_its_own_loss():
    @rc.cell
    def tagger(x: Seq["B", 5], target: Seq["B", 3], h: State["B", 6], W: Param[5, 6], U: Param[6, 6], V: Param[6, 3]):  # noqa: F821
        h = rc.tanh(x @ W + h @ U)
        logp = rc.log_softmax(h @ V, axis=-1)
        return {"h": h, "loss": -rc.sum(logp * target, axis=-1)}

    args = random_args(tagger, 5, B, seed=1, inits=True)
    args["target"] = np.eye(3)[np.random.default_rng(0).integers(0, 3, (5, B))]
    prog = rc.compile(tagger, dtype="float64")
    loss, g = prog.value_and_grad("loss", **args)
    assert loss > 0 and check_vjp(prog, args) <= 1e-6


def test_bad_input_names_the_argument():
    cell = cell_of("elman")
    args = random_args(cell, 4, B)
    prog = rc.compile(cell, dtype="float64")
    with pytest.raises(rc.ArgumentError, match=r"argument 'output': unknown output 'yy' \(did you mean 'y'\?\)"):
        prog.value_and_grad("yy", **args)
    out, backward = prog.vjp(**args)
    with pytest.raises(
        rc.ArgumentError, match=r"cotangent 'y': expected shape \(4, 3, 16\) \(the output's\), got \(4, 3\)"
    ):
        backward({"y": np.ones((4, 3))})
    with pytest.raises(rc.ArgumentError, match=r"cotangent for unknown output 'z'"):
        backward({"z": np.ones((4, 3, 8))})
    for opt in ("truncate", "checkpoint"):
        with pytest.raises(rc.ArgumentError, match=rf"argument '{opt}': expected an int >= 1"):
            rc.compile(cell, **{opt: 0})


@pytest.mark.parametrize("name", ["lstm", "narx"])
def test_roles_between_grad_and_the_runtime_are_slots(name):
    """Every name grad makes for the backward (its cell's seqs and states, the saved residuals, the
    shadow states of longer delays) has a typed Slot in plan.slots whose spelling it is."""
    from passes.grad import backward_program, derive
    from passes.roles import Role, cotangent, dstate

    plan = derive(cell_of(name))
    forward_seqs = {s.name for s in plan.cell.seqs}
    made = [s.name for s in plan.bwd.seqs if s.name not in forward_seqs]
    assert made and all(plan.slots[k].name == k for k in made)
    assert {plan.slots[k].role for k in made} <= {Role.PREV, Role.TRACE, Role.RESIDUAL, Role.COTANGENT}
    assert {plan.slots[k].of for k in made if plan.slots[k].role is Role.COTANGENT} == set(plan.cell.outputs)
    dstates = [k for k in plan.bwd.states if plan.slots[k].role is Role.DSTATE]
    assert all(k == dstate(plan.slots[k].of) for k in dstates) and len(dstates) == len(plan.cell.state_types)
    sums = [k for k in plan.bwd.states if k not in dstates]  # a bias's gradient, summed per row in the loop
    params = {p.name for p in plan.cell.params}
    assert all(plan.slots[k].role is Role.ROW_SUM and plan.slots[k].name == k for k in sums)
    assert sums and all(plan.slots[k].of in params for k in sums)  # both cells add a bias
    assert all(plan.slots[k].role is Role.RESIDUAL for k in plan.residuals)
    shadows = [s for s in plan.cell.state_types if s not in plan.user_states]
    assert all(plan.slots[s].role is Role.SHADOW and plan.slots[s].name == s for s in shadows)
    assert (name == "narx") == bool(shadows)  # narx reads y at delay 2 and x one step back
    prog = backward_program(plan, "T", "loop", False, False)
    given = {n.name for n in prog.inputs if prog.roles[n.name] == "cotangent"}
    assert given == {cotangent(k) for k in plan.cell.outputs}
