"""Every example x unroll mode x length x lengths agrees with the oracle (float64), and the IR is as promised."""

from __future__ import annotations

import numpy as np
import pytest

import rnncomp as rc
from rnncomp.reference import run as oracle
from tests.support import EXAMPLES, cell_of, max_err, random_args, random_lengths

MODES = ["full", "loop", 2, 3, 5]
LENGTHS = [0, 1, 2, 7, 16]
B = 3


@pytest.fixture(scope="module")
def programs():
    """One compiled program per example x mode, symbolic T: it serves every length below."""
    return {
        (n, m): rc.compile(cell_of(n), length="T", unroll=m, backend="numpy", dtype="float64")
        for n in EXAMPLES
        for m in MODES
    }


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_agrees_with_oracle(programs, name, mode, T, with_lengths):
    cell = cell_of(name)
    args = random_args(cell, T, B, seed=T, inits=True)
    kw = {"lengths": random_lengths(T, B, seed=T)} if with_lengths else {}
    want = oracle(cell, **kw, **args, strict=True)
    got = programs[(name, mode)](**kw, **args)
    assert max_err(got, want) <= 1e-12


def _reverse_rows(a: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each row's first L_b steps in reverse order (TensorFlow's reverse_sequence); the rest as is."""
    out = a.copy()
    for b, L in enumerate(lengths):
        out[:L, b] = a[:L, b][::-1]
    return out


@pytest.mark.parametrize("name", ["elman", "lstm", "narx"])
@pytest.mark.parametrize("mode", ["full", "loop", 3])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_reverse_is_the_oracle_on_reversed_rows(name, mode, with_lengths):
    cell, T = cell_of(name), 7
    args = random_args(cell, T, B, seed=3, inits=True)
    L = random_lengths(T, B, seed=3) if with_lengths else np.full(B, T)
    kw = {"lengths": L} if with_lengths else {}
    flipped = {k: (_reverse_rows(v, L) if k in {s.name for s in cell.seqs} else v) for k, v in args.items()}
    want = oracle(cell, **kw, **flipped, strict=True)
    want = {k: (_reverse_rows(v, L) if k in cell.outputs else v) for k, v in want.items()}
    prog = rc.compile(cell, length="T", unroll=mode, dtype="float64", reverse=True)
    assert max_err(prog(**kw, **args), want) <= 1e-12


def test_concrete_length_program():
    cell = cell_of("lstm")
    args = random_args(cell, 6, B)
    for mode in MODES:
        prog = rc.compile(cell, length=6, unroll=mode, dtype="float64")
        assert max_err(prog(**args), oracle(cell, **args)) <= 1e-12
        with pytest.raises(rc.ArgumentError, match=r"argument 'x' \(seq\): expected shape \(T, B, 16\)"):
            prog(**random_args(cell, 5, B))


def test_full_unroll_specialises_per_length_and_caches():
    prog = rc.compile(cell_of("elman"), length="T", unroll="full", dtype="float64")
    for T in (3, 5, 3):
        prog(**random_args(cell_of("elman"), T, B))
    full_variants = [k for k in prog._variants if k[0] == "infer"]
    assert sorted(k[2] for k in full_variants) == [3, 5]


def test_no_step_runs_past_the_longest_length():
    cell = cell_of("elman")
    prog = rc.compile(cell, length="T", unroll="full", dtype="float64")
    prog(lengths=np.array([2, 1, 0]), **random_args(cell, 9, B))
    # the full unroll was built for max(lengths) = 2 steps, not T = 9
    assert [k[2] for k in prog._variants] == [2]


def _size(cell, mode, T=16):
    return rc.compile(cell, length=T, unroll=mode, dtype="float64").stages()["hoist"].size()


@pytest.mark.parametrize("name", EXAMPLES)
def test_ir_grows_loop_then_k_then_full(name):
    cell = cell_of(name)
    assert _size(cell, "loop") < _size(cell, 2) < _size(cell, 5) < _size(cell, "full")
    full = rc.compile(cell, length=16, unroll="full", dtype="float64").stages()
    assert all(not p.loops() for p in full.values())


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("mode", ["full", "loop", 3])
def test_hoisted_program_equals_unhoisted(name, mode):
    cell = cell_of(name)
    args = random_args(cell, 7, B, inits=True)
    plain = rc.compile(cell, length="T", unroll=mode, dtype="float64", passes=["simplify"])
    hoisted = rc.compile(cell, length="T", unroll=mode, dtype="float64")
    assert max_err(hoisted(**args), plain(**args)) <= 1e-12


def test_hoist_moves_the_input_projection_out_of_the_loop():
    from ir import LoopView

    prog = rc.compile(cell_of("lstm"), length="T", unroll="loop", dtype="float64")
    (loop,) = prog.stages()["simplify#2"].loops()
    v = LoopView(loop)
    stacked = [u.node for u in v.xs]
    assert [n.op for n in stacked] == ["matmul"]  # x @ Wx over all T*B rows
    assert stacked[0].type.shape == ("T", "B", 128)
    assert sum(n.op == "matmul" for n in v.body.nodes()) == 1  # only h @ Wh stays


@pytest.mark.parametrize("name", EXAMPLES)
def test_full_hoist_batches_only_what_does_not_depend_on_the_state(name):
    """Batching a step's value over all T (say tanh(x@W + h0@U)) would be right at that step but T times the work."""
    cell = cell_of(name)
    prog = rc.compile(cell, length=5, unroll="full", dtype="float64").stages()["simplify#2"]
    batched = [n for n in prog.nodes() if n.op not in ("input", "stack") and n.type.shape[:1] == (5,)]
    inits = {n.name for n in prog.inputs if prog.roles[n.name] == "init"}

    def reaches_init(n, seen=None):
        seen = set() if seen is None else seen
        if id(n) in seen:
            return False
        seen.add(id(n))
        return n.name in inits and n.op == "input" or any(reaches_init(u.node, seen) for u in n.inputs)

    assert not any(reaches_init(n) for n in batched)
    assert batched or name == "three_node"  # its x enters through concat([x, C[t-1]]), which stays per step


@pytest.mark.parametrize("mode", ["full", "loop", 3])
def test_a_sequence_input_that_is_itself_an_output(mode):
    g = rc.Graph("echo")
    x = g.seq("x", ("B", 2))
    h = g.state("h", ("B", 2))
    h.define(rc.tanh(x + h.prev()))
    g.output("y", x)
    cell = g.build()
    args = random_args(cell, 5, 2)
    assert max_err(rc.compile(cell, length="T", unroll=mode, dtype="float64")(**args), oracle(cell, **args)) <= 1e-12


def test_a_loop_is_rebuilt_through_loopview_replace():
    """LoopView.replace with the loop's own groups gives an equal loop; dropping a stacked result
    keeps operands, params, results, counts and type in step (what simplify and hoist use)."""
    from ir import LoopView
    from ir.program import Region

    prog = rc.compile(cell_of("lstm"), length="T", unroll=2, backend="numpy")
    final = list(prog.stages().values())[-1]
    loop = next(n for n in final.nodes() if n.op == "loop")
    v = LoopView(loop)
    same = v.replace()
    assert Region([], [same]).structure() == Region([], [loop]).structure()
    assert "_remap" not in same.attrs and set(same.attrs) == set(loop.attrs)
    fewer = LoopView(v.replace(stacks=v.stacks()[1:]))
    assert fewer.n_buf == v.n_buf - 1 and len(fewer.node.type.items) == len(loop.type.items) - 1
    assert len(fewer.body.results) == len(v.body.results) - v.stride
    assert fewer.carries() == v.carries() and fewer.invariants() == v.invariants()
