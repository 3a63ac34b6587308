"""The call-time binding both Numba runners share (rnncomp/backends/common/binding.py)."""

from __future__ import annotations

import numpy as np
import pytest

import rnncomp as rc
from ir import ArgumentError
from ir.symexpr import Sym
from rnncomp.backends.common.binding import Binding
from tests.support import cell_of


def _program():
    prog = rc.compile(cell_of("elman"), length="T", unroll=2, backend="numpy")
    return list(prog.stages().values())[-1]


def test_dims_come_from_symbols_then_array_extents():
    b = Binding(_program())
    env = b.env({"x": np.zeros((5, 3, 8))}, {"T": 5})
    assert env == {"T": 5, "B": 3} and b.dim("B", env) == 3


def test_counts_are_evaluated_and_memoised():
    b = Binding(_program())
    assert b.count(7, {}) == 7 and b.count(Sym("T"), {"T": 9}) == 9
    assert b.count(Sym("T//2"), {"T": 9}) == 4 and b.count(Sym("T%2"), {"T": 9}) == 1
    assert b.count(Sym("T//2"), {"T": 11}) == 5  # the memo is keyed by the symbols' values


def test_an_unbound_dim_is_named():
    with pytest.raises(ArgumentError, match=r"program 'elman': dim 'Q' is not bound by any array or symbol"):
        Binding(_program()).dim("Q", {"T": 5})
