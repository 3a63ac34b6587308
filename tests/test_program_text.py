"""The text form of a program: print -> parse gives an equal program and the same text for every stage
of every example, unroll mode and direction (and of random cells); a parsed program runs like the
original; loops nest; every parse error says what and where (line:column and a caret); the parser
never evaluates its input."""

import ast
import builtins

import numpy as np
import pytest

import rnncomp as rc
from ir import ParseError, Program, VerifyError
from ir.program_parser import parse_program
from ir.program_printer import print_program
from ir.symexpr import Sym
from rnncomp.backends.numpy_interp import run_program
from tests.cellgen import random_cell
from tests.support import EXAMPLES, cell_of

MODES = ["full", "loop", 2, 3]
VARIANTS = [{}, {"grad": True}, {"lengths": True}, {"train": True}]


def compiled(name: str, mode, reverse: bool = False, **kw) -> rc.CompiledProgram:
    return rc.compile(cell_of(name), length=4 if mode == "full" else "T", unroll=mode, reverse=reverse, **kw)


def stages_of(prog, mode, variants=VARIANTS) -> dict[str, Program]:
    """Every stage of every variant, keyed like 'grad/simplify#2' (a full unroll specialised to T=4)."""
    out = {}
    for v in variants:
        for k, p in prog.stages(T=4 if mode == "full" else None, **v).items():
            assert isinstance(p, Program), (v, k)
            out[f"{'+'.join(v) or 'infer'}/{k}"] = p
    return out


def assert_round_trip(prog: Program, where: str = "") -> Program:
    """print -> parse is the same program, and printing that gives the same text; returns the parsed one."""
    text = print_program(prog)
    again = parse_program(text)
    assert again == prog, f"{where}: round trip changed the program:\n{text}\n---\n{print_program(again)}"
    assert print_program(again) == text, where
    return again


# ---------------------------------------------------------------- round trips of compiled programs


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", EXAMPLES)
def test_every_stage_round_trips(name, mode, reverse):
    stages = stages_of(compiled(name, mode, reverse), mode)
    assert len(stages) >= 16
    for where, prog in stages.items():
        assert_round_trip(prog, where)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", EXAMPLES)
def test_truncated_gradient_stages_round_trip(name, mode):
    stages = stages_of(compiled(name, mode, truncate=2), mode, [{"grad": True}, {"grad": True, "lengths": True}])
    for where, prog in stages.items():
        assert "lengths_lo" in [n.name for n in prog.inputs], where
        assert_round_trip(prog, where)


@pytest.mark.parametrize("seed", range(36))
def test_random_cell_stages_round_trip(seed):
    prog = rc.compile(random_cell(seed), length="T", unroll=2, dtype="float64")
    for where, p in stages_of(prog, 2, [{}, {"lengths": True}]).items():
        assert_round_trip(p, f"seed {seed}, {where}")


@pytest.mark.parametrize("seed", range(36))  # seed 25: a seq that is itself an output (of the backward cell)
def test_random_cell_grad_stages_round_trip(seed):
    prog = rc.compile(random_cell(seed), length="T", unroll=2, dtype="float64")
    for where, p in stages_of(prog, 2, [{"grad": True}, {"train": True}]).items():
        assert_round_trip(p, f"seed {seed}, {where}")


def test_counts_come_back_as_symbolic_expressions():
    hoisted = parse_program(print_program(compiled("lstm", 2).stages()["hoist"]))
    loops = hoisted.loops()
    assert [lp.attrs["length"] for lp in loops] == [Sym("T//2"), Sym("T%2")]
    assert [lp.attrs["start"] for lp in loops] == [0, Sym("(T//2)*2")]
    grad = parse_program(print_program(compiled("lstm", 2).stages(grad=True)["grad"]))
    assert {n.name for n in grad.loops()[0].attrs["body"].params} >= {"dstate@h@t-1", "grad@y@0", "res@0@1"}


# ---------------------------------------------------------------- a parsed program runs like the original


def program_args(prog: Program, symbols: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    """Seeded arrays for every input: lengths in [0, T], other integers small, floats ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    T = symbols["T"]
    args = {}
    for n in prog.inputs:
        shape = tuple(symbols[d] if isinstance(d, str) else d for d in n.type.shape)
        if prog.roles[n.name] == "lengths":
            args[n.name] = rng.integers(0, T + 1, size=shape)
        elif n.type.dtype.is_float:
            args[n.name] = rng.standard_normal(shape).astype(n.type.dtype.numpy)
        else:
            args[n.name] = rng.integers(-3, 4, size=shape).astype(n.type.dtype.numpy)
    return args


def assert_runs_alike(prog: Program, symbols: dict[str, int], seed: int = 0) -> None:
    parsed = parse_program(print_program(prog))
    args = program_args(prog, symbols, seed)
    with np.errstate(all="ignore"):  # arbitrary saved values and cotangents may make NaNs, alike in both runs
        want, got = run_program(prog, args, symbols), run_program(parsed, args, symbols)
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", EXAMPLES)
def test_a_parsed_program_runs_like_the_original(name, mode):
    prog = compiled(name, mode, reverse=mode == 3, dtype="float64", truncate=3 if mode == 2 else None)
    symbols = {"B": 3, "T": 4 if mode == "full" else 5}
    for where, p in stages_of(prog, mode, [{"lengths": True}, {"grad": True, "lengths": True}]).items():
        if where.endswith("simplify#2") or where.endswith("/grad") or where.endswith("/unroll"):
            assert_runs_alike(p, symbols)


@pytest.mark.parametrize("seed", [3, 7, 11, 19])
def test_a_parsed_random_program_runs_like_the_original(seed):
    prog = rc.compile(random_cell(seed), length="T", unroll=2, dtype="float64")
    for p in stages_of(prog, 2, [{"lengths": True}, {"grad": True}]).values():
        assert_runs_alike(p, {"B": 2, "T": 5}, seed)


# ---------------------------------------------------------------- hand-written programs

BASE = """\
program elman(B, T) {
  input seq x : f32[T, B, 4]
  input param W : f32[4, 8]
  input param U : f32[8, 8]
  input param b : f32[8]
  input init h : f32[B, 8]
  %0 = matmul(x, W) : f32[T, B, 8]
  %1 = zeros(shape=(T, B, 8), dtype=f32) : f32[T, B, 8]
  %2 = loop(h, %0, %1, U, b, length="T", start=0, stride=1, reverse=false, n_carry=1, n_xs=1, n_buf=1) {
    ^(t@0: i64[], h@t-1: f32[B, 8], xh@0: f32[B, 8], U: f32[8, 8], b: f32[8])
    %0 = matmul(h@t-1, U) : f32[B, 8]
    %1 = add(xh@0, %0) : f32[B, 8]
    %2 = add(%1, b) : f32[B, 8]
    h@0 = tanh(%2) : f32[B, 8]
    yield h@0, h@0
  } : (f32[B, 8], f32[T, B, 8])
  %3 = item(%2, index=1) : f32[T, B, 8]
  %4 = item(%2, index=0) : f32[B, 8]
  out y = %3
  out h = %4
}
"""

NESTED = """\
program nested(B, T) {
  input seq x : f64[T, B, 4]
  input param U : f64[4, 4]
  input init h : f64[B, 4]
  %0 = zeros(shape=(T, B, 4), dtype=f64) : f64[T, B, 4]
  %1 = loop(h, x, %0, U, length="T", start=0, stride=1, reverse=false, n_carry=1, n_xs=1, n_buf=1) {
    ^(t@0: i64[], h@t-1: f64[B, 4], x@0: f64[B, 4], U: f64[4, 4])
    %0 = add(h@t-1, x@0) : f64[B, 4]
    %1 = loop(%0, U, length=2, start=0, stride=1, reverse=false, n_carry=1, n_xs=0, n_buf=0) {
      ^(s@0: i64[], g: f64[B, 4], U: f64[4, 4])
      %0 = matmul(g, U) : f64[B, 4]
      %1 = tanh(%0) : f64[B, 4]
      yield %1
    } : (f64[B, 4])
    h@0 = item(%1, index=0) : f64[B, 4]
    yield h@0, h@0
  } : (f64[B, 4], f64[T, B, 4])
  %2 = item(%1, index=1) : f64[T, B, 4]
  %3 = item(%1, index=0) : f64[B, 4]
  out y = %2
  out h = %3
}
"""


def test_hand_written_program_round_trips_and_runs():
    prog = parse_program(BASE)
    assert print_program(prog) == BASE
    assert [n.name for n in prog.inputs] == ["x", "W", "U", "b", "h"] and prog.roles["h"] == "init"
    (loop,) = prog.loops()
    assert loop.attrs["length"] == Sym("T") and loop.attrs["body"].params[1].name == "h@t-1"
    assert loop.attrs["body"].nodes()[5].name is None  # `%0` labels a node only in the text
    rng = np.random.default_rng(0)
    args = {n.name: rng.standard_normal((5, 2, 4) if n.name == "x" else (2, 8) if n.name == "h" else n.type.shape)
            for n in prog.inputs}  # fmt: skip
    out = run_program(prog, args, {"B": 2, "T": 5})
    h = args["h"]
    for t in range(5):
        h = np.tanh(args["x"][t] @ args["W"] + h @ args["U"] + args["b"])
        np.testing.assert_allclose(out["y"][t], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["h"], h, rtol=1e-5, atol=1e-6)


def test_loops_nest_to_any_depth_and_names_are_scoped_per_region():
    prog = parse_program(NESTED)
    assert print_program(prog) == NESTED
    outer = prog.loops()[0]
    inner = prog.loops()[1]
    assert inner.attrs["length"] == 2 and [p.name for p in inner.attrs["body"].params] == ["s@0", "g", "U"]
    assert len(prog.loops()) == 2 and prog.size() > len(prog.nodes())
    assert outer.attrs["body"].params[3] is not prog.input("U")  # the body's own `U`
    rng = np.random.default_rng(1)
    args = {"x": rng.standard_normal((3, 2, 4)), "U": rng.standard_normal((4, 4)), "h": rng.standard_normal((2, 4))}
    out = run_program(prog, args, {"B": 2, "T": 3})
    h = args["h"]
    for t in range(3):
        h = np.tanh(np.tanh((h + args["x"][t]) @ args["U"]) @ args["U"])
        np.testing.assert_allclose(out["y"][t], h, rtol=1e-12)
    np.testing.assert_allclose(out["h"], h, rtol=1e-12)


def test_comments_blank_lines_and_defaults():
    gemm = "  %0 = matmul(x, W) : f32[T, B, 8]"
    text = BASE.replace(gemm, f"  # the input projection\n\n{gemm}  # one GEMM")
    text = text.replace(", start=0, stride=1, reverse=false", "")  # the loop's defaults
    assert print_program(parse_program(text)) == BASE
    assert parse_program("\n# nothing but a program\nprogram p {\n}\n\n") == Program("p", [], {}, {})


# ---------------------------------------------------------------- structural equality


def test_structural_equality():
    a, b = parse_program(BASE), parse_program(BASE)
    assert a == b and a is not b and a != parse_program(NESTED) and a != "program"
    assert parse_program(BASE.replace("tanh", "sigmoid")) != a
    assert parse_program(BASE.replace("%2 = add(%1, b)", "b2 = add(%1, b)").replace("tanh(%2)", "tanh(b2)")) != a
    assert parse_program(BASE.replace("input init h", "input seq h")) != a  # roles count
    assert parse_program(BASE.replace("out y = %3\n  out h = %4", "out h = %4\n  out y = %3")) != a
    with pytest.raises(TypeError):
        hash(a)


def test_nan_attributes_compare_equal():
    nan = "    %9 = constant(value=nan, dtype=f32) : f32[]\n    %8 = add(%2, %9) : f32[B, 8]\n"
    text = BASE.replace("    h@0 = tanh(%2)", nan + "    h@0 = tanh(%8)")
    prog = parse_program(text)
    assert prog == parse_program(text)
    assert_round_trip(prog)


# ---------------------------------------------------------------- errors: what, where, and a caret


def edit(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def E(case_id: str, text: str, line: int, needle: str | None, message: str, exc: type = ParseError, nth: int = 0):
    """One error case: parsing `text` raises `exc` at (line, the column of `needle`) with `message`."""
    return pytest.param(text, exc, line, needle, message, nth, id=case_id)


BODY = "loop body of %2 (opened at 9:104)"
CUT_BODY = BASE[: BASE.index("    %2 = add")]

ERRORS = [
    # the program
    E("empty-input", "", 1, None, "expected 'program NAME {', found end of input"),
    E("not-a-program", "cell c {\n}\n", 1, "cell", "expected 'program NAME {', found name 'cell'"),
    E("program-without-name", "program {\n}\n", 1, "{", "expected the program's name after 'program', found '{'"),
    E("trailing-garbage", BASE + "garbage\n", 22, "garbage",
      "expected end of input after the closing '}' of program 'elman', found name 'garbage'"),
    E("unterminated-program", BASE[: BASE.rindex("}")], 21, None,
      "expected '}' to close program 'elman' (opened at 1:21), found end of input"),
    E("undeclared-symbol", edit("program elman(B, T)", "program elman(T)"), 2, "f32",
      "symbol 'B' in the type of input 'x' is not declared in the header (write program elman(B, T) {)"),
    E("unused-symbol", edit("(B, T)", "(B, T, K)"), 1, "K",
      "symbol 'K' is declared in the header but no input's shape uses it (the header lists the symbols of the "
      "inputs' shapes)"),
    E("symbol-twice", edit("(B, T)", "(B, B)"), 1, "B", "symbol 'B' is declared twice in the header", nth=1),
    # statements
    E("not-a-statement", edit("  out y = %3", "  42\n  out y = %3"), 19, "42",
      "expected a statement (input, out or NAME = op(...)), found number '42'"),
    E("input-without-type", edit("input param b : f32[8]", "input param b f32[8]"), 5, "f32",
      "expected ':' and a type after input 'b', found name 'f32'"),
    E("input-in-body", edit("    %0 = matmul(h@t-1", "    input seq z : f32[B]\n    %0 = matmul(h@t-1"), 11, "input",
      "'input' lines belong to the program's top level; a loop body takes its values as ^(...) params and hands "
      "them back with 'yield'"),
    E("yield-at-top-level", edit("  out y = %3", "  yield %3"), 19, "yield",
      "'yield' ends a loop body; the program's top level ends with 'out NAME = NAME' lines"),
    E("output-twice", edit("out h = %4", "out y = %4"), 20, "y", "output 'y' is given twice (first at 19:7)"),
    E("defined-twice", edit("%1 = zeros", "%0 = zeros"), 8, "%0", "name '%0' is defined twice (first at 7:3)"),
    E("input-twice", edit("input param b", "input param W"), 5, "W", "name 'W' is defined twice (first at 3:15)"),
    E("missing-type", edit("%3 = item(%2, index=1) : f32[T, B, 8]", "%3 = item(%2, index=1)"), 17, None,
      "expected ':' and the type of %3 (a node line ends with ': type'), found end of line"),
    E("definition-of-a-name", edit("%3 = item(%2, index=1)", "%3 = %2"), 17, "%2 :",
      "expected an op call after '%3 =', like add(%0, b); found '%2'"),
    E("dead-node", edit("  out y = %3", "  %9 = tanh(%4) : f32[B, 8]\n  out y = %3"), 19, "%9",
      "%9 is defined but never used: every node of program 'elman' must be needed by an output (a program holds "
      "nothing else)"),
    # ops, operands and attributes
    E("unknown-op-close", edit("tanh(", "tanhh("), 14, "tanhh", "unknown op 'tanhh' (did you mean 'tanh'?)"),
    E("unknown-op", edit("tanh(", "zzz("), 14, "zzz", "unknown op 'zzz'; known ops: abs, add, ..."),
    E("undefined-name", edit("matmul(x, W)", "matmul(q, W)"), 7, "q",
      "undefined name 'q' in an operand of matmul: not an input or a node defined above"),
    E("undefined-in-body", edit("add(%1, b)", "add(%1, q)"), 13, "q",
      "undefined name 'q' in an operand of add: not a param or a node defined above in this loop body"),
    E("captured-from-outside", edit("add(%1, b)", "add(%1, W)"), 13, "W",
      "undefined name 'W' in an operand of add: not a param or a node defined above in this loop body; 'W' belongs "
      "to program 'elman', and a body sees only its ^(...) params and its own nodes (pass the value in as a loop "
      "operand)"),
    E("undefined-output", edit("out y = %3", "out y = %7"), 19, "%7",
      "undefined name '%7' in output 'y': not an input or a node defined above"),
    E("delayed-operand", edit("matmul(h@t-1, U)", "matmul(h[t-1], U)"), 11, "[",
      "h[...] reads a delay, and programs hold no delays (a loop carries the previous step's value as a ^(...) param)"),
    E("nested-call", edit("add(%1, b)", "add(tanh(%1), b)"), 13, "tanh",
      "expected a name in an operand of add, found a call tanh(...): a program writes each node on its own line"),
    E("body-attribute", edit("n_buf=1)", "n_buf=1, body=b)"), 9, "loop",
      "loop: the body is a block after the call, loop(...) { ^(...) ... yield ... }, not an attribute"),
    E("missing-attribute", edit(", n_xs=1", ""), 9, "loop",
      "loop: missing attribute 'n_xs'; it takes body, length, start, stride, reverse, n_carry, n_xs, n_buf"),
    E("attribute-kind", edit("index=1", "index=x"), 17, "x)", "item: attribute index expects an int, found x"),
    E("bad-count", edit('length="T"', 'length="T//"'), 9, '"T',
      "loop: attribute length: bad symbolic expression 'T//': ends early"),
    E("bad-count-operator", edit('length="T"', 'length="T+*2"'), 9, '"T',
      "loop: attribute length: bad symbolic expression 'T+*2': unexpected '*'"),
    E("count-unquoted", edit('length="T"', "length=T"), 9, "T,",
      'loop: attribute length expects an int >= 0 or a quoted expression like "T//4", found T'),
    # regions
    E("missing-params", edit("    ^(t@0", "    (t@0"), 10, "(",
      f"expected '^(' and the params of the {BODY}, like ^(t@0: i64[], h@t-1: f32[B, 8]); found '('"),
    E("missing-yield", edit("    yield h@0, h@0\n", ""), 15, "}", f"the {BODY} ends without a 'yield' line: a body "
      "ends with yield and the values it hands back"),
    E("after-yield", edit("    yield h@0, h@0\n", "    yield h@0, h@0\n    %9 = tanh(h@0) : f32[B, 8]\n"), 16, "%9",
      "expected '}' to close the loop body of %2 after its 'yield' line, found '%9'"),
    E("unterminated-block", CUT_BODY, 13, None, f"expected '}}' to close the {BODY}, found end of input"),
    E("missing-block", edit("n_buf=1) {", "n_buf=1)"), 9, None,
      "expected '{' and the body of %2 = loop(...), found end of line"),
    E("block-on-non-loop", edit("%3 = item(%2, index=1)", "%3 = item(%2, index=1) {"), 17, "{",
      "item takes no body block (only loops do)"),
    E("param-without-type", edit("b: f32[8])", "b)"), 10, ")", "expected ':' and a type after param 'b', found ')'"),
    E("unterminated-params", edit("b: f32[8])", "b: f32[8]"), 10, None,
      "unterminated body params (opened at 10:6): expected ',' or ')', found end of line"),
    E("dead-body-node", edit("    yield h@0", "    %9 = tanh(h@0) : f32[B, 8]\n    yield h@0"), 15, "%9",
      "%9 is defined but never used: every node of the loop body of %2 must be needed by its yield (a program "
      "holds nothing else)"),
    # found by the verifier, reported at the node's line
    E("loop-operand-count", edit("%1, U, b, length", "%1, U, length"), 9, "loop",
      "program 'elman', node %2 (loop): the body takes 5 params; the loop's operands need 4", VerifyError),
    E("loop-stride", edit("stride=1", "stride=2"), 9, "loop",
      "program 'elman', node %2 (loop): the body takes 5 params; the loop's operands need 7", VerifyError),
    E("body-type", edit("add(%1, b) : f32[B, 8]", "add(%1, b) : f32[B, 9]"), 13, "add",
      "program 'elman', node %2 (loop) body, node %2 (add): recorded type f32[B, 9] differs from the inferred "
      "f32[B, 8]", VerifyError),
    E("shape", edit("input param W : f32[4, 8]", "input param W : f32[5, 8]"), 7, "matmul",
      "program 'elman', node %0 (matmul): matmul: inner dims differ: f32[T, B, 4] @ f32[5, 8] (4 != 5) in "
      "matmul(x: f32[T, B, 4], W: f32[5, 8])", VerifyError),
    E("carry-type", edit("h@t-1: f32[B, 8]", "h@t-1: f32[B, 7]"), 9, "loop",
      "program 'elman', node %2 (loop): carried value 0 (h@t-1): carry-in and body param types differ: "
      "f32[B, 8] vs f32[B, 7]", VerifyError),
]  # fmt: skip


@pytest.mark.parametrize("text, exc, line, needle, message, nth", ERRORS)
def test_errors_say_what_and_where(text, exc, line, needle, message, nth):
    """The message, `line:column`, the source line and a caret under the column; a VerifyError is shown the
    same way, at the node it names, and carries `line` and `column` too."""
    with pytest.raises(exc) as info:
        parse_program(text)
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


def test_a_verify_error_carries_the_node_and_region_it_blames():
    """The parser places a verifier error by the node the error holds as data, not by reading its message."""
    with pytest.raises(VerifyError) as info:
        parse_program(edit("add(%1, b) : f32[B, 8]", "add(%1, b) : f32[B, 9]"))
    e = info.value
    assert (e.node.op, str(e.node.type)) == ("add", "f32[B, 9]")
    assert [n.op for n in e.region] == ["loop"] and e.node in e.region[0].attrs["body"].nodes()
    assert (e.line, e.cycle) == (13, ())
    with pytest.raises(VerifyError) as info:
        parse_program(edit("input param W : f32[4, 8]", "input param W : f32[5, 8]"))
    assert (info.value.node.op, info.value.region) == ("matmul", ())


def test_the_parser_never_evaluates_text(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    payloads = [
        edit('length="T"', f"length=\"__import__('os').system('touch {marker}')\""),
        edit("matmul(x, W)", f"__import__('os').system('touch {marker}')"),
        edit("program elman(B, T)", "program elman(__import__('os'))"),
    ]
    calls = []

    def forbidden(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the parser called eval/exec/compile/literal_eval")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, forbidden)
    monkeypatch.setattr(ast, "literal_eval", forbidden)
    try:
        for text in payloads:
            with pytest.raises(ParseError):
                parse_program(text)
        prog = parse_program(BASE)
    finally:
        monkeypatch.undo()
    assert not calls and not marker.exists() and prog.name == "elman"
