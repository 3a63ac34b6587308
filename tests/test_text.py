"""The text form of a cell: print -> parse gives an equal cell, parse -> print gives the same text,
every op in the table prints, every parse error says what and where (line:column and a caret),
and the parser never evaluates its input."""

import ast
import builtins
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings

import rnncomp as rc
from ir import OPS, Cell, DType, Node, ParseError, TensorType, TupleType, Use, VerifyError
from ir.parser import Parser, parse_cell, parse_cells, tokenize
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
    },
    **{op: lambda g, x, hp, op=op: apply(op, x, hp) for op in ("add", "sub", "mul", "div", "matmul_tn")},
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
    "step": lambda g, x, hp: apply("step", x, index=0),
    "stack": lambda g, x, hp: apply("stack", x, hp),
    "select_active": lambda g, x, hp: apply(
        "select_active", _param(g, "t", (), "i32"), _param(g, "L", ("B",), "i32"), x, hp
    ),
}
EXEMPT = {
    "seq": "a declaration (every cell has one)",
    "param": "a declaration (every cell has one)",
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


# ---------------------------------------------------------------- errors: what, where, and a caret


BASE = """\
cell elman {
  seq   x : f32[B, 4]
  param W : f32[4, 8]
  param U : f32[8, 8]
  param b : f32[8]
  state h : f32[B, 8]
  %0 = matmul(x, W) : f32[B, 8]
  %1 = matmul(h[t-1], U) : f32[B, 8]
  h = tanh(add(add(%0, %1), b)) : f32[B, 8]
  out y = h
}
"""


def edit(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def E(case_id: str, text: str, line: int, needle: str | None, message: str, exc: type = ParseError, nth: int = 0):
    """One error case: parsing `text` raises `exc` at (line, the column of `needle`) with `message`."""
    return pytest.param(text, exc, line, needle, message, nth, id=case_id)


def _in(line: str) -> str:
    """BASE with a line added before `out y = h`."""
    return edit("  out y = h\n", f"  {line}\n  out y = h\n")


NO_TYPES = "cell c {\n  seq x : f32[B, 4]\n  %1 = add(h[t-1], x)\n  h = tanh(%1)\n  out y = h\n}\n"
LATE_SEQ = edit("  out y = h\n", "  out y = h\n  seq z : f32[B]\n", edit("  %0 = matmul", "  z = matmul"))
BAD_NAME = "undefined name 'q' in an operand of matmul: not a seq, param or node of this cell"

ERRORS = [
    # characters and tokens
    E("unexpected-character", edit("%0 = matmul", "%0 = $matmul"), 7, "$", "unexpected character '$'"),
    E("unterminated-string", _in('%2 = loop(%0, length="T//4)'), 10, '"', "unterminated string"),
    E("missing-comma", edit("matmul(x, W)", "matmul(x W)"), 7, "W",
      "expected ',' or ')' in the call to matmul (opened at 7:14), found name 'W'"),
    E("unterminated-call", edit("matmul(x, W) : f32[B, 8]", "matmul(x, W"), 7, None,
      "unterminated call to matmul (opened at 7:14): expected ',' or ')', found end of line"),
    E("unterminated-type", edit("param U : f32[8, 8]", "param U : f32[8, 8 ="), 4, "=",
      "expected ',' or ']' in the type (opened at 4:16), found '='"),
    E("unterminated-tuple", _in("%2 = sum(%0, axis=(0 1))"), 10, "1)",
      "expected ',' or ')' in the tuple (opened at 10:21), found number '1'"),
    E("unterminated-tuple-type", edit(": f32[B, 8]\n  h", ": (f32[B, 8], f32[2] f32[3])\n  h"), 8, "f32[3]",
      "expected ',' or ')' in the tuple type (opened at 8:28), found name 'f32'"),
    E("unterminated-list", _in("%2 = constant(value=[1.0 2.0])"), 10, "2.0",
      "expected ',' or ']' in the list (opened at 10:23), found number '2.0'"),
    # the cell
    E("not-a-cell", "this is not IR\n", 1, "this", "expected 'cell NAME {', found name 'this'"),
    E("empty-input", "", 1, None, "expected 'cell NAME {', found end of input"),
    E("cell-without-name", "cell {\n}\n", 1, "{", "expected the cell's name after 'cell', found '{'"),
    E("cell-name-keyword", "cell if {\n}\n", 1, "if", "cell name 'if' is not an identifier (or is a Python keyword)"),
    E("cell-without-brace", "cell c (\n}\n", 1, "(", "expected '{' to open cell 'c', found '('"),
    E("missing-closing-brace", BASE[: BASE.rindex("}")], 11, None,
      "expected '}' to close cell 'elman' (opened at 1:12), found end of input"),
    E("trailing-garbage", BASE + "garbage\n", 12, "garbage",
      "expected end of input after the closing '}' of cell 'elman', found name 'garbage'"),
    E("trailing-brace", BASE.rstrip("\n") + " }\n", 11, "}",
      "expected end of input after the closing '}' of cell 'elman', found '}'", nth=1),
    E("two-cells", BASE + BASE, 12, "cell",
      "parse_cell reads exactly one cell, and a second one starts here (use parse_cells)"),
    # statements and declarations
    E("not-a-statement", _in("42"), 10, "42",
      "expected a statement (seq, param, state, out, yield or NAME = op(...)), found number '42'"),
    E("declared-name-keyword", edit("seq   x", "seq   if"), 2, "if",
      "seq name 'if' is not an identifier (or is a Python keyword)"),
    E("declaration-without-name", edit("seq   x", "seq   %3"), 2, "%3", "expected a seq name after 'seq', found '%3'"),
    E("declaration-without-type", edit("seq   x : f32", "seq   x f32"), 2, "f32",
      "expected ':' and a type after seq 'x', found name 'f32'"),
    E("declaration-trailing", edit("param b : f32[8]", "param b : f32[8] extra"), 5, "extra",
      "expected end of line after the declaration of param 'b', found name 'extra'"),
    E("output-without-equals", edit("out y = h", "out y h"), 10, "h", "expected '=' after 'out y', found name 'h'"),
    E("output-with-delay", edit("out y = h", "out y = h[t-1]"), 10, "h",
      "output 'y' names a node at this step; h[t-1] has a delay"),
    E("operand-expected", edit("out y = h", "out y = ,"), 10, ",",
      "expected an operand (a name, h[t-1] or op(...)), found ','"),
    E("definition-of-a-name", edit("%0 = matmul(x, W)", "%0 = x"), 7, "x",
      "a definition needs an op call, found the name x; write %0 = identity(x)"),
    # types
    E("bad-dtype", edit("param b : f32[8]", "param b : f16[8]"), 5, "f16",
      "unknown dtype 'f16': expected one of f32, f64, i32, i64"),
    E("type-without-bracket", edit("param b : f32[8]", "param b : f32(8)"), 5, "(",
      "expected '[' after dtype f32 (a type is like f32[B, 16]), found '('"),
    E("type-bad-dim", edit("param b : f32[8]", "param b : f32[-8]"), 5, "-",
      "expected a dim (an int or a symbol like B), found '-'"),
    E("type-expected", edit("param b : f32[8]", "param b : [8]"), 5, "[", "expected a type like f32[B, 16], found '['"),
    # names
    E("undefined-name", edit("matmul(x, W)", "matmul(q, W)"), 7, "q", BAD_NAME),
    E("undefined-state", edit("out y = h", "out y = g", edit("  h = tanh", "  g = tanh")), 8, "h[",
      "undefined name 'h' in an operand of matmul: not a seq, param or node of this cell; "
      "state 'h' is declared but no line defines it (h = op(...))"),
    E("output-read", edit("add(%0, %1)", "add(%0, y)"), 9, "y",
      "undefined name 'y' in an operand of add: not a seq, param or node of this cell; "
      "an output cannot be read, read the node it names"),
    E("defined-twice", edit("%1 = matmul", "%0 = matmul"), 8, "%0", "name '%0' is defined twice (first at 7:3)"),
    E("declared-twice", edit("param b", "param W"), 5, "W",
      "name 'W' is defined twice: as param here, and as param at 3:9"),
    E("defines-a-seq", edit("  %0 = matmul", "  x = matmul"), 7, "x", "name 'x' is defined twice (first at 2:9)"),
    E("seq-after-definition", LATE_SEQ, 11, "z", "name 'z' is defined twice (first at 7:3)"),
    # ops and attributes
    E("unknown-op-close", edit("tanh(", "tanhh("), 9, "tanhh", "unknown op 'tanhh' (did you mean 'tanh'?)"),
    E("unknown-op", edit("tanh(", "zzz("), 9, "zzz", "unknown op 'zzz'; known ops: add, ..."),
    E("unknown-attribute", edit("tanh(add(", "tanh(add(axis=1, "), 9, "axis",
      "add: unknown attribute 'axis'; it takes no attributes"),
    E("unknown-attribute-lists", _in("%2 = softmax(%0, dim=0)"), 10, "dim",
      "softmax: unknown attribute 'dim'; it takes axis"),
    E("attribute-twice", _in("%2 = split(%0, parts=2, parts=2, index=0)"), 10, "parts",
      "split: attribute 'parts' is given twice", nth=1),
    E("missing-attribute", _in("%2 = split(%0, index=0)"), 10, "split",
      "split: missing attribute 'parts'; it takes parts, index, axis"),
    E("operand-after-attribute", _in("%2 = softmax(axis=0, %0)"), 10, "%0",
      "softmax: operands come before attributes, found an operand after them"),
    E("attribute-not-int", _in("%2 = split(%0, parts=2.5, index=0)"), 10, "2.5",
      "split: attribute parts expects an int, found 2.5"),
    E("attribute-not-bool", _in("%2 = sum(%0, keepdims=1)"), 10, "1",
      "sum: attribute keepdims expects true or false, found 1"),
    E("attribute-not-axes", _in("%2 = sum(%0, axis=(B,))"), 10, "(B",
      "sum: attribute axis expects none, an int or a tuple of ints like (0, 1), found (B,)"),
    E("attribute-not-dtype", _in("%2 = cast(%0, to=f16)"), 10, "f16",
      "cast: attribute to expects a dtype (f32, f64, i32, i64), found f16"),
    E("tuple-item", _in("%2 = sum(%0, axis=(0, 1.5))"), 10, "1.5",
      "expected an int or a symbol in a tuple, found number '1.5'"),
    E("not-a-number", _in("%2 = constant(value=[1.0, x])"), 10, "x", "expected a number, found name 'x'"),
    E("no-value", _in("%2 = constant(value=)"), 10, ")", "expected an attribute value, found ')'"),
    E("ragged-list", _in("%2 = constant(value=[[1.0], [2.0, 3.0]])"), 10, "[[",
      "a constant's rows must all have the same length and depth (the list is ragged)"),
    E("bad-count", _in('%2 = loop(%0, length="T//", n_carry=0)'), 10, '"T',
      "loop: attribute length: bad symbolic expression 'T//': ends early"),
    # delays
    E("delay-not-t", edit("h[t-1]", "h[k-1]"), 8, "k",
      "expected a delay 't-<int>' in h[...], like h[t-1]; found name 'k'"),
    E("delay-not-int", edit("h[t-1]", "h[t-x]"), 8, "x",
      "expected an integer delay after 't-' in h[...], found name 'x'"),
    E("delay-float", edit("h[t-1]", "h[t-1.5]"), 8, "1.5",
      "expected an integer delay after 't-' in h[...], found number '1.5'"),
    E("delay-unclosed", edit("h[t-1]", "h[t-1"), 8, ",", "expected ']' to close the delay of h, found ','"),
    E("negative-delay", edit("h[t-1]", "h[t+1]"), 8, "+",
      "h[t+1] reads a future step: delays must be >= 0 (write h[t-1] for the previous step)"),
    # yield lines
    E("two-yields", _in("yield h\n  yield h"), 11, "yield", "a cell has at most one 'yield' line"),
    E("yield-not-a-name", _in("yield 3"), 10, "3", "expected a state name in 'yield', found number '3'"),
    E("yield-not-a-state", _in("yield h, q"), 10, "q", "yield names 'q', which is not a declared state"),
    E("yield-twice", _in("yield h, h"), 10, "h", "yield names state 'h' twice", nth=1),
    E("yield-binding-not-a-name", _in("yield h = 3"), 10, "3", "expected a name, found number '3'"),
    E("yield-delayed", _in("yield h = h[t-1]"), 10, "h[", "yield 'h' names a node at this step; h[t-1] has a delay"),
    # types, shapes, delays and cycles: VerifyErrors, with a place
    E("shape", edit("param U : f32[8, 8]", "param U : f32[7, 8]"), 8, "matmul",
      "matmul: inner dims differ: f32[B, 8] @ f32[7, 8] (8 != 7) in matmul(h[t-1]: f32[B, 8], U: f32[7, 8])",
      VerifyError),
    E("nested-operand", edit("add(add(%0, %1), b)", "add(add(%0, %1), W)"), 9, "add",
      "cannot broadcast [B, 8] with [4, 8] in add(add(...): f32[B, 8], W: f32[4, 8])", VerifyError),
    E("tuple-annotation", edit(": f32[B, 8]\n  h", ": (f32[B, 8], f32[2])\n  h"), 8, "(f32",
      "%1 = matmul(...) has type f32[B, 8], but is annotated (f32[B, 8], f32[2])", VerifyError),
    E("annotation", edit(": f32[B, 8]\n  h", ": f32[B, 9]\n  h"), 8, "f32[B, 9]",
      "%1 = matmul(...) has type f32[B, 8], but is annotated f32[B, 9]", VerifyError),
    E("algebraic-loop", edit("add(%0, %1)", "add(%0, h)"), 9, "tanh",
      "algebraic loop: h -> add(...) -> add(...) -> h is a cycle of delay-0 edges; every cycle must pass through a "
      "delay >= 1 (read a state as h[t-1])", VerifyError),
    E("delayed-param", edit("matmul(x, W)", "matmul(x, W[t-1])"), 7, "W",
      "W is read with delay 1 (W[t-1]), but only states and seqs can be delayed (a param is the same at every step)",
      VerifyError),
    E("delayed-node", edit("add(%0, %1)", "add(%0[t-1], %1)"), 9, "%0",
      "%0 is read with delay 1 (%0[t-1]), but only states and seqs can be delayed (declare it as a state)",
      VerifyError),
    E("state-never-defined", edit("state h : f32[B, 8]", "state h : f32[B, 8]\n  state g : f32[B, 8]"), 7, "g",
      "state 'g' is declared but never defined: add a line 'g = op(...)'", VerifyError),
    E("cannot-infer", NO_TYPES, 4, "tanh",
      "cannot infer the type of h: it is read through a delay before its type is known; declare the state with a "
      "type (state h : f32[...]) or annotate its definition", VerifyError),
    E("source-without-type", _in("%2 = seq()"), 10, "seq", "seq is a source op: annotate its type", VerifyError),
]  # fmt: skip


@pytest.mark.parametrize("text, exc, line, needle, message, nth", ERRORS)
def test_errors_say_what_and_where(text, exc, line, needle, message, nth):
    """The message, `line:column`, the source line and a caret under the column; a VerifyError found while
    parsing is rendered the same way and carries `line` and `column` too."""
    with pytest.raises(exc) as info:
        parse_cell(text)
    src = text.split("\n")[line - 1]
    col = len(src)
    if needle is not None:
        col = -1
        for _ in range(nth + 1):
            col = src.index(needle, col + 1)
    col += 1
    head, shown, caret = str(info.value).split("\n")
    if message.endswith("..."):  # a message whose tail changes as the op table grows
        assert head.startswith(f"{line}:{col}: {message[:-3]}"), head
    else:
        assert head == f"{line}:{col}: {message}"
    assert shown == "  " + src
    assert caret == "  " + " " * (col - 1) + "^"
    assert (info.value.line, info.value.column) == (line, col)


def test_errors_found_by_the_verifier_after_parsing():
    text = "cell c {\n  seq x : f32[B, 4]\n  state h : f32[B, 1]\n  h = tanh(add(x, h[t-1]))\n}\n"
    msg = "cell 'c': state 'h': its init has type f32[B, 1] but its node h (tanh) has type f32[B, 4]"
    with pytest.raises(VerifyError, match=re.escape(msg)):
        parse_cell(text)


# ---------------------------------------------------------------- the parser never evaluates


def test_the_parser_never_evaluates_text(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    payloads = [
        edit("matmul(x, W)", f"__import__('os').system('touch {marker}')"),
        edit("matmul(x, W)", "__import__(os)"),
        edit("out y = h", f"%2 = loop(%0, length=\"__import__('os').system('touch {marker}')\", n_carry=0)"),
        edit("param b : f32[8]", "param b : f32[8] ; import os"),
    ]
    for text in payloads:
        with pytest.raises(ParseError):
            parse_cell(text)
    assert not marker.exists()

    calls = []

    def forbidden(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the parser called eval/exec/compile/literal_eval")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, forbidden)
    monkeypatch.setattr(ast, "literal_eval", forbidden)
    try:
        cell = parse_cell(BASE)
        tokens = tokenize("x = 1e5 # c\n")
    finally:
        monkeypatch.undo()
    assert not calls and cell.name == "elman" and tokens[2].text == "1e5"
