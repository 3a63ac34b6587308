"""The limits of ir.limits: deep nesting, huge literals, long delays and long names each end in one
rnncomp error naming the limit (never a RecursionError, int() ValueError, OverflowError or an LLVM
failure), and compile time stays linear in a delay up to the limit."""

import numpy as np
import pytest

import rnncomp as rc
from ir import DSLError, ParseError, RnncompError, VerifyError
from ir.limits import MAX_DELAY, MAX_NAME_LENGTH, MAX_NESTING
from ir.parser import parse_cell
from ir.program_parser import parse_program
from ir.symexpr import count

CELL = "cell c {{\n  seq x : f64[B, 4]\n  state h : f64[B, 4]\n  {body}\n  out y = h\n}}\n"


def cell_text(body: str) -> str:
    return CELL.format(body=body)


def nested_calls(n: int) -> str:
    return cell_text("h = " + "tanh(" * n + "add(x, h[t-1])" + ")" * n)


def test_calls_nested_to_the_limit_parse():
    assert parse_cell(nested_calls(MAX_NESTING - 1)).name == "c"


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 330, 5000])
def test_calls_nested_past_the_limit(depth):
    with pytest.raises(ParseError, match=r"calls nested more than 100 deep \(ir.limits.MAX_NESTING\)"):
        parse_cell(nested_calls(depth))


def test_constant_list_nested_past_the_limit():
    value = "[" * 1000 + "1.0" + "]" * 1000
    with pytest.raises(ParseError, match=r"a constant list nested more than 100 deep"):
        parse_cell(cell_text(f"h = add(add(x, constant(value={value})), h[t-1])"))


def test_long_source_line_is_shown_as_a_window():
    with pytest.raises(ParseError) as e:
        parse_cell(nested_calls(3000))
    shown = str(e.value).splitlines()[1]
    assert len(shown) <= 250 and "tanh(" in shown


@pytest.mark.parametrize("digits", [101, 5000])
def test_number_literal_too_long(digits):
    with pytest.raises(ParseError, match=rf"number literal of {digits} characters is above the limit of 100"):
        parse_cell(cell_text(f"h = tanh(add(sum(x, axis={'9' * digits}, keepdims=true), h[t-1]))"))


def test_int_above_int64():
    with pytest.raises(ParseError, match=r"an int of 20 digits is above the limit of 2\*\*63-1"):
        parse_cell(cell_text(f"h = tanh(add(sum(x, axis={'9' * 20}, keepdims=true), h[t-1]))"))
    with pytest.raises(ParseError, match=r"a dim of 25 digits is above the limit"):
        parse_cell(cell_text("h = tanh(add(x, h[t-1]))").replace("f64[B, 4]\n  state", f"f64[B, {'1' * 25}]\n  state"))


def test_unicode_digits_are_not_numbers():
    with pytest.raises(ParseError, match=r"unexpected character '²'"):
        parse_cell(cell_text("h = tanh(add(sum(x, axis=²), h[t-1]))"))
    with pytest.raises(VerifyError, match=r"bad symbolic expression '²'"):
        count("²")
    with pytest.raises(rc.ArgumentError, match="argument 'length'"):
        rc.compile(parse_cell(cell_text("h = tanh(add(x, h[t-1]))")), length="²")


def test_counts_are_bounded():
    with pytest.raises(VerifyError, match=r"an int above 2\*\*63-1 \(ir.limits.MAX_INT\)"):
        count("9" * 5000)
    with pytest.raises(VerifyError, match=r"an int above 2\*\*63-1"):
        count("T+" + "9" * 30)
    with pytest.raises(VerifyError, match=r"above the limit of 200 \(ir.limits.MAX_COUNT_CHARS\)"):
        count("(" * 3000 + "T" + ")" * 3000)
    assert count("((T))//4*4").evaluate({"T": 9}) == 8


def test_a_quoted_count_in_program_text_is_bounded():
    prog = rc.compile(parse_cell(cell_text("h = tanh(add(x, h[t-1]))")), length="T", unroll="loop")
    text = prog.ir("unroll")
    assert 'length="T"' in text or "length=T" in text or "length=" in text
    bad = text.replace('"T"', '"' + "(" * 150 + "T" + ")" * 150 + '"', 1)
    with pytest.raises(RnncompError, match=r"limit of 200 \(ir.limits.MAX_COUNT_CHARS\)|nested more than"):
        parse_program(bad)


def test_expand_dims_takes_an_int_axis():
    c = parse_cell(cell_text("h = tanh(add(x, sum(expand_dims(h[t-1], axes=0), axis=0)))"))
    prog = rc.compile(c, length=3, dtype="float64")
    x = np.random.default_rng(0).standard_normal((3, 2, 4))
    want = np.zeros((2, 4))
    for t in range(3):
        want = np.tanh(x[t] + want)
    np.testing.assert_allclose(prog(x=x)["h"], want, rtol=1e-12)
    _, grads = prog.value_and_grad("y", x=x)
    assert grads["x"].shape == x.shape


# ---------------------------------------------------------------- delays


def test_delay_above_the_limit_in_text():
    with pytest.raises(ParseError, match=r"h\[t-1001\]: delay 1001 is above the limit of 1000 steps"):
        parse_cell(cell_text(f"h = tanh(add(x, h[t-{MAX_DELAY + 1}]))"))
    with pytest.raises(ParseError, match=r"delay 100000000000000000000 is above the limit"):
        parse_cell(cell_text(f"h = tanh(add(x, h[t-{10**20}]))"))
    with pytest.raises(ParseError, match="number literal of 5000 characters"):
        parse_cell(cell_text(f"h = tanh(add(x, h[t-{'9' * 5000}]))"))


@pytest.mark.parametrize("d", [MAX_DELAY + 1, 10**20])
def test_delay_above_the_limit_in_the_dsl(d):
    g = rc.Graph("g")
    x = g.seq("x", ("B", 2))
    h = g.state("h", ("B", 2))
    with pytest.raises(DSLError, match=r"prev\(.*\): a delay of .* steps is above the limit of 1000"):
        h.prev(d)
    with pytest.raises(DSLError, match=r"above the limit of 1000"):
        x.prev(MAX_DELAY).prev(1)


def test_delay_above_the_limit_in_a_built_cell():
    from ir import Cell, Node, TensorType, Use, as_dtype, verify_cell

    t = TensorType(as_dtype("f64"), ("B", 2))
    x = Node("seq", (), {}, t, "x")
    h = Node("tanh", [Use(x)], {}, t, "h")
    h.inputs = (Use(h, 10**40),)
    with pytest.raises(VerifyError, match=r"delay ~2\*\*132 is above the limit of 1000 steps"):
        verify_cell(Cell("c", [x], [], {"h": t}, {"h": h}, {"y": h}))


def test_the_longest_delay_compiles_and_differentiates():
    """d = MAX_DELAY carried values: no recursion d deep (vjp ended in RecursionError at d=1000).
    That compile time is linear in d is measured by benchmarks/delay_compile.py."""
    c = parse_cell(cell_text(f"h = tanh(add(x, h[t-{MAX_DELAY}]))"))
    prog = rc.compile(c, length="T", unroll="loop", backend="numpy", dtype="float64")
    x = np.random.default_rng(0).standard_normal((4, 1, 4))
    out, backward = prog.vjp(x=x)
    grads = backward({"y": np.ones_like(x)})
    np.testing.assert_allclose(out["y"], np.tanh(x))  # d > T: every read is the zero init
    np.testing.assert_allclose(grads["x"], 1 - np.tanh(x) ** 2)


# ---------------------------------------------------------------- names


def test_long_names_are_refused():
    long = "a" * 2000
    text = cell_text("h = tanh(add(x, h[t-1]))").replace("seq x", "seq " + "a" * 500).replace("(x,", f"({'a' * 500},")
    with pytest.raises(VerifyError, match=rf"seq name 'aaaa.*is 500 characters long; .* {MAX_NAME_LENGTH} characters"):
        parse_cell(text)
    g = rc.Graph("g")
    x = g.seq(long, ("B", 2))
    h = g.state("h", ("B", 2))
    h.define(rc.tanh(x + h.prev(1)))
    g.output("y", h)
    with pytest.raises(VerifyError, match="is 2000 characters long"):
        g.build()
    with pytest.raises(VerifyError, match="cell name 'bbbb.*is 200 characters long"):
        parse_cell(cell_text("h = tanh(add(x, h[t-1]))").replace("cell c", "cell " + "b" * 200))
    name_ok = "n" * MAX_NAME_LENGTH
    ok = parse_cell(cell_text("h = tanh(add(x, h[t-1]))").replace("out y", f"out {name_ok}"))
    assert name_ok in ok.outputs


def test_name_token_too_long():
    with pytest.raises(ParseError, match=r"name token of 5000 characters is above the limit of 1000"):
        parse_cell(cell_text("h = tanh(add(x, h[t-1]))").replace("out y", "out " + "y" * 5000))
