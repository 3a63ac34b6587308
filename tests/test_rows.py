"""passes/rows.py: which loops have independent batch rows (and why not), on the examples and on
cells built to break each rule; the renamed body gives the batch extent as ROWS exactly where the
batch axis is."""

from __future__ import annotations

import pytest

import rnncomp as rc
from passes.rows import ROWS, rows_plan
from rnncomp import Param, Seq, State
from tests.support import EXAMPLES, cell_of


def _loops(cell: rc.Cell, grad: bool = False, lengths: bool = False, unroll="loop") -> list:
    prog = rc.compile(cell, length="T", unroll=unroll, backend="numpy")
    final = list(prog.stages(lengths=lengths, grad=grad).values())[-1]
    return [n for n in final.nodes() if n.op == "loop"]


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("lengths", [False, True])
def test_every_example_runs_its_rows_apart(name, grad, lengths):
    for loop in _loops(cell_of(name), grad, lengths, unroll=2):
        plan, why = rows_plan(loop)
        assert plan is not None, why
        assert plan.dim == "B"


def test_lengths_are_cut_by_rows_and_weights_are_not():
    (loop,) = _loops(cell_of("lstm"), lengths=True)
    plan, _ = rows_plan(loop)
    consts = loop.inputs[loop.attrs["n_carry"] + loop.attrs["n_xs"] + loop.attrs["n_buf"] :]
    cut = {u.node.name: c for u, c in zip(consts, plan.sliced_consts)}
    assert cut["lengths"] and not cut["Wh"] and not cut["b"]


def test_renamed_body_has_rows_on_the_batch_axis_only():
    (loop,) = _loops(cell_of("lstm"), grad=True)
    plan, _ = rows_plan(loop)
    body = plan.loop.attrs["body"]
    for n in body.nodes():
        shape = n.type.shape
        if n.op == "input" and n.name and n.name.startswith("inv"):
            assert ROWS not in shape  # the transposed weight
        elif shape and n.op != "constant":
            assert shape[0] == ROWS and ROWS not in shape[1:], n
    assert all(ROWS not in n.type.shape for n in loop.attrs["body"].nodes())  # the original is untouched


def _why(cell: rc.Cell) -> str:
    (loop,) = _loops(cell)
    plan, why = rows_plan(loop)
    assert plan is None
    return why


def test_a_sum_over_the_batch_keeps_the_loop_sequential():
    @rc.cell
    def pooled(x: Seq["B", 4], h: State["B", 4], W: Param[4, 4]):
        m = rc.mean(h, axis=0, keepdims=True)  # every row reads every other row
        h = rc.tanh(x @ W + m)
        return {"h": h, "y": h}

    assert "works along the batch axis" in _why(pooled) and "mean" in _why(pooled)


def test_a_per_step_loss_over_the_batch_keeps_the_loop_sequential():
    @rc.cell
    def lossy(x: Seq["B", 4], h: State["B", 4], W: Param[4, 4]):
        h = rc.tanh(x @ W + h)
        return {"h": h, "loss": rc.sum(h * h)}

    assert "batch axis" in _why(lossy)


def test_a_state_multiplied_from_the_left_keeps_the_loop_sequential():
    @rc.cell
    def mixing(x: Seq["B", 4], h: State["B", 4], M: Param["B", "B"]):
        h = rc.tanh(x + M @ h)  # rows mix
        return {"h": h, "y": h}

    why = _why(mixing)
    assert "matmul" in why


def test_one_row_is_not_split():
    @rc.cell
    def single(x: Seq[1, 4], h: State[1, 4], W: Param[4, 4]):
        h = rc.tanh(x @ W + h)
        return {"h": h, "y": h}

    assert _why(single) == "one row"


def test_an_unbatched_cell_splits_only_elementwise_steps():
    @rc.cell
    def flat(x: Seq[4], h: State[4], W: Param[4, 4], U: Param[4, 4]):
        h = rc.tanh(x @ W + h @ U)
        return {"h": h, "y": h}

    assert "contracts the batch axis" in _why(flat)  # axis 0 of a 1-D state is its features

    @rc.cell
    def leaky(x: Seq[4], h: State[4], W: Param[4, 4]):
        h = rc.tanh(0.5 * h + rc.tanh(x @ W))  # x @ W leaves the loop: what is left is elementwise
        return {"h": h, "y": h}

    (loop,) = _loops(leaky)
    assert rows_plan(loop)[0] is not None
