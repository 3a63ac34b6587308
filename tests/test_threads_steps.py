"""A row loop whose rows cannot usefully be split (few rows, or weights each block would stream):
its steps' recurrent GEMMs split by columns across the threads (numba_cpu/stepgemm.py), chosen by
launch.step_parts from the step's work, and the same results as on one thread."""

from __future__ import annotations

import re

import numba
import numpy as np
import pytest

import rnncomp as rc
from rnncomp import Param, Seq, State
from rnncomp.backends.numba_cpu import blas, gemm, launch, stepgemm
from rnncomp.backends.numba_cpu.errors import NumbaBackendError
from tests.support import random_args, random_lengths

MB = 1 << 20


@rc.cell(name="lstm")
def lstm(
    x: Seq["B", "I"],  # noqa: F821
    h: State["B", "H"],  # noqa: F821
    c: State["B", "H"],  # noqa: F821
    Wx: Param["I", "4*H"],  # noqa: F821
    Wh: Param["H", "4*H"],  # noqa: F821
):
    i, f, g, o = rc.split(x @ Wx + h @ Wh, 4, axis=-1)
    c = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
    h = rc.sigmoid(o) * rc.tanh(c)
    return {"h": h, "c": c, "y": h}


@rc.cell(name="gru")
def gru(x: Seq["B", "I"], h: State["B", "H"], W: Param["I", "3*H"], U: Param["H", "3*H"]):  # noqa: F821
    x_r, x_z, x_n = rc.split(x @ W, 3)
    h_r, h_z, h_n = rc.split(h @ U, 3)
    r, z = rc.sigmoid(x_r + h_r), rc.sigmoid(x_z + h_z)
    return {"h": (1 - z) * rc.tanh(x_n + r * h_n) + z * h}


def plan(prog: rc.CompiledProgram, B: int, threads: int, grad: bool = False) -> list[tuple[int, int]]:
    """Each row loop's (column slices, row blocks) at batch B on `threads` threads, as the generated
    program decides them (its step_parts and blocks_for lines, evaluated)."""
    src = prog.source(grad=grad)
    env = {"n_threads": threads, "d_B": B, "STEP_WORK": launch.step_work(), "ROW_WORK": launch.row_work(), "n0": 7}
    env.update(step_parts=launch.step_parts, blocks_for=launch.blocks_for)
    out = []
    for m in re.finditer(r"(st\d+) = (step_parts\(.*\))\n\s*(np\d+) = (blocks_for\(.*\))", src):
        env[m.group(1)] = eval(m.group(2), env)  # noqa: S307 - the generator's own expression
        out.append((env[m.group(1)], eval(m.group(4), env)))  # noqa: S307
    assert out, src
    return out


def test_step_parts_splits_only_rows_that_blocks_cannot_use():
    w = launch.STEP_WORK
    assert launch.step_parts(2, 1, 2 * w, 4 * MB, w) == 2  # B = 1: nothing for row blocks
    assert launch.step_parts(2, 4, 2 * w, 1 * MB, w) == 2  # blocks of 2 rows: loop nests, each over all of W
    assert launch.step_parts(2, 1, 2 * w - 1, 4 * MB, w) == 1  # a slice would get less than STEP_WORK
    assert launch.step_parts(1, 1, 100 * w, 4 * MB, w) == 1  # one thread: never split
    assert launch.step_parts(2, 64, 100 * w, 1 * MB, w) == 1  # blocks of 32 rows, W in each core's cache
    assert launch.step_parts(2, 16, 100 * w, 4 * MB, w) == 2  # ... but a W that each block would stream
    assert launch.step_parts(4, 2, 3 * w, 4 * MB, w) == 3  # never more slices than the work allows
    assert launch.step_parts(2, 0, 0, 4 * MB, w) == 1  # an empty batch


@pytest.mark.parametrize("H, B, want", [(512, 1, 2), (256, 4, 2), (1024, 4, 2), (32, 1, 1), (128, 64, 1), (32, 16, 1)])
def test_the_plan_splits_class_1_steps_by_columns_and_not_small_ones(H, B, want):
    """Shortfall class 1 of the shape sweep (2 threads, B <= 4, H >= 256) gets column slices and one
    block, forward and backward; small steps and many rows do not (by the plan, not by timing)."""
    prog = rc.compile(rc.with_dims(lstm, I=H, H=H), length="T", backend="numba-cpu", dtype="float32")
    for grad in (False, True):
        for parts, blocks in plan(prog, B, 2, grad):
            assert parts == want
            assert blocks == 1 if want > 1 else True
        assert all(parts == 1 for parts, _ in plan(prog, B, 1, grad))  # the user's one thread is respected
    assert "gemm_step(" in prog.source(), prog.source()


def test_step_work_comes_from_the_environment_and_is_checked(monkeypatch):
    monkeypatch.setenv(launch.STEP_WORK_ENV, "777")
    assert launch.step_work() == 777
    monkeypatch.delenv(launch.STEP_WORK_ENV)
    assert launch.step_work() == launch.STEP_WORK
    monkeypatch.setenv(launch.STEP_WORK_ENV, "none")
    with pytest.raises(NumbaBackendError, match="environment variable RNNCOMP_STEP_WORK: expected an int >= 1"):
        launch.step_work()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m", [1, 3, 6])
@pytest.mark.parametrize("trans", [False, True])
def test_gemm_step_slices_agree_with_numpy(dtype, m, trans):
    r = np.random.default_rng(m)
    k, n = 40, 200  # 200 = 2 slices of 112 and 88 columns
    a = r.standard_normal((m, k)).astype(dtype)
    b = r.standard_normal((n, k) if trans else (k, n)).astype(dtype)
    want = a @ (b.T if trans else b)
    packed = gemm.pack_b(b, trans, m, blas.MODE)
    for parts in (1, 2, 3):
        out = np.full((m, n), np.nan, dtype)
        stepgemm.gemm_step(a, packed, b, out, trans, parts, blas.MODE)
        np.testing.assert_allclose(out, want, rtol=1e-12 if dtype == np.float64 else 1e-5, atol=1e-4)


@pytest.mark.parametrize("cell", [lstm, gru], ids=["lstm", "gru"])
@pytest.mark.parametrize("B", [3, 6])  # slices as loop nests (<= 3 rows) and as BLAS calls
def test_split_steps_agree_with_one_thread_and_the_oracle(monkeypatch, cell, B):
    """float64, forward and gradients with lengths: 2 threads (steps in column slices) against 1
    thread to 1e-10, and both against the numpy backend. H = 160: a weight too big for the
    generator's own loop nest (codegen.SMALL_WEIGHT), so every step calls gemm_step."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 Numba threads")
    monkeypatch.setenv(launch.STEP_WORK_ENV, "1")  # any step's work pays for slices
    c = rc.with_dims(cell, I=8, H=160)
    args = random_args(c, 6, B, seed=B, inits=True)
    lengths = random_lengths(6, B, seed=B)
    runs = {}
    for backend, threads in (("numpy", 1), ("numba-cpu", 1), ("numba-cpu", 2)):
        prog = rc.compile(c, length="T", backend=backend, dtype="float64")
        before = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            out, backward = prog.vjp(lengths=lengths, **args)
            dy = {k: np.random.default_rng(0).standard_normal(v.shape) for k, v in out.items()}
            runs[backend, threads] = {**out, **{f"d{k}": v for k, v in backward(dy).items()}}
        finally:
            numba.set_num_threads(before)
        if backend == "numba-cpu":
            want = 2 if threads == 2 else 1
            assert [p for p, _ in plan(prog, B, threads)] == [want]
            assert {p for p, _ in plan(prog, B, threads, grad=True)} == {want}
    for k, want in runs["numpy", 1].items():
        one, two = runs["numba-cpu", 1][k], runs["numba-cpu", 2][k]
        assert np.max(np.abs(two - one)) <= 1e-10, k
        assert np.max(np.abs(two - want)) <= 1e-10, k
