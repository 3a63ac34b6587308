"""ir.limits.MAX_UNROLL_STEPS and MAX_INT on compile's length and unroll: a full unroll or an unroll factor
that would copy the cell past the limit is one clear error (not a MemoryError after minutes)."""

import numpy as np
import pytest

import rnncomp as rc
from ir import ArgumentError, PassError
from ir.limits import MAX_UNROLL_STEPS
from rnncomp import Seq


@rc.cell
def act(x: Seq["B", 2]):
    return {"y": rc.tanh(x)}


def test_a_full_unroll_past_the_limit_is_refused_at_compile():
    with pytest.raises(
        ArgumentError,
        match=r"argument 'length': a full unroll of length 10001 is above the limit of 10000 steps "
        r"\(ir.limits.MAX_UNROLL_STEPS\)",
    ):
        rc.compile(act, length=MAX_UNROLL_STEPS + 1, unroll="full")
    with pytest.raises(ArgumentError, match=r"argument 'unroll': the unroll factor 100000 is above the limit"):
        rc.compile(act, unroll=100_000)


def test_a_full_unroll_past_the_limit_is_refused_at_the_call():
    prog = rc.compile(act, length="T", unroll="full", backend="numpy")
    with pytest.raises(PassError, match=r"unroll: a full unroll of 10001 steps is above the limit of 10000"):
        prog(x=np.zeros((MAX_UNROLL_STEPS + 1, 1, 2)))


def test_a_length_above_int64_is_refused():
    with pytest.raises(ArgumentError, match=r"argument 'length': an int of 16610 bits is above the limit of 2\*\*63-1"):
        rc.compile(act, length=10**5000)
