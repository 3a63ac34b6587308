"""numba-cpu's chunked linear scan (backends/numba_cpu/scan.py): every chunk count agrees with the
sequential recurrence (float64 <= 1e-10) under reverse and per-row bounds; the float32 error of the
reassociated carries against the sequential float32 loop is measured; scanned programs on chunks
agree with the sequential programs, forward and gradients."""

from __future__ import annotations

import numpy as np
import pytest

import rnncomp as rc
from rnncomp.backends.numba_cpu import chunking
from rnncomp.backends.numba_cpu.errors import NumbaBackendError
from rnncomp.backends.numba_cpu.scan import chunks_for, scan_chunked, scan_chunks, scan_steps
from tests.hand_rnns import load_example
from tests.support import max_err, random_args, random_lengths

NONE = np.empty(0, np.int64)


def sequential(a, b, h0, hi, lo, rev):
    """h[t] = a[t] h[t-1] + b[t] step by step in NumPy (a row's step outside lo <= t < hi keeps h)."""
    T, B, _ = a.shape
    out, h = np.empty_like(a), h0.copy()
    for t in range(T - 1, -1, -1) if rev else range(T):
        on = np.ones(B, bool)
        if hi.size:
            on &= t < hi
        if lo.size:
            on &= t >= lo
        h = np.where(on[:, None], a[t] * h + b[t], h)
        out[t] = h
    return out


def coefficients(T, B, F, dtype, seed=0):
    """minGRU-like coefficients: a = 1 - sigmoid in (0, 1), b = sigmoid * candidate."""
    rng = np.random.default_rng(seed)
    z = 1 / (1 + np.exp(-rng.standard_normal((T, B, F))))
    return (
        (1 - z).astype(dtype),
        (z * rng.standard_normal((T, B, F))).astype(dtype),
        rng.standard_normal((B, F)).astype(dtype),
    )


def chunked(a, b, h0, hi, lo, rev, chunks):
    """scan_chunks in `chunks` chunks over time; 0: scan_steps (the one-chunk path)."""
    out = np.full_like(a, np.nan)
    if chunks == 0:
        scan_steps(a, b, h0, out, hi, lo, rev)
    else:
        scan_chunks(a, b, h0, out, hi, lo, rev, chunks)
    return out


@pytest.mark.parametrize("rev", [False, True])
@pytest.mark.parametrize("bounds", ["none", "hi", "hi+lo"])
def test_every_chunk_count_agrees_with_the_sequential_recurrence(rev, bounds):
    T, B, F = 13, 5, 3
    a, b, h0 = coefficients(T, B, F, np.float64)
    hi = random_lengths(T, B).astype(np.int64) if bounds != "none" else NONE
    lo = np.array([0, 2, 5, 13, 1], np.int64) if bounds == "hi+lo" else NONE
    want = sequential(a, b, h0, hi, lo, rev)
    for chunks in range(T + 1):  # one thread, uneven chunks, one step each, and chunks past the last step
        assert np.abs(chunked(a, b, h0, hi, lo, rev, chunks) - want).max() <= 1e-10, chunks


@pytest.mark.parametrize("spans", [(1, 1, 3), (13, 1, 3), (1, 5, 3), (13, 5, 1), (1, 1, 1)])
@pytest.mark.parametrize("which", ["a", "b", "both"])
def test_broadcast_coefficients_agree_with_the_sequential_recurrence(spans, which):
    """A coefficient broadcast along time, batch or features (a decay per feature: (1, 1, F)), through
    the C ABI generated code calls, at every chunk count, with per-row bounds."""
    T, B, F = 13, 5, 3
    a, b, h0 = coefficients(T, B, F, np.float64, seed=2)
    a_in = a[tuple(slice(0, n) for n in spans)].copy() if which in ("a", "both") else a
    b_in = b[tuple(slice(0, n) for n in spans)].copy() if which in ("b", "both") else b
    hi = random_lengths(T, B).astype(np.int64)
    for rev in (False, True):
        want = sequential(np.broadcast_to(a_in, a.shape), np.broadcast_to(b_in, b.shape), h0, hi, NONE, rev)
        for threads in (1, 2, 3, 7):
            out = np.full((T, B, F), np.nan)
            scan_chunked(a_in, b_in, h0, out, hi, NONE, rev, threads, 1)
            assert np.abs(out - want).max() <= 1e-10, (threads, rev)


def test_which_coefficient_shapes_go_to_the_chunked_scan():
    """(spans time, batch, features) per coefficient shape of a scan with output (T, B, 4, 5); None where
    no (T|1, B|1, F|1) view exists (features partly broadcast, or a rank above the output's)."""
    from rnncomp.backends.numba_cpu.emit import _scan_shape

    out = ("T", "B", 4, 5)
    assert _scan_shape(out, out) == (True, True, True)
    assert _scan_shape((4, 5), out) == (False, False, True)  # a decay per feature
    assert _scan_shape(("T", 1, 4, 5), out) == (True, False, True)
    assert _scan_shape(("B", 1, 1), out) == (False, True, False)
    assert _scan_shape((), out) == (False, False, False)
    assert _scan_shape((4, 1), out) is None and _scan_shape((1, 5), out) is None
    assert _scan_shape((2, "T", "B", 4, 5), out) is None


def test_a_diagonal_rnn_runs_its_broadcast_decay_in_chunks_forward_and_backward():
    """The real-diagonal linear RNN's decay is a param (H,): scanned in chunks in both directions, and
    agreeing with the sequential program, forward and gradients, with lengths."""
    cell = load_example("diagonal_rnn").make_diagonal_rnn(3, 4, 2)
    T, B = 23, 3
    args = random_args(cell, T, B, inits=True)
    args["lam"] = np.random.default_rng(1).uniform(0.2, 0.99, 4)
    prog = rc.compile(cell, backend="numba-cpu", dtype="float64")
    assert "scan_chunked(" in prog.source() and "scan_chunked(" in prog.source(grad=True, lengths=True)
    ref = rc.compile(cell, backend="numpy", dtype="float64", passes="simplify,hoist,simplify")
    rng = np.random.default_rng(6)
    for lengths in (None, random_lengths(T, B)):
        kw = {} if lengths is None else {"lengths": lengths}
        (o1, b1), (o2, b2) = prog.vjp(**kw, **args), ref.vjp(**kw, **args)
        cot = {k: rng.standard_normal(v.shape) for k, v in o1.items()}
        assert max(max_err(o1, o2), max_err(b1(cot), b2(cot))) <= 1e-10


def test_short_sequences():
    for T in (0, 1, 2):
        a, b, h0 = coefficients(T, 2, 4, np.float64)
        for chunks in (0, 1, 2, 4):
            got = chunked(a, b, h0, NONE, NONE, False, chunks)
            assert (
                got.shape == (T, 2, 4) and np.abs(got - sequential(a, b, h0, NONE, NONE, False)).max(initial=0) <= 1e-10
            )


def test_chunks_for_splits_only_where_each_chunk_gets_the_work():
    assert chunks_for(8, 1000, 64, 1) == 8  # as many as the threads
    assert chunks_for(8, 5, 64, 1) == 2  # at least 2 steps a chunk
    assert chunks_for(8, 1000, 64, 1000 * 64 // 3) == 3  # only chunks with min_work element-steps
    assert chunks_for(8, 1000, 64, 10**9) == 1 and chunks_for(1, 1000, 64, 1) == 1


def test_float32_error_of_the_reassociated_carries():
    """Measured (B = 2, F = 16, minGRU-like coefficients, T = 1,000 / 10,000 / 100,000, 2 to 64
    chunks): the chunked float32 scan differs from the sequential float32 loop by at most 7.5e-8
    relative to the state's largest value (2.4e-7 absolute), the same order as the sequential loop's
    own error against float64 (6.7e-8 to 7.4e-8): rounding in the carries' product chain, whose
    factors lie in (0, 1), does not grow with T."""
    T, B, F = 10_000, 2, 16
    a, b, h0 = coefficients(T, B, F, np.float32, seed=1)
    exact = sequential(a.astype(np.float64), b.astype(np.float64), h0.astype(np.float64), NONE, NONE, False)
    seq = chunked(a, b, h0, NONE, NONE, False, 0)
    par = chunked(a, b, h0, NONE, NONE, False, 8)
    scale = np.abs(exact).max()
    err_par, err_seq = np.abs(par - seq).max() / scale, np.abs(seq - exact).max() / scale
    assert err_par <= 1e-6 and err_seq <= 1e-6, (err_par, err_seq)
    assert err_par > 0  # the carries are reassociated: not bit-equal (else the test checks nothing)


def test_scan_work_comes_from_the_environment_and_is_checked(monkeypatch):
    monkeypatch.setenv(chunking.SCAN_WORK_ENV, "777")
    assert chunking.scan_work() == 777
    monkeypatch.setenv(chunking.SCAN_WORK_ENV, "")
    assert chunking.scan_work() == chunking.SCAN_WORK
    for bad in ("0", "x"):
        monkeypatch.setenv(chunking.SCAN_WORK_ENV, bad)
        with pytest.raises(NumbaBackendError, match=f"RNNCOMP_SCAN_WORK: expected an int >= 1, got '{bad}'"):
            chunking.scan_work()


@pytest.mark.parametrize("reverse", [False, True])
def test_mingru_on_chunks_agrees_with_the_sequential_program(reverse):
    """T = 29 on 2 threads (tests/conftest.py: every scan in chunks): forward and gradients, lengths."""
    cell = load_example("mingru").mingru
    T, B = 29, 3
    args = random_args(cell, T, B, inits=True)
    prog = rc.compile(cell, backend="numba-cpu", dtype="float64", reverse=reverse)
    assert "scan_chunked(" in prog.source(grad=True, lengths=True)
    ref = rc.compile(cell, backend="numpy", dtype="float64", reverse=reverse, passes="simplify,hoist,simplify")
    rng = np.random.default_rng(5)
    for lengths in (None, random_lengths(T, B)):
        kw = {} if lengths is None else {"lengths": lengths}
        (o1, b1), (o2, b2) = prog.vjp(**kw, **args), ref.vjp(**kw, **args)
        cot = {k: rng.standard_normal(v.shape) for k, v in o1.items()}
        assert max(max_err(o1, o2), max_err(b1(cot), b2(cot))) <= 1e-10
