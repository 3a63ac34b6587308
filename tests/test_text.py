"""The text form of a cell: print -> parse gives an equal cell, parse -> print gives the same text,
and every op in the table prints. (Parse errors, and the parser never evaluating: test_text_errors.py.)"""

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings

import rnncomp as rc
from ir import OPS, Cell, DType, Node, TensorType, TupleType, Use, VerifyError
from ir.parser import Parser, parse_cell, parse_cells
from ir.printer import format_attr, format_node, format_type, print_cell
from ir.program import Region
from ir.symexpr import Sym
from rnncomp import Param, Seq, State
from rnncomp.dsl import apply
from rnncomp.reference import run
from tests.cellgen import cells, random_cell
from tests.support import EXAMPLES, cell_of, random_args

# ruff: noqa: F821  ("B" in Seq["B", 4] is a dim symbol, which linters take for a forward reference)

F32 = DType.f32


def assert_round_trip(cell: Cell) -> str:
    """print -> parse is the same cell, and printing that gives the same text; returns the text."""
    text = print_cell(cell)
    again = parse_cell(text)
    assert again == cell, f"round trip changed the cell:\n{text}\n---\n{print_cell(again)}"
    assert print_cell(again) == text
    return text


# ---------------------------------------------------------------- hand-written cells


def elman() -> Cell:
    g = rc.Graph("elman")
    x = g.seq("x", ("B", 4))
    h = g.state("h", ("B", 8))
    W, U, b = g.param("W", (4, 8)), g.param("U", (8, 8)), g.param("b", (8,))
    h_new = rc.tanh(x @ W + h.prev() @ U + b)
    h.define(h_new)
    g.output("y", h_new)
    return g.build()


@rc.cell
def lstm(
    x: Seq["B", 16],
    h: State["B", 32],
    c: State["B", 32],
    Wx: Param[16, 128],
    Wh: Param[32, 128],
    b: Param[128],
):
    i, f, g, o = rc.split(x @ Wx + h @ Wh + b, 4)
    c_new = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
    h_new = rc.sigmoid(o) * rc.tanh(c_new)
    return {"h": h_new, "c": c_new, "y": h_new}


def three_node() -> Cell:
    g = rc.Graph("three_node")
    x = g.seq("x", ("B", 8))
    C = g.state("C", ("B", 16))
    M_A, M_B = g.param("M_A", (8 + 16, 16)), g.param("M_B", (16, 16))
    M_C, M_o = g.param("M_C", (16, 16)), g.param("M_o", (16, 4))
    A = rc.tanh(rc.concat([x, C.prev()]) @ M_A)
    Bv = rc.tanh(A @ M_B)
    C.define(rc.tanh(Bv @ M_C))
    g.output("y", C @ M_o)
    return g.build()


ELMAN_TEXT = """\
cell elman {
  seq   x : f32[B, 4]
  param W : f32[4, 8]
  param U : f32[8, 8]
  param b : f32[8]
  state h : f32[B, 8]
  %0 = matmul(x, W)      : f32[B, 8]
  %1 = matmul(h[t-1], U) : f32[B, 8]
  %2 = add(%0, %1)       : f32[B, 8]
  %3 = add(%2, b)        : f32[B, 8]
  h = tanh(%3)           : f32[B, 8]
  out y = h
}
"""


def test_elman_prints_as_expected():
    assert print_cell(elman()) == ELMAN_TEXT
    assert str(elman()) == ELMAN_TEXT


@pytest.mark.parametrize("make", [elman, lambda: lstm, three_node], ids=["elman", "lstm", "three_node"])
def test_hand_written_cells_round_trip(make):
    text = assert_round_trip(make())
    assert "[t-1]" in text


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_round_trip(name):
    assert_round_trip(cell_of(name))


def test_lstm_text_names_states_and_delayed_reads():
    text = print_cell(lstm)
    for line in ("  state h : f32[B, 32]", "  state c : f32[B, 32]", "  out y = h"):
        assert line + "\n" in text
    assert re.search(r"\n  %\d+ = split\(%\d+, parts=4, index=0, axis=-1\) +: f32\[B, 32\]\n", text)
    assert re.search(r"= matmul\(h\[t-1\], Wh\)", text) and re.search(r"\n  c = add\(%\d+, %\d+\) +: f32", text)


def test_the_design_sketch_parses_with_nested_calls_and_an_undeclared_state():
    sketch = """\
cell elman {
  seq   x : f32[B, 4]
  param W : f32[4, 8]
  param U : f32[8, 8]
  param b : f32[8]
  %0 = matmul(x, W)            : f32[B, 8]
  %1 = matmul(h[t-1], U)       : f32[B, 8]     # h read one step back
  %2 = add(%0, %1)             : f32[B, 8]
  h  = tanh(add(%2, b))        : f32[B, 8]     # or one op per line
  out y = h
}
"""
    cell = parse_cell(sketch)
    assert cell == elman()  # h is a state (read with a delay) whose init type is its own type
    assert print_cell(cell) == ELMAN_TEXT


def test_annotations_are_optional_and_nested_calls_inline():
    text = """\
cell c {
  seq x : f32[B, 4]
  param W : f32[4, 4]
  state h : f32[B, 4]     # a declared type lets h[t-1] be typed before h is
  h = tanh(add(matmul(h[t-1], W), x))
  out y = sigmoid(h)
}
"""
    cell = parse_cell(text)
    assert [n.op for n in cell.nodes()] == ["seq", "param", "matmul", "add", "tanh", "sigmoid"]
    assert all(n.name is None for n in cell.nodes()[2:4]) and cell.states["h"].name == "h"
    assert_round_trip(cell)


def test_forward_references_are_resolved_by_topology():
    text = """\
cell c {
  seq x : f32[B, 2]
  out y = %1
  %1 = tanh(%0) : f32[B, 2]
  %0 = add(h[t-2], x) : f32[B, 2]
  h = sigmoid(%1) : f32[B, 2]
}
"""
    cell = parse_cell(text)
    assert cell.states["h"].inputs[0].node is cell.outputs["y"]
    assert [n.op for n in cell.nodes()] == ["seq", "add", "tanh", "sigmoid"]


def test_state_order_other_than_declarations_prints_a_yield_line():
    @rc.cell
    def swap0(x: Seq["B", 2], h: State["B", 2], c: State["B", 2]):
        c_new = rc.tanh(x + c)
        return {"c": c_new, "h": rc.sigmoid(c_new + h)}

    # The DSL defines states in declaration order whatever the return order; a hand-built cell may not.
    assert list(swap0.states) == ["h", "c"]
    swap = Cell(
        "swap", swap0.seqs, swap0.params, swap0.state_types, {k: swap0.states[k] for k in ("c", "h")}, swap0.outputs
    )
    assert list(swap.states) == ["c", "h"] and list(swap.state_types) == ["h", "c"]
    text = assert_round_trip(swap)
    assert text.endswith("  yield c, h\n}\n")
    assert "yield" not in print_cell(lstm)


def test_states_without_a_declared_type_and_explicit_yield_bindings():
    t = TensorType(F32, ("B", 2))
    x = Node("seq", (), {}, t, "x")
    s = Node("tanh", (), {}, t, "s")
    s.inputs = (Use(s, 1),)
    cell = Cell("hand", [x], [], {}, {"s": s}, {"y": s})
    text = assert_round_trip(cell)
    assert "  state s\n" in text
    # a yield binding names any node for a state (the verifier then judges it)
    bound = "cell c {\n  seq x : f32[B, 2]\n  state h : f32[B, 2]\n  %0 = tanh(%0[t-1]) : f32[B, 2]\n"
    bound += "  yield h = %0\n}\n"
    with pytest.raises(VerifyError, match="state 'h' is defined by %0 \\(tanh\\); a state's value must be"):
        parse_cell(bound)


def test_an_invalid_cell_prints_and_parses_back_to_the_same_error():
    t = TensorType(F32, ("B", 4))
    x = Node("seq", (), {}, t, "x")
    placeholder = Node("state", (), {}, t, "h")
    y = Node("tanh", [Use(Node("add", [Use(x), Use(placeholder, 1)], {}, t))], {}, t)
    cell = Cell("broken", [x], [], {"h": t}, {}, {"y": y})
    text = print_cell(cell)
    assert re.search(r"\n  h = state\(\) +: f32\[B, 4\]\n", text)
    with pytest.raises(VerifyError, match="state 'h' is read .* but never defined"):
        parse_cell(text)


def test_a_cell_with_an_algebraic_loop_still_prints():
    t = TensorType(F32, ("B", 2))
    x = Node("seq", (), {}, t, "x")
    a = Node("add", (), {}, None)  # untyped, as a pass might leave it: printed without an annotation
    b = Node("tanh", [Use(a)], {}, t)
    a.inputs = (Use(x), Use(b))
    text = print_cell(Cell("loop", [x], [], {}, {}, {"y": b}))
    assert "\n  %1 = add(x, %0)\n" in text
    with pytest.raises(VerifyError, match="algebraic loop"):
        parse_cell(text)


# ---------------------------------------------------------------- every op in the table


def _param(g: rc.Graph, name: str, shape: tuple, dtype: str = "f32") -> rc.Value:
    return g.param(name, shape, dtype)


# op -> (graph, x: (B, 4), h[t-1]: (B, 4)) -> a value that uses it
OP_CASES = {
    **{
        op: lambda g, x, hp, op=op: apply(op, x)
        for op in ("identity", "neg", "tanh", "sigmoid", "relu", "exp", "log", "softplus", "transpose")
        + ("sqrt", "rsqrt", "abs", "erf")
    },
    **{
        op: lambda g, x, hp, op=op: apply(op, x, hp)
        for op in ("add", "sub", "mul", "div", "matmul_tn", "minimum", "maximum")
        + ("less", "greater", "less_equal", "greater_equal", "equal", "not_equal")
    },
    "pow": lambda g, x, hp: x**-1.5 + x**2,
    "gelu": lambda g, x, hp: rc.gelu(x) * rc.gelu(hp, approximate="tanh"),
    "where": lambda g, x, hp: apply("where", x, x, hp),
    "cast": lambda g, x, hp: apply("cast", x, to=DType.f64),
    "matmul": lambda g, x, hp: x @ _param(g, "W", (4, 3)),
    "sum": lambda g, x, hp: apply("sum", x, axis=(0, 1), keepdims=False),
    "mean": lambda g, x, hp: apply("mean", x, axis=None, keepdims=False),
    "max": lambda g, x, hp: apply("max", x, axis=-1, keepdims=True),
    "softmax": lambda g, x, hp: apply("softmax", x, axis=-1),
    "log_softmax": lambda g, x, hp: apply("log_softmax", x, axis=1),
    "concat": lambda g, x, hp: apply("concat", x, hp, axis=-1),
    "split": lambda g, x, hp: apply("split", x, parts=2, index=1, axis=-1),
    "slice": lambda g, x, hp: apply("slice", x, axis=-1, start=1, stop=3),
    "constant": lambda g, x, hp: x * rc.constant([[1.5, -0.0, 1e-300, 2.0]]) + rc.constant(1 / 3),
    "sum_to": lambda g, x, hp: apply("sum_to", x, shape=(1, 4)),
    "broadcast_to": lambda g, x, hp: apply("broadcast_to", _param(g, "b", (4,)), shape=("B", 4)),
    "expand_dims": lambda g, x, hp: apply("expand_dims", x, axes=(0,)),
    "pad": lambda g, x, hp: apply("pad", x, axis=-1, before=1, after=2),
    "max_bwd": lambda g, x, hp: apply("max_bwd", x, apply("max", x, axis=-1, keepdims=True), x, axis=-1, keepdims=True),
    "shift": lambda g, x, hp: apply("shift", x, _param(g, "init", (4,)), reverse=True),
    "linear_scan": lambda g, x, hp: apply("linear_scan", x, hp, _param(g, "init", (4,)), reverse=True),
    "last_step": lambda g, x, hp: apply("last_step", x, _param(g, "init", (4,)), reverse=True),
    "step": lambda g, x, hp: apply("step", x, index=0),
    "stack": lambda g, x, hp: apply("stack", x, hp),
    "dropout_mask": lambda g, x, hp: rc.dropout(x, 0.5) * rc.zoneout(x, hp, 0.25, per="sequence"),
    "philox_mask": lambda g, x, hp: (
        x * apply("philox_mask", _param(g, "t", (), "i64"), _param(g, "s", (4,), "i64"), p=0.5, shape=("B", 4))
    ),
    "select_active": lambda g, x, hp: apply(
        "select_active", _param(g, "t", (), "i32"), _param(g, "L", ("B",), "i32"), x, hp
    ),
}
EXEMPT = {
    "seq": "a declaration (every cell has one)",
    "param": "a declaration (every cell has one)",
    "static": "a declaration: tests/test_static.py round-trips a cell with one",
    "state": "the DSL's placeholder, only in invalid cells: test_an_invalid_cell_prints_and_parses_back_...",
    "input": "a Program region's parameter: test_program_only_ops_format",
    "item": "takes a tuple-typed operand, which only a loop makes: test_program_only_ops_format",
    "loop": "its body is a region, written by the program printer: test_program_only_ops_format",
    "zeros": "a source that only Programs hold (the cell verifier rejects it): test_program_only_ops_format",
}


def op_cell(op: str) -> Cell:
    g = rc.Graph(f"uses_{op}")
    x = g.seq("x", ("B", 4))
    h = g.state("h", ("B", 4))
    h.define(rc.tanh(x + h.prev()))
    g.output("y", OP_CASES[op](g, x, h.prev()))
    return g.build()


def test_every_op_in_the_table_has_a_text_test():
    untested = set(OPS) - set(OP_CASES) - set(EXEMPT)
    assert not untested, f"ops with no text round-trip case in OP_CASES: {sorted(untested)}"


@pytest.mark.parametrize("op", sorted(OP_CASES))
def test_every_op_round_trips(op):
    text = assert_round_trip(op_cell(op))
    assert f" = {op}(" in text


def test_program_only_ops_format():
    t = TensorType(F32, (4,))
    names = {}
    step = Node("input", (), {}, TensorType(DType.i64, ()), "t@0")
    names[id(step)] = "t@0"
    assert format_node(step, names) == "t@0 = input() : i64[]"
    tup = Node("loop", (), {}, None, None)
    names[id(tup)] = "%0"
    item = Node("item", [Use(tup)], {"index": 1}, t)
    names[id(item)] = "%1"
    assert format_node(item, names) == "%1 = item(%0, index=1) : f32[4]"
    tup.type = TupleType((TensorType(F32, ("B", 4)), TensorType(DType.i32, ())))
    assert format_node(tup, names) == "%0 = loop() : (f32[B, 4], i32[])"
    assert Parser("(f32[B, 4], i32[])").type() == tup.type
    assert format_type(None) == "?"  # an untyped value, in an invalid graph
    zeros = Node("zeros", (), {"shape": ("B", 4), "dtype": DType.f64}, TensorType(DType.f64, ("B", 4)))
    names[id(zeros)] = "%2"
    assert format_node(zeros, names) == "%2 = zeros(shape=(B, 4), dtype=f64) : f64[B, 4]"
    assert Parser("zeros(shape=(B, 4), dtype=f64)").call().attrs == {"shape": ("B", 4), "dtype": DType.f64}
    with pytest.raises(TypeError, match="Region"):
        format_attr(Region([], []), "any")
    # the loop's counts print as quoted symbolic expressions and read back through ir.symexpr
    assert format_attr(Sym("T//4*4"), "count") == '"T//4*4"' and format_attr(7, "count") == "7"
    call = Parser('loop(%0, body=b, length="T//4*4", start=3, n_carry=1, n_xs=0, n_buf=0)').call()
    assert call.attrs["length"] == Sym("T//4*4") and call.attrs["start"] == 3


# ---------------------------------------------------------------- attribute values


@pytest.mark.parametrize(
    "value, kind, text",
    [
        (3, "int", "3"),
        (-1, "int", "-1"),
        (0.1, "float", "0.1"),
        (1e-05, "float", "1e-05"),
        (-0.0, "float", "-0.0"),
        (float("inf"), "float", "inf"),
        (float("-inf"), "float", "-inf"),
        (float("nan"), "float", "nan"),
        (True, "bool", "true"),
        (False, "bool", "false"),
        (None, "axes", "none"),
        (DType.f64, "dtype", "f64"),
        ((0, 1), "axes", "(0, 1)"),
        ((-1,), "axes", "(-1,)"),
        ((), "shape", "()"),
        (("B", 16), "shape", "(B, 16)"),
        (2.0, "value", "2.0"),
        (((1.0, 2.0), (3.0, 4.0)), "value", "[[1.0, 2.0], [3.0, 4.0]]"),
        ((), "value", "[]"),
        (np.array([1, 2]), "value", "[1.0, 2.0]"),
        (Sym("T%4"), "count", '"T%4"'),
    ],
)
def test_attribute_values_print_and_read_back(value, kind, text):
    assert format_attr(value, kind) == text
    back = Parser(text).attr_value()
    if kind == "dtype":
        assert back.text == text
    elif kind == "value" and isinstance(value, np.ndarray):
        assert back == value.tolist()
    elif kind == "count":
        assert back.text == value.text
    elif kind == "value":
        assert np.array_equal(np.asarray(back, float), np.asarray(value, float))
    elif isinstance(value, float) and math.isnan(value):
        assert math.isnan(back)
    else:
        assert back == value and type(back) is type(value)
        if isinstance(value, float):
            assert math.copysign(1, back) == math.copysign(1, value)


def test_string_attribute_values():
    """Only a kind-"any" attribute holds a string: a bare identifier, else a quoted string without quotes inside."""
    assert format_attr("T") == "T" and Parser("T").attr_value().text == "T"
    assert format_attr("T // 4") == '"T // 4"' and Parser('"T // 4"').attr_value().text == "T // 4"
    with pytest.raises(TypeError, match="cannot print attribute value"):
        format_attr('say "hi"')


def test_extreme_and_non_finite_constants_round_trip_exactly():
    values = [0.1, 1 / 3, -0.0, 1e-300, 5e-324, 1e300, 1.7976931348623157e308]
    values += [float("inf"), float("-inf"), float("nan")]
    g = rc.Graph("consts")
    x = g.seq("x", ("B", len(values)))
    g.output("y", rc.cast(x, "f64") * rc.constant(values, "f64"))
    g.output("z", x * 2.5)
    cell = g.build()
    text = assert_round_trip(cell)
    spelled = "0.1, 0.3333333333333333, -0.0, 1e-300, 5e-324, 1e+300, 1.7976931348623157e+308, inf, -inf, nan"
    assert f"value=[{spelled}]" in text
    (const,) = [n for n in parse_cell(text).nodes() if n.op == "constant" and n.type.shape]
    got = np.array(const.attrs["value"])
    assert np.array_equal(got, np.array(values), equal_nan=True) and np.signbit(got[2])


# ---------------------------------------------------------------- random cells


@settings(max_examples=200, deadline=None)
@given(cells())
def test_random_cells_round_trip(cell):
    assert_round_trip(cell)


@settings(max_examples=30, deadline=None)
@given(cells(smooth=True, dtype="f64", n_states=(2, 3), max_delay=2))
def test_random_cells_honour_their_options(cell):
    ops = {n.op for n in cell.nodes()}
    assert not ops & {"relu", "max", "where"}
    assert all(n.type.dtype == DType.f64 for n in cell.nodes())
    assert 2 <= len(cell.states) <= 3
    assert all(u.delay <= 2 for n in cell.nodes() for u in n.inputs)
    assert_round_trip(cell)


@pytest.mark.parametrize("seed", range(40))
def test_random_cells_stay_finite_over_twenty_steps(seed):
    cell = random_cell(seed)
    args = random_args(cell, T=20, B=3, seed=seed, inits=True)
    with np.errstate(all="raise"):
        out = run(cell, strict=True, **args)
    assert all(np.all(np.isfinite(v)) for v in out.values())


def test_random_cell_is_reproducible_from_a_seed():
    assert random_cell(11) == random_cell(np.random.default_rng(11))
    assert print_cell(random_cell(11)) == print_cell(random_cell(11))


# ---------------------------------------------------------------- several cells, comments, blank lines


def test_parse_cells_reads_every_cell_and_skips_comments():
    text = "# two cells\n\n" + print_cell(elman()) + "\n   # between\n\n" + print_cell(three_node()) + "\n"
    assert parse_cells(text) == [elman(), three_node()]
    assert parse_cells("") == [] and parse_cells("# nothing\n\n") == []
