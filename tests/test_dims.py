"""Size-generic cells (issue 20 point 2): dims that are expressions of symbols (`Param["H", "4*H"]`),
in one canonical form; split and concat of symbolic dims; binding from the arrays at call time or by
`rc.compile(..., dims=...)`; every error message; agreement with the oracle at two sizes."""

from __future__ import annotations

import numpy as np
import pytest

import rnncomp as rc
from ir import ShapeError, VerifyError, dimexpr
from ir.parser import parse_cell
from ir.shapes import as_shape, substitute, symbols_of
from rnncomp import Param, Seq, State, reference
from tests.gradcheck import check_vjp
from tests.support import max_err


@rc.cell
def lstm(
    x: Seq["B", "I"],  # noqa: F821
    h: State["B", "H"],  # noqa: F821
    c: State["B", "H"],  # noqa: F821
    Wx: Param["I", "4*H"],  # noqa: F821
    Wh: Param["H", "4*H"],  # noqa: F821
    b: Param["4*H"],  # noqa: F821
):
    i, f, g, o = rc.split(x @ Wx + h @ Wh + b, 4)
    c = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
    h = rc.sigmoid(o) * rc.tanh(c)
    return {"h": h, "c": c, "y": h}


@rc.cell
def halves(x: Seq["B", "I"], h: State["B", "H"], W: Param["I+H", "H"]):  # noqa: F821
    """concat of two symbolic dims (I+H), and split of a plain symbol (H into H//2 halves)."""
    h = rc.tanh(rc.concat([x, h], axis=-1) @ W)
    a, b = rc.split(h, 2)
    return {"h": h, "y": rc.concat([b, a], axis=-1)}


def lstm_args(n_in: int, H: int, T: int = 4, B: int = 2, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((T, B, n_in)),
        "Wx": rng.standard_normal((n_in, 4 * H)) * 0.5,
        "Wh": rng.standard_normal((H, 4 * H)) * 0.5,
        "b": rng.standard_normal(4 * H) * 0.5,
    }


def halves_args(n_in: int, H: int, T: int = 4, B: int = 2, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((T, B, n_in)), "W": rng.standard_normal((n_in + H, H)) * 0.5}


def message(fn) -> str:
    with pytest.raises(rc.RnncompError) as e:
        fn()
    return str(e.value)


# ---------------------------------------------------------------- canonical form


@pytest.mark.parametrize(
    "text, canon",
    [
        ("4*H", "4*H"),
        ("H*4", "4*H"),
        ("H+H", "2*H"),
        ("2*H-H", "H"),
        ("H-H", 0),
        ("3+1", 4),
        ("(H+I)*2", "2*H+2*I"),
        ("I+H", "H+I"),
        ("-H+I", "I-H"),
        ("4*H//4", "H"),
        ("H/4", "H//4"),
        ("(H+I)//2", "(H+I)//2"),
        ("6*H//4", "3*H//2"),
        ("H+1", "H+1"),
        ("(H - 2) * 3", "3*H-6"),
    ],
)
def test_dim_expressions_have_one_spelling(text, canon):
    assert dimexpr.canonical(text) == canon
    assert as_shape(("B", text)) == ("B", canon)
    if isinstance(canon, str):
        assert dimexpr.canonical(canon) == canon  # the canonical text reads back as itself


def test_sum_divide_value_and_symbols():
    assert dimexpr.add("H", "H") == "2*H" and dimexpr.add("H", "I", 3) == "H+I+3"
    assert dimexpr.divide("4*H", 4) == "H" and dimexpr.divide("H", 4) == "H//4"
    assert dimexpr.value("4*H", {"H": 256}) == 1024 and dimexpr.value("(H+I)//2", {"H": 3, "I": 5}) == 4
    assert substitute(("B", "4*H"), {"H": 8}) == ("B", 32) and substitute(("B", "4*H"), {}) == ("B", "4*H")
    assert symbols_of(("B", "(H+I)//2", 3)) == {"B", "H", "I"}


@pytest.mark.parametrize(
    "dim, want",
    [
        (
            "H*I",
            "dim expression 'H*I' is not linear: a product of symbols (a dim may multiply a symbol by an int only)",
        ),
        ("H%2", "dim expression 'H%2': '%' is not allowed in a dim (only + - * //)"),
        ("H//0", "dim expression 'H//0': '//' must divide by a positive int constant"),
        ("H//I", "dim expression 'H//I': '//' must divide by a positive int constant"),
        ("1//2", "dim 1//2 is 1/2, not a whole number"),
        ("2-5", "dim 2-5 is negative (-3)"),
        ("x y", "bad dim expression 'x y': unexpected 'y'"),
        ("4*H+", "bad dim expression '4*H+': ends early"),
        ("(H+1", "bad dim expression '(H+1': missing ')'"),
        ("H$", "bad dim expression 'H$' at column 2"),
        ("H+class", "symbol 'class' in dim 'H+class' is not an identifier"),
        ("9" * 30 + "*H", "an int above 2**63-1 (ir.limits.MAX_INT)"),
        ("H+" * 150 + "H", "dim expression of 301 characters is above the limit of 200 (ir.limits.MAX_COUNT_CHARS)"),
    ],
)
def test_bad_dim_expressions_are_errors(dim, want):
    with pytest.raises(VerifyError) as e:
        as_shape(("B", dim))
    assert f"shape ('B', {dim!r}): " in str(e.value) and want in str(e.value)


def test_dsl_names_the_argument_with_a_bad_dim():
    with pytest.raises(rc.DSLError) as e:

        @rc.cell
        def bad(x: Seq["B", "H*H"]):  # noqa: F821
            return {"y": x}

    assert "seq 'x': shape ('B', 'H*H'): dim expression 'H*H' is not linear" in str(e.value)


def test_dims_are_equal_when_their_forms_are():
    """matmul I x 4H, adds of 4H and 2*H+2*H: one dim, however it was written."""

    @rc.cell
    def c(x: Seq["B", "I"], W: Param["I", "2*H+2*H"], b: Param["H*4"]):  # noqa: F821
        return {"y": x @ W + b}

    assert c.outputs["y"].type.shape == ("B", "4*H")


# ---------------------------------------------------------------- verifier


def test_split_and_concat_work_on_symbolic_dims():
    types = {str(n.type) for n in lstm.nodes()}
    assert "f32[B, 4*H]" in types and "f32[B, H]" in types
    types = [str(n.type) for n in halves.nodes() if n.op in ("concat", "split")]
    assert types.count("f32[B, H+I]") == 1 and "f32[B, H//2]" in types and "f32[B, 2*(H//2)]" not in types


def test_split_that_can_never_divide_is_a_verify_error():
    with pytest.raises(ShapeError) as e:

        @rc.cell
        def odd(x: Seq["B", "2*H+1"]):  # noqa: F821
            return {"y": rc.split(x, 2)[0]}

    assert (
        "split: dim 2*H+1 of f32[B, 2*H+1] along axis -1 does not divide into 2 parts: "
        "2*H+1 is not a multiple of 2 for any value of H"
    ) in str(e.value)


def test_slice_still_needs_a_concrete_dim():
    with pytest.raises(ShapeError) as e:

        @rc.cell
        def sl(x: Seq["B", "4*H"]):  # noqa: F821
            return {"y": rc.slice(x, 0, 2)}

    assert "slice along axis 1 of f32[B, 4*H] needs a concrete dim, got symbol '4*H'" in str(e.value)


# ---------------------------------------------------------------- text form


@pytest.mark.parametrize("cell", [lstm, halves], ids=["lstm", "halves"])
def test_print_parse_round_trip(cell):
    text = str(cell)
    assert "f32[I, 4*H]" in text or "f32[H+I, H]" in text
    assert str(parse_cell(text)) == text


def test_parser_reads_any_spelling_and_prints_the_canonical_one():
    text = (
        "cell c {\n  seq x : f32[B, H + H]\n  param W : f32[2 * H, (H+I)//2]\n"
        "  %0 = matmul(x, W) : f32[B, (I+H)/2]\n  out y = %0\n}\n"
    )
    c = parse_cell(text)
    assert "seq   x : f32[B, 2*H]" in str(c) and "f32[B, (H+I)//2]" in str(c)


@pytest.mark.parametrize(
    "typ, want",
    [
        ("f32[4*H, (H+I]", "2:26: expected ')' to close the dim expression, found ']'"),
        ("f32[4*H+, 2]", "2:17: shape ('4*H+',): bad dim expression '4*H+': ends early"),
        ("f32[H*I]", "2:17: shape ('H*I',): dim expression 'H*I' is not linear"),
    ],
)
def test_parser_errors_point_at_the_dim(typ, want):
    with pytest.raises(rc.RnncompError) as e:
        parse_cell(f"cell c {{\n  param W : {typ}\n  out y = W\n}}\n")
    assert str(e.value).startswith(want)


# ---------------------------------------------------------------- running at two sizes


@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
@pytest.mark.parametrize("n_in, H", [(3, 4), (2, 6)])
def test_lstm_written_once_runs_at_two_sizes(backend, n_in, H):
    prog = rc.compile(lstm, backend=backend, dtype="float64")
    args = lstm_args(n_in, H)
    assert max_err(prog(**args), reference.run(lstm, **args)) < 1e-12


@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
def test_concat_and_split_of_symbols_run_at_two_sizes(backend):
    prog = rc.compile(halves, backend=backend, dtype="float64", unroll=2)
    for n_in, H in [(3, 4), (1, 6)]:
        args = halves_args(n_in, H)
        assert max_err(prog(**args), reference.run(halves, **args)) < 1e-12


def test_generic_lstm_is_the_example_lstm():
    """examples/lstm.py at its sizes (I=16, H=32) and the generic cell give the same numbers."""
    from tests.support import cell_of

    fixed = cell_of("lstm")
    args = lstm_args(16, 32, T=3)
    got = rc.compile(lstm, backend="numpy", dtype="float64")(**args)
    assert max_err(got, rc.compile(fixed, backend="numpy", dtype="float64")(**args)) == 0.0


@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
def test_gradients_at_two_sizes_agree_with_the_oracle(backend):
    prog = rc.compile(lstm, backend=backend, dtype="float64")
    oracle = rc.compile(lstm, backend="numpy", dtype="float64", unroll="full")
    for n_in, H in [(3, 2), (2, 3)]:
        args = lstm_args(n_in, H, T=3)
        out, bwd = prog.vjp(**args)
        cot = {k: np.ones_like(v) for k, v in out.items()}
        want_out, want_bwd = oracle.vjp(**args)
        assert max_err(out, want_out) < 1e-10
        assert max_err(bwd(cot), want_bwd(cot)) < 1e-10
    rng = np.random.default_rng(1)
    args = {**lstm_args(2, 3, T=3), "h": rng.standard_normal((2, 3)), "c": rng.standard_normal((2, 3))}
    assert check_vjp(rc.compile(lstm, backend="numpy", dtype="float64"), args) < 1e-6


def test_value_and_grad_and_wrt():
    prog = rc.compile(halves, backend="numpy", dtype="float64")
    loss, grads = prog.value_and_grad("y", wrt=["W"], **halves_args(2, 4))
    assert sorted(grads) == ["W"] and grads["W"].shape == (6, 4) and np.isfinite(loss)


def test_each_binding_compiles_once():
    prog = rc.compile(lstm, backend="numpy")
    assert "sizes H bound per call" in repr(prog)
    prog(**lstm_args(3, 4))
    first = prog.at(H=4)
    prog(**lstm_args(5, 4))  # another I: the same program (I stays symbolic)
    assert prog.at(H=4) is first and prog.at(H=6) is not first
    assert "f32[I, 16]" in first.ir("cell") and first.dims == {"H": 4}


def test_dims_at_compile_time():
    prog = rc.compile(lstm, backend="numba-cpu", dtype="float64", dims={"H": 4})
    assert isinstance(prog, rc.CompiledProgram) and prog.dims == {"H": 4} and "dims={'H': 4}" in repr(prog)
    args = lstm_args(3, 4)
    assert max_err(prog(**args), reference.run(lstm, **args)) < 1e-12
    assert "f64[I, 16]" in prog.ir("unroll")


# ---------------------------------------------------------------- errors


def test_call_errors_name_the_argument_and_the_dims():
    prog = rc.compile(lstm, backend="numpy")
    args = lstm_args(3, 4)
    assert message(lambda: prog(**{**args, "b": np.zeros(17)})) == (
        "argument 'b' (param): expected shape (4*H,) = (16,), got (17,): dim 0 (4*H) is 17 here, "
        "but 4*H = 16 (H = 4 from argument 'Wh' of shape (4, 16))"
    )
    assert message(lambda: prog(**{**args, "Wh": np.zeros((4, 17))})) == (
        "argument 'Wh' (param): expected shape (H, 4*H) = (4, 16), got (4, 17): dim 1 (4*H) is 17 here, "
        "but 4*H = 16 (H = 4 from argument 'Wh' of shape (4, 17))"
    )
    assert message(lambda: prog(x=args["x"], Wx=np.zeros((3, 18)), b=np.zeros(18), Wh=np.zeros((5, 18)))) == (
        "argument 'Wx' (param): expected shape (I, 4*H) = (3, 20), got (3, 18): dim 1 (4*H) is 18 here, "
        "but 4*H = 20 (H = 5 from argument 'Wh' of shape (5, 18))"
    )


def test_a_size_that_does_not_solve_is_an_error():
    @rc.cell
    def wide(x: Seq["B", "4*H"], W: Param["4*H", "K"]):  # noqa: F821
        return {"y": x @ W}

    prog = rc.compile(wide, backend="numpy")
    assert message(lambda: prog(x=np.zeros((2, 1, 18)), W=np.zeros((18, 3)))) == (
        "argument 'x' (seq): expected shape (T, B, 4*H), got (2, 1, 18): dim 2 (4*H) is 18, "
        "but 4*H = 18 has no whole, non-negative solution for H (it would be H = 9/2)"
    )


def test_a_split_that_does_not_divide_at_a_call_names_the_node():
    prog = rc.compile(halves, backend="numpy")
    assert message(lambda: prog(**halves_args(2, 5))) == (
        "cell 'halves': node %2 (split) of type f32[B, H//2]: dim H//2 is not a whole number: H//2 = 5/2 "
        "with H = 5 (H = 5 from argument 'W' of shape (7, 5)); the sizes must make H//2 a whole number"
    )
    assert message(lambda: reference.run(halves, **halves_args(2, 5))).startswith(
        "cell 'halves': node %2 (split) of type f32[B, H//2]: dim H//2 is not a whole number"
    )


def test_two_unknowns_in_one_dim_are_an_error():
    @rc.cell
    def sum_only(x: Seq["B", "H+I"]):  # noqa: F821
        return {"y": rc.tanh(x)}

    prog = rc.compile(sum_only, backend="numpy")
    assert message(lambda: prog(x=np.zeros((2, 1, 5)))) == (
        "argument 'x' (seq): dim 2 (H+I) is 5, which does not tell H and I apart; "
        "bind them with rc.compile(..., dims={'H': ..., 'I': ...})"
    )
    out = rc.compile(sum_only, backend="numpy", dims={"H": 2})(x=np.ones((2, 1, 5)))
    assert out["y"].shape == (2, 1, 5)


def test_a_size_no_argument_binds_is_an_error():
    @rc.cell
    def hidden(x: Seq["B", "I"], h: State["B", "H"], W: Param["I", "H"], U: Param["H", "2*H"]):  # noqa: F821
        a, b = rc.split(h @ U, 2)
        return {"h": rc.tanh(x @ W + a * b)}

    prog = rc.compile(hidden, backend="numpy")
    assert prog(x=np.ones((2, 1, 3)), W=np.ones((3, 2)), U=np.ones((2, 4)))["h"].shape == (1, 2)


def test_calls_with_other_sizes_than_dims_are_refused_by_name():
    prog = rc.compile(lstm, backend="numpy", dims={"H": 4})
    assert message(lambda: prog(**lstm_args(3, 6))) == (
        "argument 'Wh' (param): expected shape (H, 4*H) = (4, 16), got (6, 24): dim 0 (H) is 6 here but 4 in dims= "
        "of rc.compile"
    )
    args = {**lstm_args(3, 4), "b": np.zeros(24)}
    assert message(lambda: prog(**args)) == (
        "argument 'b' (param): expected shape (4*H,) = (16,), got (24,): dim 0 (4*H) is 24 here, "
        "but 4*H = 16 (H = 4 from dims= of rc.compile)"
    )
    prog = rc.compile(halves, backend="numpy", dims={"H": 4})
    assert message(lambda: prog(**halves_args(2, 6))) == (
        "argument 'W' (param): expected shape (H+I, H) = (6, 4), got (8, 6): dim 1 (H) is 6 here but 4 in dims= of "
        "rc.compile"
    )


@pytest.mark.parametrize(
    "dims, want",
    [
        ([("H", 4)], "argument 'dims': expected a dict such as {'H': 256}, got list"),
        (
            {"HH": 4},
            "argument 'dims': 'HH' is not a dim of cell 'lstm' (did you mean 'H'?); its dims are ['B', 'H', 'I']",
        ),
        ({"H": -1}, "argument 'dims': H=-1 must be an int >= 0"),
        ({"H": 2.0}, "argument 'dims': H=2.0 must be an int >= 0"),
        ({"H": True}, "argument 'dims': H=True must be an int >= 0"),
        ({"T": 5}, "argument 'dims': 'T' is the sequence length; pass length=5 instead"),
    ],
)
def test_bad_dims_are_errors(dims, want):
    assert message(lambda: rc.compile(lstm, backend="numpy", dims=dims)) == want


def test_dims_that_do_not_divide_are_refused_at_compile_time():
    assert message(lambda: rc.compile(halves, backend="numpy", dims={"H": 5})) == (
        "argument 'dims': cell 'halves': node %2 (split) of type f32[B, H//2]: dim H//2 is not a whole number: "
        "H//2 = 5/2 with H = 5 (H = 5 from dims=); the sizes must make H//2 a whole number"
    )


def test_inspecting_a_generic_program_asks_for_a_size():
    prog = rc.compile(lstm, backend="numpy")
    assert message(lambda: prog.ir("unroll")) == (
        "ir: cell 'lstm' is size-generic and H are bound per call; inspect the program of one size with "
        "prog.at(H=...).ir, or compile with dims={'H': ...}"
    )
    assert message(lambda: prog.at()) == "at(): size 'H' is not bound; pass H=..."
    assert message(lambda: prog.at(H=4, J=2)).startswith("argument 'dims': 'J' is not a dim of cell 'lstm'")


# ---------------------------------------------------------------- more forms and errors


def test_json_round_trip():
    from ir.json_form import cell_from_json, cell_to_json

    assert str(cell_from_json(cell_to_json(lstm))) == str(lstm)


def test_value_errors_and_odd_input():
    assert message(lambda: dimexpr.value("4*H", {})) == "dim 4*H: H is not bound"
    assert message(lambda: dimexpr.value("H-3", {"H": 1})) == "dim H-3 is negative: H-3 = -2 with H = 1"
    assert message(lambda: dimexpr.parse(3)) == "a dim expression must be text, got 3"
    assert message(lambda: as_shape(("",))) == "shape ('',): empty dim expression"
    assert message(lambda: dimexpr.solve_one("3-H", 5, {})) == (
        "3-H = 5 has no whole, non-negative solution for H (it would be H = -2)"
    )


def test_backend_binding_evaluates_a_dim_expression():
    from rnncomp.backends.common.binding import Binding

    b = Binding(list(rc.compile(lstm, backend="numpy").at(H=2).stages().values())[-1])
    assert b.dim("4*H", {"H": 3}) == 12 and b.dim("B", {"B": 2}) == 2
    assert message(lambda: b.dim("H//2", {"H": 3})) == (
        "program 'lstm': dim H//2 is not a whole number: H//2 = 3/2 with H = 3"
    )


def test_with_dims():
    cell = rc.with_dims(lstm, I=16, H=32)
    assert "f32[16, 128]" in str(cell) and "f32[B, 32]" in str(cell)
    assert rc.with_dims(lstm, H=2).params[0].type.shape == ("I", 8)
    assert message(lambda: rc.with_dims("lstm", H=2)) == "with_dims(): expected an rnncomp Cell, got str"
    assert message(lambda: rc.with_dims(lstm, K=2)) == (
        "with_dims(): 'K' is not a dim of cell 'lstm'; its dims are ['B', 'H', 'I']"
    )
    assert message(lambda: rc.with_dims(halves, H=3)).startswith(
        "with_dims(): cell 'halves': node %2 (split) of type f32[B, H//2]: dim H//2 is not a whole number"
    )


def test_a_size_no_argument_binds_asks_for_it():
    @rc.cell
    def only_state(x: Seq["B", 1], h: State["B", "2*H"]):  # noqa: F821
        return {"h": rc.tanh(h) + x}

    prog = rc.compile(only_state, backend="numpy")
    assert message(lambda: prog(x=np.ones((2, 3, 1)))) == (
        "size 'H' of cell 'only_state' is not bound by any argument; pass an array that has it (a state's init), "
        "or compile with dims={'H': ...}"
    )
    assert prog(x=np.ones((2, 3, 1)), h=np.zeros((3, 4)))["h"].shape == (3, 4)


def test_cli_compiles_a_generic_cell_at_the_sizes_given(capsys):
    from rnncomp.cli import main

    assert main(["dump", "examples/lstm.py", "--cell", "lstm_any", "--after", "unroll", "--dim", "H=8"]) == 0
    assert "input param Wx : f32[I, 32]" in capsys.readouterr().out
    assert main(["dump", "examples/lstm.py", "--cell", "lstm_any", "--after", "unroll"]) != 0
    assert "cell 'lstm' is size-generic (dims such as 4*H): give its sizes with --dim H=SIZE" in capsys.readouterr().err
    assert main(["dump", "examples/lstm.py"]) == 0  # the concrete lstm, not lstm_any
    assert "param Wx : f32[16, 128]" in capsys.readouterr().out


def test_torch_layer_asks_for_concrete_sizes():
    pytest.importorskip("torch")
    import rnncomp.torch as rct

    assert message(lambda: rct.Recurrent(lstm)) == (
        "cell 'lstm': param 'Wx' has shape ('I', '4*H') with a symbolic dim; an nn.Parameter needs a concrete "
        "shape: bind it first, rc.with_dims(cell, H=..., I=...)"
    )


def test_a_static_input_with_a_dim_expression():
    @rc.cell
    def cond(x: Seq["B", "I"], h: State["B", "H"], s: rc.Static["B", "2*H"], W: Param["I", "H"]):  # noqa: F821
        a, b = rc.split(s, 2)
        return {"h": rc.tanh(x @ W + a * h + b)}

    prog = rc.compile(cond, backend="numba-cpu", dtype="float64")
    rng = np.random.default_rng(3)
    for n_in, H in [(2, 3), (3, 5)]:
        args = {"x": rng.standard_normal((4, 2, n_in)), "s": rng.standard_normal((2, 2 * H))}
        args["W"] = rng.standard_normal((n_in, H))
        assert max_err(prog(**args), reference.run(cond, **args)) < 1e-12


# ---------------------------------------------------------------- properties of the canonical form

from fractions import Fraction  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SYMS = ("H", "I", "K")


def _exprs():
    """Random linear expressions as (text, exact value as a function of the symbols)."""
    leaf = st.one_of(
        st.integers(0, 9).map(lambda k: (str(k), lambda env, k=k: Fraction(k))),
        st.sampled_from(_SYMS).map(lambda s: (s, lambda env, s=s: Fraction(env[s]))),
    )

    def grow(inner):
        binary = st.tuples(inner, st.sampled_from("+-"), inner).map(
            lambda t: (
                f"({t[0][0]}{t[1]}{t[2][0]})",
                lambda env, t=t: t[0][1](env) + t[2][1](env) if t[1] == "+" else t[0][1](env) - t[2][1](env),
            )
        )
        scaled = st.tuples(inner, st.integers(1, 5), st.booleans()).map(
            lambda t: (
                f"{t[0][0]}*{t[1]}" if t[2] else f"{t[0][0]}//{t[1]}",
                lambda env, t=t: t[0][1](env) * t[1] if t[2] else t[0][1](env) / t[1],
            )
        )
        return binary | scaled

    return st.recursive(leaf, grow, max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(_exprs(), st.fixed_dictionaries({s: st.integers(0, 50) for s in _SYMS}))
def test_the_canonical_form_means_the_same(expr, env):
    text, exact = expr
    terms, const = dimexpr.parse(text)
    if not terms:  # a constant: an int dim, or an error when it is negative or not whole
        if const.denominator == 1 and const >= 0:
            assert dimexpr.canonical(text) == const == exact(env)
        else:
            with pytest.raises(dimexpr.DimError):
                dimexpr.canonical(text)
        return
    canon = dimexpr.canonical(text)
    assert dimexpr.canonical(canon) == canon  # idempotent
    assert dimexpr.parse(canon) == dimexpr.parse(text)  # one linear form
    for written in (canon, text):  # the IR text form reads both back as the canonical dim
        c = parse_cell(f"cell c {{\n  seq x : f32[B, {written}]\n  out y = x\n}}\n")
        assert c.seqs[0].type.shape == ("B", canon)
    want = exact(env)
    if want.denominator == 1 and want >= 0:
        assert dimexpr.value(canon, env) == want
    else:
        with pytest.raises(dimexpr.DimError):
            dimexpr.value(canon, env)
