"""One record per op: what the passes know of an op is read from its `OpDef` (ir/ops.py), not from
lists of their own. Each pass is shown to follow the record (flip a field, the pass changes its mind),
and a property test compares the rows pass's verdict with the records of the ops in random cells."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rnncomp as rc
from ir import OPS, VerifyError
from ir.ops import ROW_RULES, OpDef, axes_of, get_op, normalise_axes, register
from passes import rows
from passes.grad import derive
from rnncomp import Param, Seq, State


def _loops(cell: rc.Cell, unroll="loop") -> list:
    prog = rc.compile(cell, length="T", unroll=unroll, backend="numpy")
    final = list(prog.stages().values())[-1]
    return [n for n in final.nodes() if n.op == "loop"]


@pytest.fixture
def flip(monkeypatch):
    """Replace fields of an op's record for one test."""

    def set_fields(op: str, **fields) -> None:
        monkeypatch.setitem(OPS, op, dataclasses.replace(OPS[op], **fields))

    return set_fields


# ---------------------------------------------------------------- the records themselves


def test_every_op_says_how_it_treats_rows_and_the_rows_pass_has_each_rule():
    assert set(rows.RULES) == set(ROW_RULES)
    for op in OPS.values():
        assert op.rows in ROW_RULES, op.name
        assert (op.rows == "serial") == bool(op.rows_why), op.name
        if op.elementwise:
            assert op.rows in ("elementwise", "select", "mask"), op.name
        if op.rows == "axes":
            assert op.axes is not None, op.name


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"kind": "reduction"}, "op 'odd': rows=None is not one of elementwise, select, axes"),
        ({"rows": "rowwise"}, "op 'odd': rows='rowwise' is not one of"),
        ({"rows": "serial"}, "op 'odd': rows_why says how a rows='serial' op mixes rows"),
        ({"rows": "axes"}, "op 'odd': rows='axes' needs `axes`, the axes it works along"),
    ],
)
def test_a_record_without_a_rows_rule_is_refused_when_registered(fields, message):
    with pytest.raises(VerifyError, match=message.replace("(", r"\(")):
        register(OpDef("odd", 1, OPS["tanh"].infer, OPS["tanh"].numpy, **fields))
    assert "odd" not in OPS


def test_an_elementwise_op_gets_the_elementwise_rows_rule():
    try:
        assert register(OpDef("odd", 1, OPS["tanh"].infer, OPS["tanh"].numpy, kind="elementwise")).rows == "elementwise"
    finally:
        OPS.pop("odd", None)


@pytest.mark.parametrize(
    "axis, rank, want", [(None, 3, (0, 1, 2)), (-1, 3, (2,)), ((2, 0), 3, (0, 2)), ([-3, 1], 3, (0, 1))]
)
def test_axes_are_normalised_in_one_place(axis, rank, want):
    assert normalise_axes(axis, rank) == want


def test_a_repeated_axis_is_named():
    with pytest.raises(rc.ShapeError, match=r"repeated axis in \(1, -1\)"):
        normalise_axes((1, -1), 2)


def test_axes_of_reads_the_record():
    @rc.cell
    def c(x: Seq["B", 4, 6], h: State["B", 6]):
        s = rc.sum(x, axis=(-1, 0), keepdims=True)  # (1, 4, 1)
        p = rc.split(x, 2, axis=-2)[1]  # (B, 2, 6)
        h = rc.tanh(h + rc.mean(p, axis=1) + rc.sum(s))
        return {"h": h}

    nodes = {n.op: n for n in c.nodes()}
    assert axes_of(nodes["split"]) == (1,)
    assert axes_of(nodes["mean"]) == (1,)
    assert axes_of(nodes["tanh"]) == ()
    assert sorted(axes_of(n) for n in c.nodes() if n.op == "sum") == [(0, 1, 2), (0, 2)]


# ---------------------------------------------------------------- each pass follows the record


def test_grad_recomputes_what_the_record_calls_cheap(flip):
    @rc.cell
    def gated(x: Seq["B", 4], h: State["B", 4]):
        h = rc.sigmoid(x) * h  # mul reads sigmoid(x): recomputed from x when cheap, else saved per step
        return {"h": h}

    assert get_op("sigmoid").cheap and not any(n.op == "sigmoid" for n in derive(gated).residuals.values())
    flip("sigmoid", cheap=False)
    assert any(n.op == "sigmoid" for n in derive(gated).residuals.values())


def test_hoist_batches_over_time_what_the_record_calls_time_batchable(flip):
    @rc.cell
    def elman(x: Seq["B", 4], h: State["B", 4], W: Param[4, 4], U: Param[4, 4]):
        h = rc.tanh(x @ W + h @ U)
        return {"h": h}

    def in_body() -> int:
        (loop,) = _loops(elman)
        return sum(n.op == "matmul" for n in loop.attrs["body"].nodes())

    assert in_body() == 1  # x @ W left the loop: one GEMM over T*B rows
    flip("matmul", time_batchable=False)
    assert in_body() == 2


def test_rows_follows_the_record(flip):
    @rc.cell
    def elman(x: Seq["B", 4], h: State["B", 4], U: Param[4, 4]):
        h = rc.tanh(x + h @ U)
        return {"h": h}

    (loop,) = _loops(elman)
    assert rows.rows_plan(loop)[0] is not None
    flip("tanh", rows="serial", rows_why="it is declared to mix rows (a test)")
    plan, why = rows.rows_plan(loop)
    assert plan is None and why.endswith("tanh(...) : f32[B, 4]: it is declared to mix rows (a test)")


# ---------------------------------------------------------------- property: verdict == record

UNARY = sorted(n for n, op in OPS.items() if op.elementwise and op.arity == 1 and not op.attrs)
BINARY = sorted(n for n, op in OPS.items() if op.elementwise and op.arity == 2 and not op.attrs)
REDUCE = ["sum", "mean", "max"]
SOFTMAX = ["softmax", "log_softmax"]

_step = st.one_of(
    st.tuples(st.just("unary"), st.sampled_from(UNARY), st.none()),
    st.tuples(st.just("binary"), st.sampled_from(BINARY), st.sampled_from(["h", "v", "x"])),
    st.tuples(st.just("reduce"), st.sampled_from(REDUCE), st.sampled_from([None, 0, 1, -1, -2, (0, 1)])),
    st.tuples(st.just("softmax"), st.sampled_from(SOFTMAX), st.sampled_from([0, 1, -1, -2])),
)


def _touches_batch(kind: str, axis) -> bool:
    """By construction (values are (B, 4)): does this step work along axis 0?"""
    if kind not in ("reduce", "softmax"):
        return False
    return axis is None or (axis in (0, -2) if isinstance(axis, int) else 0 in axis)


@settings(max_examples=40, deadline=None)
@given(st.lists(_step, min_size=1, max_size=6))
def test_rows_verdict_agrees_with_the_records(steps):
    def build(x, h, v, U):
        a = rc.tanh(x + h @ U)
        operand = {"h": h, "v": v, "x": x}
        for kind, op, arg in steps:
            if kind == "unary":
                a = rc.dsl.apply(op, a)
            elif kind == "binary":
                a = rc.dsl.apply(op, a, operand[arg])
            elif kind == "reduce":
                a = a + rc.dsl.apply(op, a, axis=arg, keepdims=True)
            else:
                a = rc.dsl.apply(op, a, axis=arg)
        return rc.tanh(a)

    g = rc.Graph("random_rows")
    x, h = g.seq("x", ("B", 4)), g.state("h", ("B", 4))
    v, U = g.param("v", (4,)), g.param("U", (4, 4))
    h.define(build(x, h.prev(), v, U))
    g.output("y", h)
    cell = g.build()

    expected_serial = any(_touches_batch(kind, arg) for kind, _, arg in steps)
    by_record = any(get_op(n.op).rows == "axes" and 0 in axes_of(n) for n in cell.nodes())
    assert by_record == expected_serial
    (loop,) = _loops(cell)
    plan, why = rows.rows_plan(loop)
    assert (plan is None) == expected_serial, why
    if expected_serial:
        assert "it works along the batch axis" in why
