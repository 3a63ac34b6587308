"""Every VerifyError the cell verifier raises, each on a cell built by hand with exactly one fault.

Cells are built with `ir.graph.Node/Use/Cell` directly (not the DSL, which refuses most of these
mistakes earlier), so each test controls the whole graph. Each asserts the exact fragments that
name the place: the cell, the node as the printer names it, the op, the operands and their types.
"""

from __future__ import annotations

import re

import pytest

from ir import Cell, DType, Node, TensorType, UnknownOpError, Use, VerifyError, verify_cell

F32, F64, I32 = DType.f32, DType.f64, DType.i32


def ty(*shape, dtype: DType = F32) -> TensorType:
    return TensorType(dtype, tuple(shape))


def src(op: str, name: str, *shape, dtype: DType = F32) -> Node:
    return Node(op, (), {}, ty(*shape, dtype=dtype), name)


def node(op: str, *operands: Node | Use, type: TensorType | None, name: str | None = None, **attrs) -> Node:
    uses = [o if isinstance(o, Use) else Use(o) for o in operands]
    return Node(op, uses, attrs, type, name)


def elman(name: str = "c"):
    """x: f32[B, 4], W: f32[4, 8], U: f32[8, 8]; h = tanh(x@W + h[t-1]@U); out y = h. Returns the parts."""
    x, W, U = src("seq", "x", "B", 4), src("param", "W", 4, 8), src("param", "U", 8, 8)
    h = Node("tanh", (), {}, ty("B", 8), "h")
    xw = node("matmul", x, W, type=ty("B", 8), name="xw")
    hu = node("matmul", Use(h, 1), U, type=ty("B", 8), name="hu")
    s = node("add", xw, hu, type=ty("B", 8), name="s")
    h.inputs = (Use(s),)
    return x, W, U, xw, hu, s, h


def make(seqs, params, states, outputs=None, state_types=None, name: str = "c") -> Cell:
    types = {k: n.type for k, n in states.items()} if state_types is None else state_types
    return Cell(name, list(seqs), list(params), types, dict(states), dict(outputs or {}))


def well_formed() -> Cell:
    x, W, U, xw, hu, s, h = elman()
    return make([x], [W, U], {"h": h}, {"y": h})


def message(cell: Cell, error: type[VerifyError] = VerifyError) -> str:
    """The verifier's message for `cell`, checked for format artifacts left by a broken f-string."""
    with pytest.raises(error) as info:
        verify_cell(cell)
    text = str(info.value)
    assert not re.search(r"[{}]|!r|%s|\bf'|\bf\"", text), f"format artifact in {text!r}"
    return text


def test_helpers_build_a_well_formed_cell():
    cell = well_formed()
    assert verify_cell(cell) is cell


def test_reading_a_seq_one_step_back_is_allowed():
    x, W, U, xw, hu, s, h = elman()
    xw.inputs = (Use(x, 1), Use(W))
    verify_cell(make([x], [W, U], {"h": h}))


# ---------------------------------------------------------------- cycles


def test_algebraic_loop_names_the_nodes_of_the_cycle():
    x = src("seq", "x", "B", 8)
    a = Node("tanh", (), {}, ty("B", 8), "a")
    b = node("tanh", a, type=ty("B", 8), name="b")
    a.inputs = (Use(b),)  # a = tanh(b), b = tanh(a), both at delay 0
    text = message(make([x], [], {"a": a}, {"y": b}))
    assert text.startswith("cell 'c': algebraic loop: ")
    assert re.search(r"algebraic loop: (a -> b -> a|b -> a -> b) is a cycle of delay-0 edges", text)
    assert "every cycle must pass through a delay >= 1 (read a state as h[t-1])" in text
    with pytest.raises(VerifyError) as info:
        verify_cell(make([x], [], {"a": a}, {"y": b}))
    assert {id(n) for n in info.value.cycle} == {id(a), id(b)} and info.value.node in (a, b)  # the data, not the text


def test_algebraic_loop_of_one_node():
    a = Node("tanh", (), {}, ty("B", 8), "a")
    a.inputs = (Use(a),)
    assert "algebraic loop: a -> a is a cycle of delay-0 edges" in message(make([], [], {"a": a}))


def test_cycle_through_a_delay_is_not_a_loop():
    a = Node("tanh", (), {}, ty("B", 8), "a")
    b = node("tanh", Use(a, 1), type=ty("B", 8), name="b")
    a.inputs = (Use(b),)
    verify_cell(make([], [], {"a": a}))


# ---------------------------------------------------------------- types and shapes


def test_shape_mismatch_names_op_operands_and_shapes():
    x, W, U, xw, hu, s, h = elman()
    V = src("param", "V", 4, 4)
    xv = node("matmul", x, V, type=ty("B", 4), name="xv")
    s.inputs = (Use(xw), Use(xv))
    text = message(make([x], [W, U, V], {"h": h}))
    assert "cell 'c', node s (add): cannot broadcast [B, 8] with [B, 4] in add(xw: f32[B, 8], xv: f32[B, 4])" in text


def test_matmul_inner_dims_mismatch():
    x, W, U, xw, hu, s, h = elman()
    U2 = src("param", "U", 4, 8)
    hu.inputs = (Use(h, 1), Use(U2))
    text = message(make([x], [W, U2], {"h": h}))
    assert "node hu (matmul): matmul: inner dims differ: f32[B, 8] @ f32[4, 8] (8 != 4)" in text
    assert "in matmul(h: f32[B, 8], U: f32[4, 8])" in text


def test_dtype_mismatch_names_both_types():
    x, W, U, xw, hu, s, h = elman()
    W64 = src("param", "W", 4, 8, dtype=F64)
    xw.inputs = (Use(x), Use(W64))
    text = message(make([x], [W64, U], {"h": h}))
    assert "node xw (matmul): matmul: operand dtypes differ: f32[B, 4], f64[4, 8]" in text
    assert "in matmul(x: f32[B, 4], W: f64[4, 8])" in text


def test_float_op_on_integer_operand():
    n = src("seq", "n", "B", dtype=I32)
    y = node("tanh", n, type=ty("B", dtype=I32), name="y")
    text = message(make([n], [], {}, {"y": y}))
    assert "node y (tanh): tanh needs float operands; operand 0 is i32[B] in tanh(n: i32[B])" in text


def test_recorded_type_differs_from_inferred():
    x, W, U, xw, hu, s, h = elman()
    s.type = ty("B", 4)
    text = message(make([x], [W, U], {"h": h}))
    assert "node s (add): recorded type f32[B, 4] differs from the inferred f32[B, 8]" in text


def test_missing_recorded_type():
    x, W, U, xw, hu, s, h = elman()
    xw.type = None
    text = message(make([x], [W, U], {"h": h}))
    assert "node xw (matmul): recorded type None differs from the inferred f32[B, 8]" in text


def test_init_type_differs_from_the_state_node():
    x, W, U, xw, hu, s, h = elman()
    text = message(make([x], [W, U], {"h": h}, state_types={"h": ty("B", 4)}))
    assert (
        "cell 'c': state 'h': its init has type f32[B, 4] but its node h (tanh) has type f32[B, 8]; they must be equal"
        in text
    )


# ---------------------------------------------------------------- ops, arity, attributes


def test_unknown_op_names_node_and_op():
    x, W, U, xw, hu, s, h = elman()
    s.op = "frobnicate"
    text = message(make([x], [W, U], {"h": h}), UnknownOpError)
    assert text.startswith("cell 'c', node s (frobnicate): unknown op 'frobnicate'; known ops: ")
    assert "matmul" in text and "tanh" in text


def test_wrong_arity():
    x, W, U, xw, hu, s, h = elman()
    h.inputs = (Use(s), Use(xw))
    text = message(make([x], [W, U], {"h": h}))
    assert "node h (tanh): tanh takes 1 operand(s), got 2 in tanh(s: f32[B, 8], xw: f32[B, 8])" in text


def test_variadic_op_with_no_operand():
    y = node("concat", type=ty("B", 8), name="y", axis=-1)
    text = message(make([], [], {}, {"y": y}))
    assert "node y (concat): concat needs at least one operand, got none in concat()" in text


def test_unknown_attribute():
    x, W, U, xw, hu, s, h = elman()
    h.attrs = {"axis": 1}
    assert "node h (tanh): tanh: unknown attribute 'axis'; it takes none in tanh(s: f32[B, 8])" in message(
        make([x], [W, U], {"h": h})
    )


def test_missing_attribute():
    x = src("seq", "x", "B", 8)
    y = node("split", x, type=ty("B", 4), name="y", index=0)
    text = message(make([x], [], {}, {"y": y}))
    assert "node y (split): split: missing attribute 'parts' in split(x: f32[B, 8])" in text


def test_attribute_of_the_wrong_kind():
    x = src("seq", "x", "B", 8)
    y = node("split", x, type=ty("B", 4), name="y", parts="2", index=0)
    assert "node y (split): split: attribute parts='2' is not a valid int in split(x: f32[B, 8])" in message(
        make([x], [], {}, {"y": y})
    )


def test_attribute_outside_the_op_rule():
    x = src("seq", "x", "B", 8)
    y = node("split", x, type=ty("B", 4), name="y", parts=2, index=2)
    text = message(make([x], [], {}, {"y": y}))
    assert "node y (split): split: index 2 is outside 0..1 in split(x: f32[B, 8])" in text


# ---------------------------------------------------------------- references and delays


def test_reference_to_an_undeclared_param():
    x, W, U, xw, hu, s, h = elman()
    text = message(make([x], [W], {"h": h}))  # U is used but not declared
    assert "cell 'c', node U (param): reference to 'U', which is not a declared seq, param or static of this cell" in (
        text
    )


def test_negative_delay():
    x, W, U, xw, hu, s, h = elman()
    hu.inputs = (Use(h, -1), Use(U))
    text = message(make([x], [W, U], {"h": h}))
    assert "node hu (matmul): operand 0 reads h with delay -1; delays must be >= 0" in text
    assert "(a delay d reads the value d steps back)" in text


def test_delay_that_is_not_an_int():
    x, W, U, xw, hu, s, h = elman()
    hu.inputs = (Use(h, 1.5), Use(U))  # type: ignore[arg-type]
    assert "node hu (matmul): operand 0 has delay 1.5; delays are ints >= 0" in message(make([x], [W, U], {"h": h}))


def test_delay_on_a_param():
    x, W, U, xw, hu, s, h = elman()
    xw.inputs = (Use(x), Use(W, 1))
    text = message(make([x], [W, U], {"h": h}))
    assert (
        "node xw (matmul): operand 1 reads W (param) with delay 1, but only states and seqs can be delayed "
        "(a param is the same at every step)"
    ) in text


def test_delay_on_a_node_that_is_not_a_state():
    x, W, U, xw, hu, s, h = elman()
    s.inputs = (Use(xw, 2), Use(hu))
    text = message(make([x], [W, U], {"h": h}))
    assert "node s (add): operand 0 reads xw (matmul) with delay 2, but only states and seqs can be delayed" in text
    assert "(declare it as a state)" in text


def test_operand_that_is_not_a_node():
    x, W, U, xw, hu, s, h = elman()
    s.inputs = (Use(xw), Use(3))  # type: ignore[arg-type]
    assert "node s (add): operand 1 is 3, not a node of this graph" in message(make([x], [W, U], {"h": h}))


# ---------------------------------------------------------------- states


def test_recurrent_placeholder_never_defined():
    x, W, U, xw, hu, s, h = elman()
    g = src("state", "g", "B", 8)  # a state placeholder, read this step, never given a value
    s.inputs = (Use(xw), Use(g))
    text = message(make([x], [W, U], {"h": h}, state_types={"h": ty("B", 8), "g": ty("B", 8)}))
    assert "cell 'c': state 'g' is read (by s (add)) but never defined" in text
    assert "give it a value (State.define(...) or a return key)" in text


def test_recurrent_placeholder_read_one_step_back_never_defined():
    x, W, U, xw, hu, s, h = elman()
    g = src("state", "g", "B", 8)
    hu.inputs = (Use(g, 1), Use(U))
    text = message(make([x], [W, U], {"h": h}, state_types={"h": ty("B", 8), "g": ty("B", 8)}))
    assert "cell 'c': state 'g' is read (by hu (matmul)) but never defined" in text


def test_declared_state_never_defined():
    x, W, U, xw, hu, s, h = elman()
    text = message(make([x], [W, U], {"h": h}, state_types={"h": ty("B", 8), "c": ty("B", 8)}))
    assert "cell 'c': state 'c' is declared but never defined: give it a value" in text


# ---------------------------------------------------------------- names


def test_cell_name_not_an_identifier():
    x, W, U, xw, hu, s, h = elman()
    assert message(make([x], [W, U], {"h": h}, name="my-cell")) == "cell name 'my-cell' is not an identifier"


@pytest.mark.parametrize(
    "kind, bad",
    [("seq", "x 1"), ("param", "lambda"), ("state", "h-new"), ("output", "1y")],
)
def test_names_must_be_identifiers(kind, bad):
    x, W, U, xw, hu, s, h = elman()
    seqs, params, states, outputs = [x], [W, U], {"h": h}, {"y": h}
    if kind == "seq":
        x.name = bad
    elif kind == "param":
        W.name = bad
    elif kind == "state":
        states = {bad: h}
    else:
        outputs = {bad: h}
    text = message(make(seqs, params, states, outputs))
    assert f"cell 'c': {kind} name {bad!r} is not an identifier" in text


@pytest.mark.parametrize(
    "first, second",
    [("seq", "param"), ("state", "output"), ("param", "output")],
)
def test_duplicate_names(first, second):
    x, W, U, xw, hu, s, h = elman()
    seqs, params, outputs = [x], [W, U], {"y": h}
    clash = {"seq": "x", "param": "W", "state": "h"}[first]
    if second == "param":
        U.name = clash
    else:
        outputs = {clash: h}
    text = message(make(seqs, params, {"h": h}, outputs))
    assert f"cell 'c': name {clash!r} is used twice (as {first} and as {second})" in text


def test_state_defined_by_a_param_or_under_another_name():
    x, W, U, xw, hu, s, h = elman()
    text = message(make([x], [W, U], {"h": W}, state_types={"h": W.type}))
    assert "state 'h' is defined by W (param); a state's value must be a compute node named after it" in text


def test_program_only_source_in_a_cell():
    x, W, U, xw, hu, s, h = elman()
    z = Node("zeros", (), {"shape": ("B", 8), "dtype": DType.f32}, ty("B", 8))
    s.inputs = (Use(xw), Use(z))
    assert "a 'zeros' node only appears in Programs (after unrolling), not in a cell" in message(
        make([x], [W, U], {"h": h})
    )


def test_node_name_not_an_identifier():
    x, W, U, xw, hu, s, h = elman()
    xw.name = "a b"
    assert "node name 'a b' is not an identifier (optionally with an @suffix)" in message(make([x], [W, U], {"h": h}))


def test_ragged_constant():
    import rnncomp as rc

    with pytest.raises(rc.RnncompError, match=r"attribute value is not a rectangular array of numbers"):
        rc.constant([[1.0], [2.0, 3.0]])
