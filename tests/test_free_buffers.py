"""`prog.free_buffers()`: the arrays numba-cpu keeps between calls are handed back on request."""

from __future__ import annotations

import numpy as np

import rnncomp as rc
from tests.support import cell_of, random_args

lstm = cell_of("lstm")


def _kept(prog) -> int:
    return sum(a.nbytes for _, _, r in prog._variants.values() for kept in r.pool.arrays.values() for a in kept)


def test_free_buffers_hands_back_every_variants_pool_and_the_next_call_still_agrees():
    prog = rc.compile(lstm, length="T", backend="numba-cpu", dtype="float64")
    args = random_args(lstm, 6, 3, seed=0)
    _, grads = prog.value_and_grad("y", **args)
    out = prog(**args)
    assert _kept(prog) > 0  # the forward, training forward and backward each keep their buffers
    prog.free_buffers()
    assert _kept(prog) == 0
    np.testing.assert_array_equal(out["y"], prog(**args)["y"])  # held outputs stay valid, calls still work
    again = prog.value_and_grad("y", **args)[1]
    for k in grads:
        np.testing.assert_array_equal(again[k], grads[k])


def test_free_buffers_reaches_the_programs_of_unroll_auto_and_other_backends():
    auto = rc.compile(lstm, length="T", backend="numba-cpu", dtype="float64", unroll="auto")
    auto(**random_args(lstm, 4, 2, seed=1))
    children = list(auto._auto._children.values())
    assert children and any(_kept(c) > 0 for c in children)
    auto.free_buffers()
    assert all(_kept(c) == 0 for c in children)
    ref = rc.compile(lstm, length="T", backend="numpy", dtype="float64")
    ref(**random_args(lstm, 4, 2, seed=1))
    ref.free_buffers()  # no pool there: nothing to do, no error
