"""Property tests over random cells: every unroll mode agrees with the oracle, gradients with finite
differences, and ill-formed cells each give their own clear error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnncomp as rc
from ir import Cell, Node, Use, VerifyError, verify_cell
from rnncomp.reference import run as oracle
from tests.cellgen import cells, random_cell
from tests.gradcheck import check_vjp
from tests.support import max_err, random_args, random_lengths

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(cells(), st.sampled_from(["full", "loop", 2, 3]), st.integers(0, 9), st.booleans(), st.booleans())
def test_random_cells_agree_with_the_oracle(cell, mode, T, with_lengths, reverse):
    B = 3
    args = random_args(cell, T, B, seed=T, inits=True)
    kw = {"lengths": random_lengths(T, B, seed=T)} if with_lengths else {}
    prog = rc.compile(cell, length="T", unroll=mode, dtype="float64", reverse=reverse)
    got = prog(**kw, **args)
    if not reverse:
        assert max_err(got, oracle(cell, **kw, **args)) <= 1e-10
    else:  # reverse == the oracle over each row reversed within its length
        L = kw.get("lengths", np.full(B, T))
        seqs = {s.name for s in cell.seqs}
        flip = lambda a: np.stack([np.concatenate([a[:n, b][::-1], a[n:, b]]) for b, n in enumerate(L)], 1)  # noqa: E731
        want = oracle(cell, **kw, **{k: flip(v) if k in seqs and T else v for k, v in args.items()})
        want = {k: flip(v) if k in cell.outputs and T else v for k, v in want.items()}
        assert max_err(got, want) <= 1e-10


@pytest.mark.parametrize("seed", range(24))
def test_random_cell_gradients_match_finite_differences(seed):
    cell = random_cell(seed, smooth=True)
    mode = ["loop", 2, "full", 3][seed % 4]
    T, B = 5, 2
    prog = rc.compile(cell, length="T", unroll=mode, dtype="float64", reverse=seed % 3 == 0)
    args = random_args(cell, T, B, seed=seed, inits=True)
    lengths = random_lengths(T, B, seed=seed) if seed % 2 else None
    assert check_vjp(prog, args, lengths, seed=seed) <= 1e-6


@pytest.mark.parametrize("seed", range(8))
def test_random_cells_checkpointed_equal_plain(seed):
    cell = random_cell(seed)
    args = random_args(cell, 7, 2, seed=seed, inits=True)
    out_p, bwd_p = rc.compile(cell, dtype="float64").vjp(**args)
    out_c, bwd_c = rc.compile(cell, dtype="float64", checkpoint=3).vjp(**args)
    cot = {k: np.ones_like(v) for k, v in out_p.items()}
    assert max_err(out_c, out_p) <= 1e-12 and max_err(bwd_c(cot), bwd_p(cot)) <= 1e-12


# ---------------------------------------------------------------- ill-formed cells


def _copy(cell: Cell) -> tuple[Cell, dict[int, Node]]:
    new = {id(n): Node(n.op, (), n.attrs, n.type, n.name) for n in cell.nodes()}
    for n in cell.nodes():
        new[id(n)].inputs = tuple(Use(new[id(u.node)], u.delay) for u in n.inputs)
    c = Cell(
        cell.name,
        [new[id(n)] for n in cell.seqs],
        [new[id(n)] for n in cell.params],
        cell.state_types,
        {k: new[id(v)] for k, v in cell.states.items()},
        {k: new[id(v)] for k, v in cell.outputs.items()},
    )
    return c, new


def _compute(cell: Cell) -> list[Node]:
    return [n for n in cell.nodes() if n.op not in ("seq", "param") and n.inputs]


def _break_delay_to_zero(cell: Cell, rng) -> str:
    """Read a state at delay 0 from a node its own definition depends on: an algebraic loop."""
    for state in cell.states.values():
        upstream, stack = [], [state]
        while stack:  # the state's definition and its delay-0 ancestors
            n = stack.pop()
            if all(n is not m for m in upstream):
                upstream.append(n)
                stack.extend(u.node for u in n.inputs if u.delay == 0)
        for n in upstream:
            for i, u in enumerate(n.inputs):
                if u.delay and u.node is state:
                    n.inputs = n.inputs[:i] + (Use(state, 0),) + n.inputs[i + 1 :]
                    return "algebraic loop"
    return ""


def _negative_delay(cell: Cell, rng) -> str:
    n = _compute(cell)[0]
    n.inputs = (Use(n.inputs[0].node, -1),) + n.inputs[1:]
    return "delays must be >= 0"


def _unknown_op(cell: Cell, rng) -> str:
    n = _compute(cell)[int(rng.integers(len(_compute(cell))))]
    n.op = "tanhh"
    return "unknown op 'tanhh'"


def _wrong_state_type(cell: Cell, rng) -> str:
    k = next(iter(cell.state_types))
    t = cell.state_types[k]
    cell.state_types[k] = t.with_shape(t.shape[:-1] + (t.shape[-1] + 1,))
    return f"state {k!r}: its init has type"


def _wrong_shape(cell: Cell, rng) -> str:
    for n in _compute(cell):
        if n.op in ("add", "sub", "mul") and n.type.rank == 2:
            n.type = n.type.with_shape((n.type.shape[0], n.type.shape[1] + 3))
            return "differs from the inferred"
    return ""


BREAKERS = [_break_delay_to_zero, _negative_delay, _unknown_op, _wrong_state_type, _wrong_shape]


@pytest.mark.parametrize("seed", range(40))
def test_random_ill_formed_cells_give_their_error(seed):
    rng = np.random.default_rng(seed)
    cell, _ = _copy(random_cell(seed))
    breaker = BREAKERS[seed % len(BREAKERS)]
    expected = breaker(cell, rng)
    if not expected:
        pytest.skip(f"{breaker.__name__} found nothing to break in this cell")
    with pytest.raises(rc.RnncompError) as info:
        verify_cell(cell)
    assert expected in str(info.value)
    assert isinstance(info.value, VerifyError)
