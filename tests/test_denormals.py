"""The subnormal policy (rnncomp/backends/denormals.py): numba-cpu's "flush" and "keep", the caller's
floating-point state after a call (its thread and Numba's worker threads), the options' errors."""

import numpy as np
import pytest
from numba import njit, prange

import rnncomp as rc
from ir import ArgumentError
from rnncomp import Param, Seq, State
from rnncomp.backends import denormals
from rnncomp.backends.numba_cpu import fpenv

TINY = np.finfo(np.float32).tiny
x86 = pytest.mark.skipif(not fpenv.SUPPORTED, reason="MXCSR is x86-64's")


@rc.cell(name="decay")
def decay(x: Seq["B", 3], h: State["B", 3], a: Param[3]):
    return {"h": h * a + x}  # rows independent: blocks of rows on two threads (conftest)


@rc.cell(name="proj")
def proj(x: Seq["B", 64], W: Param[64, 256]):
    return {"y": x @ W}  # one GEMM over T*B rows, split across threads (or MKL's own)


def subnormals(v: np.ndarray) -> int:
    return int(((v != 0) & (np.abs(v) < TINY)).sum())


def decay_args(T: int) -> dict:
    return {"x": np.zeros((T, 4, 3), np.float32), "a": np.full(3, 1e-3, np.float32), "h": np.ones((4, 3), np.float32)}


@njit(parallel=True)
def halves_on_threads(v):
    """v * 0.5 with each part on a Numba thread (a subnormal result shows the thread's FTZ)."""
    out = np.empty_like(v)
    for i in prange(v.size):
        out[i] = v[i] * np.float32(0.5)
    return out


def control_bits() -> int:
    return fpenv.mxcsr() & 0xFFC0  # rounding, masks, FTZ, DAZ (bits 0-5 are sticky status flags)


@x86
def test_flush_gives_no_subnormals_and_keep_is_ieee():
    args = decay_args(14)  # 1e-3 ** 14 = 1e-42: subnormal in float32
    want = rc.compile(decay, backend="numpy")(**args)["h"]
    keep = rc.compile(decay, backend="numba-cpu", denormals="keep")(**args)["h"]
    flush = rc.compile(decay, backend="numba-cpu", denormals="flush")(**args)["h"]
    assert subnormals(want) == want.size and np.array_equal(keep, want)  # gradual underflow, bit for bit
    assert not flush.any()
    normal = decay_args(5)  # 1e-15: flushing changes nothing at normal magnitudes
    np.testing.assert_allclose(
        rc.compile(decay, backend="numba-cpu")(**normal)["h"], rc.compile(decay, backend="numpy")(**normal)["h"], 1e-6
    )


@x86
def test_flush_gradient_has_no_subnormals():
    args = decay_args(15)  # dh/dx[0] = 1e-3 ** 14
    prog = rc.compile(decay, backend="numba-cpu", denormals="flush")
    _, back = prog.vjp(**args)
    g = back({"h": np.ones((4, 3), np.float32)})
    assert subnormals(g["x"]) == 0 and not g["x"][0].any() and g["x"][-1].all()
    _, back = rc.compile(decay, backend="numba-cpu", denormals="keep").vjp(**args)
    assert subnormals(back({"h": np.ones((4, 3), np.float32)})["x"]) > 0


@x86
def test_threaded_gemm_flushes_on_every_thread():
    x, W = np.full((64, 32, 64), 1e-20, np.float32), np.full((64, 256), 1e-21, np.float32)  # products 1e-40
    assert not rc.compile(proj, backend="numba-cpu", denormals="flush")(x=x, W=W)["y"].any()
    assert subnormals(rc.compile(proj, backend="numba-cpu", denormals="keep")(x=x, W=W)["y"]) == 64 * 32 * 256


@x86
def test_callers_state_is_restored_on_its_thread_and_the_workers():
    v = np.full(64, 2e-38, np.float32)
    before = control_bits()
    for mode in ("flush", "keep"):
        rc.compile(decay, backend="numba-cpu", denormals=mode)(**decay_args(14))
        rc.compile(proj, backend="numba-cpu", denormals=mode)(
            x=np.ones((2, 32, 64), np.float32), W=np.ones((64, 256), np.float32)
        )
        assert control_bits() == before
        assert np.float32(2e-38) * np.float32(0.5) != 0  # this thread: IEEE, as before the call
        assert subnormals(halves_on_threads(v)) == v.size  # Numba's workers: IEEE too
    saved = fpenv.enter(fpenv.FLUSH)  # a caller that flushes itself (torch.set_flush_denormal) stays so
    try:
        keep = rc.compile(decay, backend="numba-cpu", denormals="keep")(**decay_args(14))["h"]
        flushing = control_bits() & fpenv.FLUSH
    finally:
        fpenv.leave(saved)
    assert subnormals(keep) == keep.size and flushing == fpenv.FLUSH  # (counted under IEEE: DAZ reads them as 0)


def test_defaults_and_environment(monkeypatch):
    monkeypatch.delenv(denormals.ENV, raising=False)
    cpu = "flush" if denormals.X86_64 else "keep"
    assert rc.compile(decay, backend="numba-cpu").denormals == cpu
    assert rc.compile(decay, backend="numpy").denormals == "keep"
    assert rc.compile(decay, backend="numba-cuda").denormals == "keep"
    monkeypatch.setenv(denormals.ENV, "keep")
    assert rc.compile(decay, backend="numba-cpu").denormals == "keep"
    assert rc.compile(decay, backend="numba-cpu", denormals=cpu).denormals == cpu  # the argument wins
    monkeypatch.setenv(denormals.ENV, "zero")
    with pytest.raises(
        ArgumentError, match="environment variable RNNCOMP_DENORMALS: expected 'flush' or 'keep', got 'zero'"
    ):
        rc.compile(decay, backend="numba-cpu")


def test_bad_values_name_the_accepted_ones():
    with pytest.raises(ArgumentError, match=r"argument 'denormals': expected 'flush' or 'keep' .*got 'ftz'"):
        rc.compile(decay, backend="numba-cpu", denormals="ftz")
    with pytest.raises(ArgumentError, match=r"numpy cannot flush subnormals \(the numpy backend is the IEEE reference"):
        rc.compile(decay, backend="numpy", denormals="flush")
    with pytest.raises(ArgumentError, match=r"numba-cuda cannot flush subnormals \(Numba's CUDA target .*fastmath"):
        rc.compile(decay, backend="numba-cuda", denormals="flush")


def test_flush_needs_x86(monkeypatch):
    monkeypatch.setattr(denormals, "X86_64", False)
    monkeypatch.setattr(denormals.platform, "machine", lambda: "aarch64")
    with pytest.raises(
        ArgumentError, match=r"numba-cpu cannot flush .*needs an x86-64 CPU \(MXCSR\); this one is 'aarch64'"
    ):
        rc.compile(decay, backend="numba-cpu", denormals="flush")
    assert rc.compile(decay, backend="numba-cpu").denormals == "keep"


def test_recurrent_passes_the_option_on():
    rct = pytest.importorskip("rnncomp.torch")
    assert rct.Recurrent(decay, backend="numba-cpu", denormals="keep").program().denormals == "keep"
    with pytest.raises(ArgumentError, match="argument 'denormals': expected 'flush' or 'keep'"):
        rct.Recurrent(decay, backend="numba-cpu", denormals="on")
