"""Parse errors of the cell text form: each says what and where (line:column, the source line and a
caret), errors the verifier finds after parsing read the same way, and the parser never evaluates
its input. (Round trips and printing: test_text.py.)"""

import ast
import builtins
import re

import pytest

from ir import ParseError, VerifyError
from ir.parser import parse_cell, tokenize

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
BAD_NAME = "undefined name 'q' in an operand of matmul: not a seq, param, static or node of this cell"

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
      "expected a statement (seq, param, static, state, out, yield or NAME = op(...)), found number '42'"),
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
      "shape ('-8',): dim -8 is negative (-8)"),
    E("type-bad-dim-char", edit("param b : f32[8]", "param b : f32[=8]"), 5, "=",
      "expected a dim (an int or a symbol like B), found '='"),
    E("type-expected", edit("param b : f32[8]", "param b : [8]"), 5, "[", "expected a type like f32[B, 16], found '['"),
    # names
    E("undefined-name", edit("matmul(x, W)", "matmul(q, W)"), 7, "q", BAD_NAME),
    E("undefined-state", edit("out y = h", "out y = g", edit("  h = tanh", "  g = tanh")), 8, "h[",
      "undefined name 'h' in an operand of matmul: not a seq, param, static or node of this cell; "
      "state 'h' is declared but no line defines it (h = op(...))"),
    E("output-read", edit("add(%0, %1)", "add(%0, y)"), 9, "y",
      "undefined name 'y' in an operand of add: not a seq, param, static or node of this cell; "
      "an output cannot be read, read the node it names"),
    E("defined-twice", edit("%1 = matmul", "%0 = matmul"), 8, "%0", "name '%0' is defined twice (first at 7:3)"),
    E("declared-twice", edit("param b", "param W"), 5, "W",
      "name 'W' is defined twice: as param here, and as param at 3:9"),
    E("defines-a-seq", edit("  %0 = matmul", "  x = matmul"), 7, "x", "name 'x' is defined twice (first at 2:9)"),
    E("seq-after-definition", LATE_SEQ, 11, "z", "name 'z' is defined twice (first at 7:3)"),
    # ops and attributes
    E("unknown-op-close", edit("tanh(", "tanhh("), 9, "tanhh", "unknown op 'tanhh' (did you mean 'tanh'?)"),
    E("unknown-op", edit("tanh(", "zzz("), 9, "zzz", "unknown op 'zzz'; known ops: abs, add, ..."),
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
