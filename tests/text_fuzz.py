"""Fuzzers for the two text forms (cells: `ir.parser`; programs: `ir.program_parser`), shared by
tests/test_fuzz.py (bounded, in CI) and tests/fuzz_long.py (`--long`, thousands of inputs).

- `cell_texts()` / `program_texts()`: Hypothesis strategies that write text from each grammar, mostly
  well-formed in structure, with hostile atoms mixed in (huge or Unicode numbers, deep nesting, odd
  names, code in strings and names, unknown ops and attributes, bad delays and types).
- `mutants(seeds)`: printer output (real cells and program stages) mutated by deleting, inserting,
  duplicating, swapping and truncating pieces.
- `parse_clean(parse, text)`: the property every input must have: parsing ends (a per-input time limit,
  SIGALRM) in a value or in one of rnncomp's own errors, and evaluates nothing (eval, exec, compile and
  ast.literal_eval refuse to run meanwhile). Anything else is raised as a `FuzzFailure` naming the input.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import strategies as st

from ir import RnncompError
from ir.ops import OPS

TIME_LIMIT = 2.0  # seconds one input may take to parse (a few ms is typical)
MARKER = "/tmp/rnncomp-fuzz-was-evaluated"  # the payloads would create this file if text were run


class FuzzFailure(AssertionError):
    """An input that hung, escaped with a non-rnncomp exception, or tried to evaluate text."""


class _Hang(BaseException):  # BaseException: the parser's `except Exception` cannot swallow it
    pass


@contextlib.contextmanager
def _no_eval(called: list[str]) -> Iterator[None]:
    """eval, exec, compile and ast.literal_eval refuse to run (and say so in `called`) meanwhile."""
    saved = {n: getattr(builtins, n) for n in ("eval", "exec", "compile")}
    saved_literal = ast.literal_eval

    def refuse(*args: Any, **kwargs: Any) -> Any:
        called.append(repr(args)[:200])
        raise RuntimeError("evaluation is forbidden while fuzzing")

    for n in saved:
        setattr(builtins, n, refuse)
    ast.literal_eval = refuse
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(builtins, n, f)
        ast.literal_eval = saved_literal


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread: no limit here
        return

    def alarm(signum: int, frame: Any) -> None:
        raise _Hang

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def parse_clean(parse: Callable[[str], Any], text: str, seconds: float = TIME_LIMIT) -> tuple[str, Any]:
    """('ok', value) if `parse(text)` returned, ('error', e) if it raised an RnncompError; a
    FuzzFailure if it hung, raised anything else, or tried to evaluate text."""
    called: list[str] = []
    try:
        with _time_limit(seconds), _no_eval(called):
            result = ("ok", parse(text))
    except RnncompError as e:
        result = ("error", e)
    except _Hang:
        raise FuzzFailure(f"parsing took more than {seconds} s on {text[:2000]!r}") from None
    except BaseException as e:  # noqa: BLE001  (the point: nothing else may escape)
        raise FuzzFailure(f"{type(e).__name__}: {e} escaped the parser on {text[:2000]!r}") from e
    if called:
        raise FuzzFailure(f"the parser called eval/exec/compile/literal_eval ({called[0]}) on {text[:2000]!r}")
    return result


# ---------------------------------------------------------------- atoms shared by both grammars

_PAYLOADS = [
    f"__import__('os').system('touch {MARKER}')",
    "__import__",
    "exec",
    "os.system",
    f'"); __import__("os").system("touch {MARKER}"); ("',
    "{0.__class__}",
    "${HOME}",
    "\\x00",
]
_ODD_NAMES = [
    "self",
    "output",
    "lengths_lo",
    "in",
    "def",
    "None",
    "True",
    "t",
    "B",
    "T",
    "program",
    "cell",
    "seq",
    "param",
    "state",
    "out",
    "yield",
    "input",
    "loop",
    "_",
    "__class__",
    "x" * 150,
    "é",
    "h@3",
    "h@t-1",
    "grad@y@0",
    "%0",
    "%99999999999999999999",
    "%-1",
]
_NUMBERS = [
    "0",
    "1",
    "-1",
    "2",
    "7",
    "0.5",
    "-0.0",
    "1e5",
    "1e400",
    "-1e400",
    "1e-400",
    "inf",
    "-inf",
    "nan",
    "9" * 30,
    "9" * 120,
    "0x10",
    "1_000",
    "²",
    "٣",
    "1.",
    ".5",
    "1e",
    "--1",
    "2**63",
    "9223372036854775808",
    "-9223372036854775809",
    "1e308",
    "4.9e-324",
]


def _mostly(good: st.SearchStrategy[str], odd: st.SearchStrategy[str], odds: int = 12) -> st.SearchStrategy[str]:
    """`good` but one time in `odds` `odd`: a text holds many atoms, and one odd atom ends parsing
    early, so each must be rare for the fuzzers to reach the later rules."""
    return st.integers(0, odds - 1).flatmap(lambda i: odd if i == 0 else good)


names = _mostly(
    st.sampled_from(["x", "h", "c", "W", "U", "b", "y", "z", "x1", "h2", "a", "g"]),
    st.one_of(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}(@[0-9a-z+-]{1,4}){0,2}", fullmatch=True), st.sampled_from(_ODD_NAMES)
    ),
)
numbers = _mostly(st.integers(-5, 20).map(str), st.sampled_from(_NUMBERS), 4)
strings = st.one_of(
    st.sampled_from(_PAYLOADS).map(lambda s: '"' + s.replace('"', '\\"') + '"'),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12).map(
        lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    ),
    st.just('"unterminated'),
)
dims = _mostly(
    st.one_of(st.sampled_from(["B", "4", "8"]), st.integers(0, 9).map(str)),
    st.sampled_from(["B", "T", "N", "-1", "B+1", "T//2", "9" * 25, "x y"]),
    6,
)
dtypes = _mostly(st.sampled_from(["f32", "f64"]), st.sampled_from(["i64", "i32", "bool", "u8", "f16", "float", "x"]), 8)
tensor_types = st.builds(lambda d, ds: f"{d}[{', '.join(ds)}]", dtypes, st.lists(dims, max_size=4))
types = st.one_of(
    tensor_types,
    st.lists(tensor_types, max_size=3).map(lambda ts: "(" + ", ".join(ts) + ")"),
    st.sampled_from(["f32[", "f32", "[B]", "f32[B,,4]", "()"]),
)


def _nested(inner: st.SearchStrategy[str], left: str, right: str) -> st.SearchStrategy[str]:
    return st.tuples(st.integers(1, 400), inner).map(lambda a: left * a[0] + a[1] + right * a[0])


values = st.recursive(
    st.one_of(numbers, strings, names, st.sampled_from(["true", "false", "none", "f32", "f64", "-inf", "nan"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda vs: "[" + ", ".join(vs) + "]"),
        st.lists(dims, max_size=4).map(lambda ds: "(" + ", ".join(ds) + ("," if len(ds) == 1 else "") + ")"),
        _nested(st.just("1"), "[", "]"),
    ),
    max_leaves=6,
)
attr_names = st.one_of(
    st.sampled_from(sorted({a for op in OPS.values() for a in op.attrs}) + ["length", "value", "axis", "bogus"]),
    names,
)
op_names = _mostly(
    st.sampled_from(["tanh", "sigmoid", "add", "mul", "matmul", "sub", "relu", "sum", "concat", "split"]),
    st.one_of(st.sampled_from(sorted(OPS)), st.sampled_from(["tanhh", "Tanh", "print", "__import__", "eval"])),
    3,
)
delays = st.one_of(st.integers(0, 4).map(str), st.sampled_from(["-1", "1001", "99999999999999999999999", "1e3", "²"]))
refs = _mostly(
    st.one_of(st.sampled_from(["x", "W", "U", "h[t-1]", "%0", "%1", "h", "h[t-2]"]), names),
    st.one_of(
        st.integers(0, 12).map(lambda i: f"%{i}"),
        st.builds(lambda n, d: f"{n}[t-{d}]", names, delays),
        st.builds(lambda n: f"{n}[t]", names),
        st.sampled_from(["h[t+1]", "h[s-1]", "h[t-]", "h[", "%"]),
    ),
    4,
)


# ---------------------------------------------------------------- cell text


def _call(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    arg = st.one_of(inner, st.builds(lambda k, v: f"{k}={v}", attr_names, values))
    return st.builds(lambda op, args: f"{op}({', '.join(args)})", op_names, st.lists(arg, max_size=4))


exprs = st.recursive(refs, _call, max_leaves=8)
deep_exprs = st.tuples(st.integers(50, 600), refs).map(lambda a: "tanh(" * a[0] + a[1] + ")" * a[0])

cell_stmts = st.one_of(
    st.builds(lambda k, n, t: f"{k} {n} : {t}", st.sampled_from(["seq", "param", "state"]), names, types),
    st.builds(lambda n: f"state {n}", names),
    st.builds(lambda n, e: f"out {n} = {e}", names, exprs),
    st.builds(
        lambda items: "yield " + ", ".join(items),
        st.lists(st.one_of(names, st.builds(lambda a, b: f"{a}={b}", names, refs)), max_size=3),
    ),
    st.builds(
        lambda n, e: f"{n} = {e}",
        st.one_of(names, st.integers(0, 9).map(lambda i: f"%{i}")),
        st.one_of(exprs, deep_exprs),
    ),
    st.builds(lambda n, e, t: f"{n} = {e} : {t}", names, exprs, types),
    st.sampled_from(["# a comment", "", "}", "{", "cell", "= =", ":", "seq", "out y", "yield"]),
)

_CELL_PRELUDE = ["seq x : f32[B, 4]", "param W : f32[4, 8]", "param U : f32[8, 8]", "state h : f32[B, 8]"]


def _cell(name: str, prelude: bool, stmts: list[str], close: bool) -> str:
    body = (_CELL_PRELUDE if prelude else []) + stmts
    return f"cell {name} {{\n" + "".join(f"  {s}\n" for s in body) + ("}\n" if close else "")


cell_texts = st.one_of(
    st.builds(_cell, names, st.booleans(), st.lists(cell_stmts, max_size=8), st.booleans()),
    st.lists(st.builds(_cell, names, st.booleans(), st.lists(cell_stmts, max_size=4), st.just(True)), max_size=3).map(
        "".join
    ),
    st.text(max_size=60),
)


# ---------------------------------------------------------------- program text

prog_args = st.one_of(
    refs.filter(lambda r: "[" not in r),
    refs.filter(lambda r: "[" not in r),
    st.builds(lambda k, v: f"{k}={v}", attr_names, _mostly(values, strings, 4)),
)
prog_calls = st.builds(lambda op, args: f"{op}({', '.join(args)})", op_names, st.lists(prog_args, max_size=5))
roles = st.sampled_from(["seq", "param", "init", "lengths", "saved", "cotangent", "dstate", "bogus", "in put"])


def _block(params: list[tuple[str, str]], stmts: list[str], yields: list[str]) -> str:
    head = "^(" + ", ".join(f"{r}: {t}" for r, t in params) + ")"
    return " {\n    " + head + "\n" + "".join(f"    {s}\n" for s in stmts) + f"    yield {', '.join(yields)}\n  }}"


blocks = st.builds(
    _block,
    st.lists(st.tuples(refs, types), max_size=3),
    st.lists(st.builds(lambda r, c, t: f"{r} = {c} : {t}", refs, prog_calls, types), max_size=3),
    st.lists(refs, max_size=3),
)
loop_lines = st.builds(
    lambda r, args, length, b, t: (
        f"{r} = loop({', '.join(args)}, length={length}, n_carry=1, n_xs=0, n_buf=0){b} : {t}"
    ),
    refs,
    st.lists(refs, max_size=3),
    _mostly(
        st.sampled_from(['"T"', '"T//2"', "3"]),
        st.one_of(
            strings, st.sampled_from(['"(' * 50 + "T" + ")" * 50 + '"', '"T**99"', '"__import__(1)"', '"1/0"', '"T-"'])
        ),
    ),
    blocks,
    types,
)
prog_stmts = st.one_of(
    st.builds(lambda r, n, t: f"input {r} {n} : {t}", roles, names, types),
    st.builds(lambda n, r: f"out {n} = {r}", names, refs),
    st.builds(lambda r, c, t: f"{r} = {c} : {t}", refs, prog_calls, types),
    loop_lines,
    st.sampled_from(["# c", "", "}", "yield %0", "^(x: f32[])"]),
)
_PROG_PRELUDE = ["input seq x : f32[T, B, 4]", "input param W : f32[4, 8]"]


def _program(name: str, syms: list[str], prelude: bool, stmts: list[str], close: bool) -> str:
    head = f"program {name}({', '.join(syms)}) {{\n" if syms or prelude else f"program {name} {{\n"
    body = (_PROG_PRELUDE if prelude else []) + stmts
    return head + "".join(f"  {s}\n" for s in body) + ("}\n" if close else "")


program_texts = st.one_of(
    st.builds(
        _program,
        names,
        _mostly(
            st.lists(st.sampled_from(["T", "B"]), max_size=2, unique=True),
            st.lists(st.sampled_from(["T", "B", "N", "x", "9", "%", "T T"]), max_size=3),
            4,
        ),
        st.booleans(),
        st.lists(prog_stmts, max_size=8),
        st.booleans(),
    ),
    st.text(max_size=60),
)


# ---------------------------------------------------------------- mutations of printer output

_INSERTS = [
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "=",
    "%",
    "@",
    "#",
    "\n",
    '"',
    "\\",
    "t-1",
    "[t-1000000]",
    "1e999",
    "-",
    "²",
    "\x00",
    "\ufeff",
    "\t",
    "seq",
    "param",
    "state",
    "out",
    "yield",
    "loop",
    "input",
    "tanh(",
    "f64",
    "i64",
    "B",
    "T",
    "0",
    "9" * 40,
    "(" * 300,
    "[" * 300,
    "__import__('os')",
]


@st.composite
def mutants(draw: Any, seeds: list[tuple[str, str]]) -> tuple[str, str]:
    """(kind, text): one of `seeds` ('cell' or 'program' text) with 1-4 random edits."""
    kind, text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        how = draw(
            st.sampled_from(
                ["delete", "insert", "insert", "replace", "dup_line", "drop_line", "swap_lines", "truncate", "digits"]
            )
        )
        n = len(text)
        i = draw(st.integers(0, max(n - 1, 0)))
        if how == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 12)) :]
        elif how == "insert":
            text = text[:i] + draw(st.sampled_from(_INSERTS)) + text[i:]
        elif how == "replace":
            text = text[:i] + draw(st.sampled_from(_INSERTS)) + text[i + draw(st.integers(1, 6)) :]
        elif how in ("dup_line", "drop_line", "swap_lines") and lines:
            a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if how == "dup_line":
                lines.insert(a, lines[b])
            elif how == "drop_line":
                del lines[a]
            else:
                lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
        elif how == "truncate":
            text = text[:i]
        else:  # a digit run becomes another number
            j = i
            while j < n and not text[j].isdigit():
                j += 1
            k = j
            while k < n and text[k].isdigit():
                k += 1
            text = text[:j] + draw(numbers) + text[k:]
    return kind, text
