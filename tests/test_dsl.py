"""The Python DSL: both forms build the same IR, every op function means what NumPy means, misuse is a clear error.

Values are checked through the oracle (`rnncomp.reference.run`) against NumPy written out here.
Error tests assert the message fragments that name the place: the function, the op and its
operand types, the user's file:line, the state or the nodes at fault.
"""

import math
import re
import sys

import numpy as np
import pytest

import rnncomp as rc
from ir import DType, RnncompError
from rnncomp import DSLError, Param, Seq, ShapeError, State, VerifyError
from rnncomp.reference import run
from tests.hand_rnns import load_example

# ruff: noqa: F821  ("B" in Seq["B", 4] is a dim symbol, which linters take for a forward reference)


def here() -> int:
    """The caller's line number, to check that an error names the user's line."""
    return sys._getframe(1).f_lineno


def raises(exc: type[Exception], *fragments: str):
    """Expect `exc` (an RnncompError) whose message holds every fragment, in order."""
    assert issubclass(exc, RnncompError)
    return pytest.raises(exc, match=".*".join(re.escape(f) for f in fragments))


# ---------------------------------------------------------------- the two forms agree


def test_three_node_decorator_equals_builder():
    @rc.cell(name="three_node")
    def f(
        x: Seq["B", 8],
        C: State["B", 16],
        M_A: Param[24, 16],
        M_B: Param[16, 16],
        M_C: Param[16, 16],
        M_o: Param[16, 4],
    ):
        A = rc.tanh(rc.concat([x, C]) @ M_A)
        Bv = rc.tanh(A @ M_B)
        C_new = rc.tanh(Bv @ M_C)
        return {"C": C_new, "y": C_new @ M_o}

    assert f == load_example("three_node").three_node


def elman_builder(H: int = 16, output_the_state: bool = False) -> rc.Cell:
    g = rc.Graph("elman")
    x = g.seq("x", ("B", 8))
    h = g.state("h", ("B", H))
    W, U, b = g.param("W", (8, H)), g.param("U", (H, H)), g.param("b", (H,))
    h_new = rc.tanh(x @ W + h.prev() @ U + b)
    h.define(h_new)
    g.output("y", h if output_the_state else h_new)  # `h` (delay 0) is h_new, through an identity node
    return g.build()


def test_elman_decorator_equals_builder():
    elman = load_example("elman").elman
    assert elman == elman_builder()
    assert elman != elman_builder(H=8)
    args = {"x": np.ones((2, 3, 8)), "W": np.eye(8, 16), "U": np.eye(16), "b": np.zeros(16)}
    want = run(elman, **args)
    for other in (elman_builder(), elman_builder(output_the_state=True)):
        got = run(other, **args)
        assert all(np.array_equal(got[k], want[k]) for k in want)


def test_equality_sees_delays_and_ops():
    @rc.cell(name="c")
    def one(x: Seq["B", 4], h: State["B", 4]):
        return {"h": rc.tanh(x + h)}

    @rc.cell(name="c")
    def two(x: Seq["B", 4], h: State["B", 4]):
        return {"h": rc.tanh(x + h.prev(2))}

    @rc.cell(name="c")
    def three(x: Seq["B", 4], h: State["B", 4]):
        return {"h": rc.sigmoid(x + h)}

    assert one != two and one != three and one == one


def test_state_reads_in_both_forms():
    """In `@rc.cell` a state argument is h[t-1]; in the builder `h` is h[t] and `h.prev(d)` is h[t-d]."""

    @rc.cell(name="c")
    def dec(x: Seq["B", 1], h: State["B", 1]):
        new = h + h.prev(2) + x
        return {"h": new, "y": new * 2}

    g = rc.Graph("c")
    x = g.seq("x", ("B", 1))
    h = g.state("h", ("B", 1))
    h.define(h.prev(1) + h.prev(2) + x)
    g.output("y", h * 2)
    assert dec == g.build()


# ---------------------------------------------------------------- Python numbers


def _ops(v: rc.Value) -> tuple:
    return (v.node.op,) + tuple(
        (u.node.op, u.node.attrs.get("value"), u.node.attrs.get("dtype")) for u in v.node.inputs
    )


@pytest.mark.parametrize("dtype", [DType.f32, DType.f64])
def test_python_numbers_become_constants_of_the_values_dtype(dtype):
    g = rc.Graph("nums")
    x = g.seq("x", ("B", 2), dtype)
    assert _ops(1 - x) == ("sub", ("constant", 1.0, dtype), ("seq", None, None))
    assert _ops(2 * x) == ("mul", ("constant", 2.0, dtype), ("seq", None, None))
    assert _ops(x / 2.0) == ("div", ("seq", None, None), ("constant", 2.0, dtype))
    assert _ops(x + 1) == ("add", ("seq", None, None), ("constant", 1.0, dtype))
    assert (1 - x).dtype == dtype


def test_python_numbers_compute():
    @rc.cell
    def nums(x: Seq["B", 3]):
        return {"a": 1 - x, "b": 2 * x, "c": x / 2.0, "d": 3 / (x + 4), "e": -x + 0.5, "f": +x - 1}

    x = np.random.default_rng(0).standard_normal((2, 2, 3))
    got = run(nums, x=x, strict=True)
    want = {"a": 1 - x, "b": 2 * x, "c": x / 2.0, "d": 3 / (x + 4), "e": -x + 0.5, "f": x - 1}
    assert all(np.array_equal(got[k], want[k]) for k in want)


# ---------------------------------------------------------------- every op function


def _softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# name -> (how the DSL writes it, how NumPy writes it); x is (B, 6) in (-1, 1), M is (6, 6)
OP_CASES = {
    "tanh": (lambda x, M: rc.tanh(x), lambda x, M: np.tanh(x)),
    "sigmoid": (lambda x, M: rc.sigmoid(x), lambda x, M: 1 / (1 + np.exp(-x))),
    "relu": (lambda x, M: rc.relu(x), lambda x, M: np.maximum(x, 0)),
    "exp": (lambda x, M: rc.exp(x), lambda x, M: np.exp(x)),
    "log": (lambda x, M: rc.log(x + 2), lambda x, M: np.log(x + 2)),
    "softplus": (lambda x, M: rc.softplus(x), lambda x, M: np.log1p(np.exp(x))),
    "neg": (lambda x, M: rc.neg(x), lambda x, M: -x),
    "where": (lambda x, M: rc.where(rc.relu(x), x, 0.5), lambda x, M: np.where(x > 0, x, 0.5)),
    "cast": (lambda x, M: rc.cast(rc.cast(x, "f64"), "float32"), lambda x, M: x),
    "constant": (lambda x, M: x + rc.constant([1.0, 2, 3, 4, 5, 6]), lambda x, M: x + np.arange(1.0, 7)),
    "concat": (lambda x, M: rc.concat([x, 2 * x], axis=1), lambda x, M: np.concatenate([x, 2 * x], axis=1)),
    "split": (lambda x, M: rc.split(x, 3)[1], lambda x, M: x[:, 2:4]),
    "slice": (lambda x, M: rc.slice(x, 1, 4), lambda x, M: x[:, 1:4]),
    "sum": (lambda x, M: rc.sum(x, axis=1, keepdims=True), lambda x, M: x.sum(axis=1, keepdims=True)),
    "mean": (lambda x, M: rc.mean(x, axis=-1), lambda x, M: x.mean(axis=-1)),
    "max": (lambda x, M: rc.max(x, axis=1), lambda x, M: x.max(axis=1)),
    "softmax": (lambda x, M: rc.softmax(x), lambda x, M: _softmax(x, -1)),
    "log_softmax": (lambda x, M: rc.log_softmax(x, axis=1), lambda x, M: np.log(_softmax(x, 1))),
    "matmul": (lambda x, M: rc.matmul(x, M), lambda x, M: x @ M),
    "operator @": (lambda x, M: x @ M, lambda x, M: x @ M),
    "sqrt": (lambda x, M: rc.sqrt(x + 1), lambda x, M: np.sqrt(x + 1)),
    "rsqrt": (lambda x, M: rc.rsqrt(x + 2), lambda x, M: 1 / np.sqrt(x + 2)),
    "abs": (lambda x, M: rc.abs(x), lambda x, M: np.abs(x)),
    "operator abs": (lambda x, M: abs(x), lambda x, M: np.abs(x)),
    "pow": (lambda x, M: rc.pow(x + 2, 1.5), lambda x, M: (x + 2) ** 1.5),
    "operator **": (lambda x, M: x**2 + (x + 2) ** -0.5, lambda x, M: x**2 + (x + 2) ** -0.5),
    "erf": (lambda x, M: rc.erf(x), lambda x, M: np.vectorize(math.erf)(x)),
    "gelu": (
        lambda x, M: rc.gelu(x) + rc.gelu(x, approximate="tanh"),
        lambda x, M: (
            x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))) / 2
            + x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))) / 2
        ),
    ),
    "layer_norm": (
        lambda x, M: rc.layer_norm(x, eps=1e-3, gain=rc.sum(M, axis=0), bias=rc.mean(M, axis=1)),
        lambda x, M: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-3) * M.sum(0) + M.mean(1),
    ),
    "dropout": (lambda x, M: rc.dropout(x, 0.5, per="sequence"), lambda x, M: x),  # no seed: the identity
    "zoneout": (lambda x, M: rc.zoneout(x, 2 * x, 0.25), lambda x, M: 0.25 * (2 * x) + 0.75 * x),  # expectation
    "minimum": (lambda x, M: rc.minimum(x, 0.25), lambda x, M: np.minimum(x, 0.25)),
    "maximum": (lambda x, M: rc.maximum(0.25, x), lambda x, M: np.maximum(0.25, x)),
    "less": (lambda x, M: rc.less(x, 0.0), lambda x, M: (x < 0) * 1.0),
    "greater": (lambda x, M: rc.greater(x, 0.0), lambda x, M: (x > 0) * 1.0),
    "less_equal": (lambda x, M: rc.less_equal(x, 0.5), lambda x, M: (x <= 0.5) * 1.0),
    "greater_equal": (lambda x, M: rc.greater_equal(x, 0.5), lambda x, M: (x >= 0.5) * 1.0),
    "equal": (lambda x, M: rc.equal(rc.relu(x), 0.0), lambda x, M: (x <= 0) * 1.0),
    "not_equal": (lambda x, M: rc.not_equal(rc.relu(x), 0.0), lambda x, M: (x > 0) * 1.0),
    "operator < > <= >=": (
        lambda x, M: (x < 0.1) + 2 * (x > 0.2) + 4 * (x <= -0.3) + 8 * (0.4 >= x),
        lambda x, M: (x < 0.1) + 2.0 * (x > 0.2) + 4.0 * (x <= -0.3) + 8.0 * (x <= 0.4),
    ),
}


def test_constant_exponents_only():
    g = rc.Graph("p")
    x = g.seq("x", ("B", 2))
    with pytest.raises(DSLError, match=r"2.0 \*\* <cell value>: the exponent of \*\* must be a constant"):
        2.0**x
    with pytest.raises(DSLError, match="pow: the exponent must be a constant .* got a cell value"):
        x**x
    with pytest.raises(DSLError, match="pow: the exponent must be a Python number, got 'two'"):
        rc.pow(x, "two")
    with pytest.raises(DSLError, match="gelu: approximate must be 'none' .* or 'tanh', got 'erf'"):
        rc.gelu(x, approximate="erf")


@pytest.mark.parametrize("name", list(OP_CASES))
def test_op_function(name):
    dsl, ref = OP_CASES[name]

    @rc.cell(name="case_" + "".join(ch if ch.isalnum() else "_" for ch in name))
    def c(x: Seq["B", 6], M: Param[6, 6]):
        return {"y": dsl(x, M)}

    rng = np.random.default_rng(1)
    x, M = rng.uniform(-1, 1, (3, 4, 6)), rng.standard_normal((6, 6))
    got = run(c, x=x, M=M, strict=True)["y"]
    want = np.stack([ref(x[t], M) for t in range(3)])
    assert got.shape == want.shape and np.max(np.abs(got - want)) <= 1e-12


def test_every_exported_op_function_is_covered():
    not_ops = {"cell", "compile", "with_dims"}
    functions = {n for n in rc.__all__ if callable(getattr(rc, n)) and n[0].islower()} - not_ops
    covered = {n for n in OP_CASES if not n.startswith("operator")}
    assert functions - covered == set()


def test_split_gives_equal_pieces_in_order():
    g = rc.Graph("s")
    x = g.seq("x", ("B", 12))
    parts = rc.split(x, 4)
    assert [p.shape for p in parts] == [("B", 3)] * 4
    assert [p.node.attrs["index"] for p in parts] == [0, 1, 2, 3]
    for i, p in enumerate(parts):
        g.output(f"p{i}", p)
    g.output("back", rc.concat(parts[::-1]))
    cell = g.build()
    x_ = np.arange(24.0).reshape(1, 2, 12)
    got = run(cell, x=x_)
    assert all(np.array_equal(got[f"p{i}"], x_[..., 3 * i : 3 * i + 3]) for i in range(4))
    assert np.array_equal(got["back"], np.concatenate(np.split(x_, 4, axis=-1)[::-1], axis=-1))


# ---------------------------------------------------------------- misuse: decorator


def test_unannotated_argument():
    def f(x: Seq["B", 4], h):
        return {"y": x}

    want = "@rc.cell f: argument 'h' needs an annotation Seq[...], State[...], Param[...] or Static[...]"
    with raises(DSLError, want):
        rc.cell(f)


def test_returning_a_non_dict():
    def f(x: Seq["B", 4], h: State["B", 4]):
        return x + h

    with raises(DSLError, "@rc.cell f: must return a non-empty dict", "got Value"):
        rc.cell(f)


def test_returning_a_non_value():
    def f(x: Seq["B", 4]):
        return {"y": 3}

    with raises(DSLError, "@rc.cell f: returned 'y' is 3, not a cell value"):
        rc.cell(f)


def test_state_not_returned():
    def f(x: Seq["B", 4], h: State["B", 4]):
        return {"y": x + h}

    with raises(DSLError, "@rc.cell f: state 'h' is not given a new value: return it under key 'h'"):
        rc.cell(f)


def test_misspelt_state_key_suggests_the_state():
    def f(x: Seq["B", 4], h: State["B", 4]):
        return {"hh": x + h}

    with raises(
        DSLError,
        "@rc.cell f: state 'h' is not given a new value: return it under key 'h' "
        "(the key 'hh' names no state, so it made a new per-step output: did you mean 'h'?)",
    ):
        rc.cell(f)


def _traced(body):
    def f(x: Seq["B", 4]):
        return {"y": body(x)}

    return f


def test_numpy_functions_on_a_value_name_the_rc_function():
    """np.tanh(v) and other NumPy functions cannot trace; the message names rc's function, at the user's line."""
    cases = [
        (lambda x: np.tanh(x), "np.tanh() on a cell value", "use rc.tanh(...)"),
        (lambda x: np.exp(x) + 1, "np.exp()", "use rc.exp(...)"),
        (lambda x: np.absolute(x), "np.absolute()", "use rc.abs(...)"),
        (lambda x: np.maximum(x, 0.0), "np.maximum()", "use rc.maximum(...)"),
        (lambda x: np.add.reduce(x), "np.add.reduce()", "use the operator +"),
        (lambda x: np.sin(x), "np.sin()", "rnncomp has no 'sin' op"),
        (lambda x: np.sum(x, axis=-1), "np.sum()", "use rc.sum(...)"),
        (lambda x: np.concatenate([x, x], axis=-1), "np.concatenate()", "use rc.concat(...)"),
        (lambda x: np.where(x, x, 0.0), "np.where()", "use rc.where(...)"),
        (lambda x: np.dot(x, x), "np.dot()", "use rc.matmul(...)"),
    ]
    for body, what, hint in cases:
        with raises(DSLError, f"{__file__}:", what, "NumPy functions compute on arrays and cannot trace", hint):
            rc.cell(_traced(body))


def test_numpy_operators_with_a_value_still_build_ops():
    """`np.float64(2) * v` and `array < v` reach NumPy's ufuncs; they mean the DSL's ops."""

    @rc.cell
    def f(x: Seq["B", 2]):
        return {"y": np.float64(2.0) * x - np.float32(1.0), "z": np.float64(0.5) < x}

    x = np.array([[[0.25, 1.0]]])
    out = run(f, x=x)
    np.testing.assert_array_equal(out["y"], 2 * x - 1)
    np.testing.assert_array_equal(out["z"], (0.5 < x).astype(float))

    def h(x: Seq["B", 2]):
        return {"y": np.ones(2) * x}

    with raises(DSLError, "mul: operand is a NumPy array of shape (2,), not a cell value", "rc.constant(array)"):
        rc.cell(h)


def test_return_key_naming_an_input():
    def f(x: Seq["B", 4], h: State["B", 4]):
        return {"h": x + h, "x": 2 * x}

    with raises(DSLError, "@rc.cell f: return key 'x' names an input, not a state or a new output"):
        rc.cell(f)


def test_matmul_shape_mismatch_names_op_shapes_and_line():
    line = []

    def f(x: Seq["B", 4], W: Param[5, 8]):
        line.append(here() + 1)
        return {"y": x @ W}

    with raises(
        ShapeError,
        f"{__file__}:",
        "matmul: inner dims differ: f32[B, 4] @ f32[5, 8] (4 != 5) in matmul(x: f32[B, 4], W: f32[5, 8])",
    ) as e:
        rc.cell(f)
    assert str(e.value).startswith(f"{__file__}:{line[0]}: ")


def test_prev_zero():
    line = []

    def f(x: Seq["B", 4], h: State["B", 4]):
        line.append(here() + 1)
        return {"h": x.prev(0) + h}

    with raises(DSLError, "prev(0): the delay must be an int >= 1") as e:
        rc.cell(f)
    assert str(e.value).startswith(f"{__file__}:{line[0]}: ")
    g = rc.Graph("g")
    with raises(DSLError, f"{__file__}:", "prev(0): the delay must be an int >= 1"):
        g.state("h", ("B", 4)).prev(0)
    with raises(DSLError, "prev(1.5): the delay must be an int >= 1"):
        g.seq("x", ("B", 4)).prev(1.5)


def test_prev_on_a_param():
    def f(x: Seq["B", 4], h: State["B", 4], W: Param[4, 4]):
        return {"h": x @ W.prev() + h}

    with raises(DSLError, f"{__file__}:", "prev() reads a sequence input or a state at an earlier step; W is a param"):
        rc.cell(f)


def test_mixing_dtypes():
    def f(x: Seq["B", 4], h: State["B", 4, "f64"]):
        return {"h": x + h}

    with raises(
        ShapeError,
        f"{__file__}:",
        "add: operand dtypes differ: f32[B, 4], f64[B, 4] in add(x: f32[B, 4], h[t-1]: f64[B, 4])",
    ):
        rc.cell(f)


def test_state_type_mismatch_in_the_decorator():
    """A new state value of the wrong shape names the state, both types and the line that computed it."""
    lines = []

    def f(x: Seq["B", 4], h: State["B", 8]):
        lines.append(here() + 1)
        new = rc.tanh(x)
        return {"h": new}

    with raises(ShapeError, "state 'h' is given a new value of type f32[B, 4], but the state is f32[B, 8]") as e:
        rc.cell(f)
    decl = f.__code__.co_firstlineno
    assert str(e.value).startswith(f"{__file__}:{lines[0]}: "), str(e.value)
    assert f"(declared at {__file__}:{decl})" in str(e.value)
    assert "(cell 'f')" in str(e.value)


def test_truth_value_and_foreign_operands():
    def branch(x: Seq["B", 4]):
        if x:
            pass
        return {"y": x}

    with raises(
        DSLError,
        f"{__file__}:",
        "a cell value has no truth value at trace time: Python control flow (`if`, `while`, `and`, `or`, `not`) "
        "runs once, when the cell is traced, and cannot depend on a value; use rc.where(cond, a, b)",
    ):
        rc.cell(branch)

    def compare(x: Seq["B", 4]):
        if x > 0:
            return {"y": x}
        return {"y": -x}

    with raises(DSLError, "no truth value at trace time", "use rc.where(cond, a, b)"):
        rc.cell(compare)

    def text(x: Seq["B", 4]):
        return {"y": x + "a"}

    with raises(DSLError, f"{__file__}:", "add: operand 'a' is neither a cell value nor a Python number"):
        rc.cell(text)


def test_bad_cell_name():
    with raises(DSLError, "cell name 'my cell' is not an identifier"):
        rc.cell(name="my cell")(lambda x: {"y": x})


# ---------------------------------------------------------------- misuse: builder


def test_state_defined_twice():
    g = rc.Graph("g")
    x, C = g.seq("x", ("B", 4)), g.state("C", ("B", 4))
    C.define(x + C.prev())
    with raises(DSLError, "state 'C' is defined twice") as e:
        line = here() + 1
        C.define(x)
    assert str(e.value) == f"{__file__}:{line}: state 'C' is defined twice"


def test_bad_names():
    with raises(DSLError, "cell name 'my cell' is not an identifier"):
        rc.Graph("my cell")
    g = rc.Graph("g")
    with raises(DSLError, "seq name 'x y' is not an identifier") as e:
        line = here() + 1
        g.seq("x y", ("B", 4))
    assert str(e.value) == f"{__file__}:{line}: seq name 'x y' is not an identifier"
    with raises(DSLError, "param name 'class' is not an identifier"):
        g.param("class", (4,))
    with raises(DSLError, "output name '1y' is not an identifier"):
        g.output("1y", g.seq("x", ("B", 4)))
    with raises(DSLError, "name 'x' is already used in cell 'g'"):
        g.param("x", (4,))
    with raises(DSLError, "seq 'z': shape ('B', -1): dim -1 is negative"):
        g.seq("z", ("B", -1))


def test_undefined_state_in_the_builder():
    g = rc.Graph("g")
    x, C = g.seq("x", ("B", 4)), g.state("C", ("B", 4))
    g.output("y", x + C.prev())
    with raises(VerifyError, "cell 'g': state 'C' is read", "but never defined"):
        g.build()


def test_declared_state_never_defined_nor_read():
    g = rc.Graph("g")
    x = g.seq("x", ("B", 4))
    g.state("C", ("B", 4))
    g.output("y", 2 * x)
    with raises(VerifyError, "cell 'g': state 'C' is declared but never defined"):
        g.build()


def test_algebraic_loop_names_the_cycle():
    """The cycle is told by the user's own names and lines, not by print-time names like %0."""
    g = rc.Graph("g")
    C, M = g.state("C", ("B", 4)), g.param("M", (4, 4))
    line = here() + 1
    C.define(rc.tanh(C @ M))
    with raises(VerifyError, "cell 'g': algebraic loop: a cycle of delay-0 edges") as e:
        g.build()
    msg = str(e.value)
    assert "%0" not in msg
    at = f"{__file__}:{line}"
    assert f"  C (tanh) at {at}\n  -> matmul at {at}\n  -> C (tanh) at {at}\n" in msg, msg
    assert "read a state one step back with .prev()" in msg


def test_init_and_state_type_mismatch_in_the_builder():
    g = rc.Graph("g")
    decl = here() + 1
    x, C = g.seq("x", ("B", 4)), g.state("C", ("B", 8), "f64")
    line = here() + 1
    v = rc.tanh(x)
    with raises(ShapeError, "state 'C' is given a new value of type f32[B, 4], but the state is f64[B, 8]") as e:
        C.define(v)
    assert str(e.value).startswith(f"{__file__}:{line}: ")
    assert f"(declared at {__file__}:{decl})" in str(e.value)


def test_builder_value_errors():
    g = rc.Graph("g")
    x, C = g.seq("x", ("B", 4)), g.state("C", ("B", 4))
    with raises(DSLError, "state 'C' must be defined by a cell value, got 1.0"):
        C.define(1.0)
    with raises(DSLError, "output 'y' must be a cell value, got"):
        g.output("y", np.zeros(4))
    with raises(DSLError, "concat takes a non-empty list of values"):
        rc.concat([])
    with raises(
        ShapeError, "split: dim 4 of f32[B, 4] along axis -1 does not divide into 3 parts in split(x: f32[B, 4])"
    ):
        rc.split(x, 3)
    p = g.param("p", (3,))
    with raises(ShapeError, "cannot broadcast [B, 4] with [3] in add(x: f32[B, 4], p: f32[3])") as e:
        line = here() + 1
        x + p
    assert str(e.value).startswith(f"{__file__}:{line}: ")
