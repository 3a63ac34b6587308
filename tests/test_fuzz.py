"""Fuzzers in CI, bounded to about a minute: a grammar fuzzer for each text form and a mutation fuzzer
over printer output (tests/text_fuzz.py) must end every input in a value or an rnncomp error, within a
time limit, evaluating nothing; what parses prints and parses back to the same thing. A differential
fuzzer (tests/differential.py) compiles random cells on numba-cpu and the numpy backend and compares
forward values and gradients. `python -m tests.fuzz_long` runs each for thousands of inputs.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ir import parse_cells
from ir.printer import print_cell
from ir.program_parser import parse_program
from ir.program_printer import print_program
from tests import text_fuzz
from tests.text_fuzz import cell_texts, mutants, parse_clean, program_texts

FUZZ = settings(
    deadline=None,
    derandomize=True,  # the same inputs on every CI run; tests/fuzz_long.py draws new ones
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def _round_trips_cells(cells) -> None:
    text = "".join(print_cell(c) for c in cells)
    again = parse_cells(text)
    assert again == cells and "".join(print_cell(c) for c in again) == text, text


def _round_trips_program(prog) -> None:
    text = print_program(prog)
    again = parse_program(text)
    assert again == prog and print_program(again) == text, text


def check_cell_text(text: str) -> str:
    status, value = parse_clean(parse_cells, text)
    if status == "ok":
        _round_trips_cells(value)
    return status


def check_program_text(text: str) -> str:
    status, value = parse_clean(parse_program, text)
    if status == "ok":
        _round_trips_program(value)
    return status


@settings(FUZZ, max_examples=400)
@given(cell_texts)
def test_cell_grammar_fuzz(text):
    check_cell_text(text)


@settings(FUZZ, max_examples=400)
@given(program_texts)
def test_program_grammar_fuzz(text):
    check_program_text(text)


def seed_texts() -> list[tuple[str, str]]:
    """Printer output to mutate: the example cells, random cells, and every stage of two programs."""
    import rnncomp as rc
    from tests.cellgen import random_cell
    from tests.support import EXAMPLES, cell_of

    seeds = [("cell", print_cell(cell_of(n))) for n in EXAMPLES]
    seeds += [("cell", print_cell(random_cell(s))) for s in range(6)]
    for name, mode in (("lstm", "loop"), ("narx", 2)):
        prog = rc.compile(cell_of(name), length="T", unroll=mode, backend="numpy")
        for variant in ({}, {"grad": True}, {"lengths": True}):
            seeds += [("program", print_program(p)) for p in prog.stages(**variant).values()]
    return seeds


SEEDS = seed_texts()


@settings(FUZZ, max_examples=1200)
@given(mutants(SEEDS))
def test_mutated_printer_output_fuzz(mutant):
    kind, text = mutant
    (check_cell_text if kind == "cell" else check_program_text)(text)


def test_the_payloads_never_ran():
    """The fuzzers' strings and names hold code that would create this file if any text were run."""
    assert not os.path.exists(text_fuzz.MARKER)


def test_a_hang_or_a_foreign_exception_is_a_failure():
    """The fuzzers' own checks can fail: a parser that hangs, raises a non-rnncomp error or evaluates."""
    import time

    with pytest.raises(text_fuzz.FuzzFailure, match="took more than"):
        parse_clean(lambda t: time.sleep(5), "x", seconds=0.2)
    with pytest.raises(text_fuzz.FuzzFailure, match="KeyError"):
        parse_clean(lambda t: {}[t], "x")
    with pytest.raises(text_fuzz.FuzzFailure, match="eval"):
        parse_clean(lambda t: eval(t), "1 + 1")
    with pytest.raises(text_fuzz.FuzzFailure, match="eval"):
        parse_clean(lambda t: _swallow(lambda: eval(t)), "1 + 1")  # caught by the parser: still seen


def _swallow(f):
    try:
        f()
    except Exception:  # noqa: BLE001, S110
        pass


# ---------------------------------------------------------------- names as injection attempts

_CALLS_NOBODY_MAKES = {
    "eval",
    "exec",
    "compile",
    "__import__",
    "open",
    "getattr",
    "setattr",
    "globals",
    "breakpoint",
    "input",
    "system",
    "popen",
    "remove",
    "unlink",
    "rmtree",
    "spawn",
    "fork",
}


def generated_calls(source: str) -> set[str]:
    """The names of everything the generated module calls (`f(...)` and `a.f(...)`)."""
    import ast

    called = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            f = node.func
            called.add(f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else "?")
    return called


def check_names(names: dict[str, str]) -> str:
    """A cell whose seq, param, state, output and cell names are `names`: an rnncomp error, or generated
    code of its last stages (numba-cpu and numba-cuda, printed, not compiled) that parses and calls
    nothing it should not."""
    import rnncomp as rc
    from ir import RnncompError
    from rnncomp.backends.numba_cpu import generate_source
    from rnncomp.backends.numba_cuda.codegen import generate_source as cuda_source

    try:
        g = rc.Graph(names["cell"])
        x = g.seq(names["seq"], ("B", 2), "f64")
        W = g.param(names["param"], (2, 2), "f64")
        h = g.state(names["state"], ("B", 2), "f64")
        h.define(rc.tanh(x @ W + h.prev(1)))
        g.output(names["out"], h)
        prog = rc.compile(g.build(), length="T", unroll="loop", backend="numpy", dtype="float64")
        finals = [list(prog.stages(**v).values())[-1] for v in ({}, {"grad": True}, {"lengths": True})]
        sources = [gen(p, "float64") for p in finals for gen in (generate_source, cuda_source)]
    except RnncompError:
        return "error"
    for src in sources:
        bad = generated_calls(src) & _CALLS_NOBODY_MAKES
        assert not bad, (names, bad)
    return "ok"


_LIKE_GENERATED = [
    "np",
    "math",
    "numba",
    "cuda",
    "prange",
    "range",
    "carray",
    "njit",
    "cfunc",
    "FASTMATH",
    "BLAS",
    "program",
    "rows_0",
    "run_blocks",
    "as_pointer",
    "v1",
    "t0",
    "t0_u2",
    "in1",
    "in_x",
    "d_B",
    "n_threads",
    "p0",
    "args",
    "a0",
    "i0",
    "self",
    "output",
    "lengths",
    "lengths_lo",
    "__builtins__",
]
_HOSTILE = st.one_of(
    st.sampled_from(text_fuzz._PAYLOADS + text_fuzz._ODD_NAMES + _LIKE_GENERATED),
    st.sampled_from(["a b", "a\nb", "x'", 'x"', "x#", "x;y", "x)", "x.y", "x-y", "0x", "é", "x\x00"]),
    st.text(max_size=20),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True),
)
_NAME_SLOTS = {"cell": "c", "seq": "x", "param": "W", "state": "h", "out": "y"}


@settings(FUZZ, max_examples=300)
@given(st.sampled_from(sorted(_NAME_SLOTS)), _HOSTILE)
def test_names_as_injection_attempts(slot, name):
    check_names({**_NAME_SLOTS, slot: name})


def test_names_like_generated_identifiers_compile_and_agree():
    """Names that the generated code also uses (np, math, program, v1, in1, ...) are kept apart from
    its own identifiers: a cell of such names compiles on numba-cpu and agrees with numpy."""
    import numpy as np

    import rnncomp as rc

    g = rc.Graph("program")
    x, x2 = g.seq("np", ("B", 2), "f64"), g.seq("in1", ("B", 2), "f64")
    W, U = g.param("math", (2, 2), "f64"), g.param("v1", (2, 2), "f64")
    h = g.state("range", ("B", 2), "f64")
    h.define(rc.tanh(x @ W + x2 @ U + h.prev(1)))
    g.output("t0", h)
    g.output("d_B", rc.sigmoid(h))
    cell = g.build()
    rng = np.random.default_rng(0)
    args = {"np": rng.standard_normal((3, 2, 2)), "in1": rng.standard_normal((3, 2, 2))}
    args |= {"math": rng.standard_normal((2, 2)), "v1": rng.standard_normal((2, 2))}
    out, back = rc.compile(cell, backend="numba-cpu", dtype="float64").vjp(**args)
    want, back_want = rc.compile(cell, backend="numpy", dtype="float64").vjp(**args)
    cot = {k: np.ones_like(v) for k, v in want.items()}
    for got, ref in ((out, want), (back(cot), back_want(cot))):
        assert sorted(got) == sorted(ref)
        for k in ref:
            np.testing.assert_allclose(got[k], ref[k], rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- differential: numba-cpu against numpy

# One random cell's forward and backward programs cost 10-60 s of Numba compile on the shared 2-core
# machine (partial unrolls with lengths the most), so CI checks a few small cells in the cheaper modes;
# `python -m tests.fuzz_long --cells N` checks thousands in every mode.
DIFFERENTIAL_CI = [
    ([0, 1], 10, {"unroll": "loop", "lengths": False}),
    ([2], 11, {"unroll": "full", "T": 2}),
    ([3], 12, {"unroll": "loop", "lengths": True, "reverse": True}),
]


@pytest.mark.parametrize("seeds, batch_seed, options", DIFFERENTIAL_CI)
def test_differential_numba_cpu_agrees_with_numpy(seeds, batch_seed, options):
    from tests.differential import check_batch

    batch = check_batch(seeds, batch_seed, max_ops=6, **options)
    assert not batch.problems, (batch.options, batch.problems)
