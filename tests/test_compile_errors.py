"""Bad input to rc.compile and to a compiled program: each a clear error naming the argument."""

from __future__ import annotations

import numpy as np
import pytest

import rnncomp as rc
from tests.support import cell_of, random_args

CELL = cell_of("lstm")
ARGS = random_args(CELL, 5, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"length": None, "unroll": "full"}, "argument 'length': a full unroll needs a length"),
        ({"length": None}, "argument 'length': expected an int >= 0 or a symbol such as 'T', got None"),
        ({"length": -1}, "argument 'length': expected an int >= 0 or a symbol such as 'T', got -1"),
        ({"length": "3T"}, "argument 'length': expected an int >= 0 or a symbol such as 'T', got '3T'"),
        ({"length": "B"}, "argument 'length': symbol 'B' is already a dim of cell 'lstm'; pick another"),
        ({"unroll": 0}, "argument 'unroll': the unroll factor must be >= 1, got 0"),
        ({"unroll": 2.5}, "argument 'unroll': expected 'full', 'loop', 'auto' or an int k >= 1, got 2.5"),
        ({"unroll": "partial"}, "argument 'unroll': expected 'full', 'loop', 'auto' or an int k >= 1, got 'partial'"),
        ({"backend": "tpu"}, "argument 'backend': unknown backend 'tpu'; available:"),
        ({"dtype": "float16"}, "argument 'dtype': expected 'float32' or 'float64', got 'float16'"),
        ({"reverse": "yes"}, "argument 'reverse': expected a bool, got 'yes'"),
        (
            {"checkpoint": "cbrt"},
            "argument 'checkpoint': expected an int >= 1, 'sqrt' or a size with a unit (one of B, KiB, MiB, GiB, KB, "
            "MB, GB; e.g. '64MiB'), got 'cbrt'",
        ),
    ],
)
def test_compile_arguments(kwargs, message):
    with pytest.raises(rc.ArgumentError) as e:
        rc.compile(CELL, **kwargs)
    assert message in str(e.value)


def test_not_a_cell():
    with pytest.raises(rc.ArgumentError, match="argument 'cell': expected an rnncomp Cell"):
        rc.compile(lambda x: x)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"Wxx": ARGS["Wx"]}, "unknown argument 'Wxx' (did you mean 'Wx'?)"),
        ({"x": None}, "missing argument 'x' (seq of shape (T, B, 16))"),
        (
            {"x": ARGS["x"][:, :2], "h": np.zeros((3, 32))},
            "argument 'h' (init): expected shape (B, 32) = (2, 32), got (3, 32): dim 0 (B) is 3 here but 2 elsewhere",
        ),
        ({"h": np.zeros((4, 32))}, "argument 'h' (init): expected shape (B, 32) = (3, 32), got (4, 32)"),
        ({"Wx": np.zeros((16, 64))}, "argument 'Wx' (param): expected shape (16, 128), got (16, 64)"),
        ({"x": ARGS["x"][0]}, "argument 'x' (seq): expected rank 3 (T, B, 16), got shape (3, 16)"),
        ({"x": np.array([["a"]])}, "argument 'x' (seq): expected a float array, got dtype <U1"),
    ],
)
def test_call_arguments(change, message):
    args = {**ARGS, **change}
    args = {k: v for k, v in args.items() if v is not None}
    prog = rc.compile(CELL, dtype="float64")
    with pytest.raises(rc.ArgumentError) as e:
        prog(**args)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "lengths, message",
    [
        (np.array([1, 2, 6]), "argument 'lengths': every length must lie in [0, T] = [0, 5], got 6"),
        (np.array([1, -1, 2]), "argument 'lengths': every length must lie in [0, T] = [0, 5], got -1"),
        (np.array([1.0, 2.0, 3.0]), "argument 'lengths': expected integers, got dtype float64"),
        (np.array([1, 2]), "argument 'lengths': expected shape (B,) = (3,), got (2,)"),
    ],
)
def test_lengths(lengths, message):
    with pytest.raises(rc.ArgumentError) as e:
        rc.compile(CELL, dtype="float64")(lengths=lengths, **ARGS)
    assert message in str(e.value)


def test_concrete_length_rejects_another_T():
    with pytest.raises(rc.ArgumentError, match=r"dim 0 \(T\) is 5 here but 4 elsewhere"):
        rc.compile(CELL, length=4, dtype="float64")(**ARGS)


def test_cell_using_the_reserved_name_lengths():
    @rc.cell
    def bad(lengths: rc.Seq["B", 2], h: rc.State["B", 2]):
        h = rc.tanh(lengths + h)
        return {"h": h}

    with pytest.raises(rc.ArgumentError, match="the name 'lengths' is reserved"):
        rc.compile(bad)
