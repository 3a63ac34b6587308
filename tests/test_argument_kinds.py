"""What a call refuses, naming the argument: arrays that are not float (ints, bools, objects), masked
arrays, cotangents of those kinds, and shapes whose outputs and states could not fit in memory."""

from __future__ import annotations

import numpy as np
import pytest

import rnncomp as rc
from ir import ArgumentError
from rnncomp import Param, Seq, State


@rc.cell
def elman(x: Seq["B", 4], h: State["B", 8], W: Param[4, 8]):
    h = rc.tanh(x @ W + h)
    return {"h": h, "y": h}


X, W = np.zeros((2, 3, 4)), np.zeros((4, 8))


@pytest.fixture(scope="module")
def prog():
    return rc.compile(elman, length="T", dtype="float64", backend="numpy")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"x": X.astype(np.int64)}, "argument 'x' (seq): expected a float array, got dtype int64"),
        ({"W": W.astype(np.uint8)}, "argument 'W' (param): expected a float array, got dtype uint8"),
        ({"h": np.zeros((3, 8), bool)}, "argument 'h' (init): expected a float array, got dtype bool"),
        ({"x": X.astype(object)}, "argument 'x' (seq): expected a float array, got dtype object"),
        ({"x": X.astype(np.complex128)}, "argument 'x' (seq): expected a float array, got dtype complex128"),
        ({"W": [[0] * 8] * 4}, "argument 'W' (param): expected a float array, got dtype int64"),
        (
            {"x": np.ma.masked_array(X, mask=X == 0)},
            "argument 'x' (seq): a masked array (numpy.ma), whose mask rnncomp would drop; pass .filled(0.0)",
        ),
    ],
)
def test_only_float_arrays_are_taken(prog, change, message):
    with pytest.raises(ArgumentError) as e:
        prog(**{"x": X, "W": W, **change})
    assert message in str(e.value)


def test_float_arrays_of_another_float_dtype_are_converted(prog):
    out = prog(x=X.astype(np.float32), W=W.astype(np.float16), h=[[0.5] * 8] * 3)
    np.testing.assert_allclose(out["h"], np.full((3, 8), np.tanh(np.tanh(0.5))))


@pytest.mark.parametrize(
    "cotangent, message",
    [
        (np.zeros((2, 3, 8), object), "cotangent 'y': expected a float array, got dtype object"),
        (np.zeros((2, 3, 8), np.int32), "cotangent 'y': expected a float array, got dtype int32"),
        (np.ma.masked_array(np.zeros((2, 3, 8))), "cotangent 'y': a masked array (numpy.ma)"),
    ],
)
def test_a_cotangent_must_be_a_float_array(prog, cotangent, message):
    _, backward = prog.vjp(x=X, W=W)
    with pytest.raises(ArgumentError) as e:
        backward({"y": cotangent})
    assert message in str(e.value)


@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
def test_a_shape_too_large_for_memory_is_refused_before_anything_is_allocated(backend):
    pytest.importorskip("numba")
    p = rc.compile(elman, length="T", dtype="float64", backend=backend)
    x = np.empty((0, 10**12, 4))  # no element, but B = 10**12 makes the state h 64 TB
    with pytest.raises(ArgumentError) as e:
        p(x=x, W=W)
    assert (
        "argument 'x' of shape (0, 1000000000000, 4) binds B = 1000000000000: state 'h' of shape (B, 8) = "
        "(1000000000000, 8) would need 58.2 TiB (64000000000000 bytes of float64)"
    ) in str(e.value)
    assert "more than this machine's" in str(e.value)
    huge = np.lib.stride_tricks.as_strided(np.zeros(4), (10**12, 3, 4), (0, 0, 8))  # a view of 4 floats
    with pytest.raises(ArgumentError) as e:
        p(x=huge, W=W)
    assert "argument 'x' of shape (1000000000000, 3, 4) binds T = 1000000000000: output 'y' of shape" in str(e.value)


@rc.cell
def summed(x: Seq["B", 64]):
    return {"y": rc.sum(x, axis=-1)}


def test_the_copy_of_a_converted_argument_counts_too():
    p = rc.compile(summed, length="T", dtype="float64", backend="numpy")
    x = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (10**10, 1, 64), (0, 0, 0))
    with pytest.raises(ArgumentError) as e:
        p(x=x)
    assert (
        "the float64 C-contiguous copy of argument 'x' (shape (10000000000, 1, 64), float32) would need 4.7 TiB"
    ) in str(e.value)


@rc.cell
def _rnn(x: Seq["B", 3], h: State["B", 2], W: Param[3, 2]):  # noqa: F821
    new = rc.tanh(x @ W + h)
    return {"h": new, "y": new}


def test_a_repeated_call_is_checked_as_the_first():
    """A call with the last call's names, shapes and dtype reuses its binding (compiler._bind_again);
    any other call is bound and checked afresh: a wrong shape, dtype or name after good calls is
    still refused with the same message, and the state's zero init is a fresh array each call."""
    prog = rc.compile(_rnn, backend="numpy", dtype="float64")
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal((4, 5, 3)), rng.standard_normal((3, 2))
    first, again = prog(x=x, W=W), prog(x=x, W=W)
    np.testing.assert_array_equal(first["y"], again["y"])
    again["h"][...] = 7.0  # the outputs are the caller's: the next call's zero init is not this
    np.testing.assert_array_equal(prog(x=x, W=W)["y"], first["y"])
    longer = prog(x=rng.standard_normal((6, 5, 3)), W=W)  # another T: bound afresh
    assert longer["y"].shape == (6, 5, 2)
    with pytest.raises(ArgumentError, match=r"argument 'W' \(param\): expected shape"):
        prog(x=x, W=W[:2])
    with pytest.raises(ArgumentError, match="expected a float array"):
        prog(x=x, W=W.astype(np.int64))
    with pytest.raises(ArgumentError, match="unknown argument 'V'"):
        prog(x=x, W=W, V=W)
    np.testing.assert_array_equal(
        prog(x=x.astype(np.float32), W=W)["y"], prog(x=x.astype(np.float32).astype(np.float64), W=W)["y"]
    )
