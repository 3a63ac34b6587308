"""Threads on numba-cpu: how many a loop or a GEMM uses (by its work), the user's thread count
respected (NUMBA_NUM_THREADS, numba.set_num_threads, backend_options threads / RNNCOMP_THREADS), bad
counts refused with messages naming the option, and OpenMP's wait policy set before libgomp loads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

import rnncomp as rc
from ir import ArgumentError
from rnncomp import Param, Seq, State
from rnncomp.backends import threads
from rnncomp.backends.numba_cpu import gemm, launch, openmp
from rnncomp.backends.numba_cpu.errors import NumbaBackendError

ROOT = Path(__file__).resolve().parent.parent


@rc.cell(name="elman")
def elman(x: Seq["B", 8], h: State["B", 32], W: Param[32, 32], U: Param[8, 32]):
    return {"h": rc.tanh(h @ W + x @ U)}


def elman_args(T: int, B: int) -> dict:
    r = np.random.default_rng(0)
    return {
        "x": r.standard_normal((T, B, 8), dtype=np.float32),
        "W": 0.1 * r.standard_normal((32, 32), dtype=np.float32),
        "U": 0.1 * r.standard_normal((8, 32), dtype=np.float32),
    }


# ------------------------------------------------------------------ how many threads the work gets


def test_a_gemm_splits_only_into_parts_of_split_work():
    w = gemm.SPLIT_WORK
    assert gemm.split_parts(w - 1, 2) == 1  # less than one part's worth: on the calling thread
    assert gemm.split_parts(2 * w - 1, 2) == 1  # two parts would each get less than SPLIT_WORK
    assert gemm.split_parts(2 * w, 2) == 2
    assert gemm.split_parts(100 * w, 2) == 2  # never more than the threads
    assert gemm.split_parts(3 * w, 4) == 3
    assert gemm.split_parts(0, 8) == 1
    assert gemm.split_parts(100 * w, 1) == 1


def test_a_row_loop_gets_a_block_per_thread_only_as_its_work_allows():
    assert launch.blocks_for(2, 64, 10**9, 10**6) == 2
    assert launch.blocks_for(8, 3, 10**9, 10**6) == 3  # never more blocks than rows
    assert launch.blocks_for(2, 64, 10**6 + 5, 10**6) == 1  # two blocks would each get half of it
    assert launch.blocks_for(4, 64, 3 * 10**6, 10**6) == 3
    assert launch.blocks_for(1, 64, 10**12, 1) == 1  # never more than the threads
    assert launch.blocks_for(2, 0, 0, 10**6) == 1  # an empty batch: one (empty) block
    assert launch.blocks_for(2, 64, 10**9, 0) == 2  # a threshold of 0 reads as 1


def test_the_generator_estimates_a_row_steps_work():
    src = rc.compile(elman, backend="numba-cpu").source()
    m = re.search(r"= blocks_for\(1 if st0 > 1 else n_threads, d_B, (\w+) \* d_B \* (\d+), ROW_WORK\)", src)
    assert m is not None, src
    per_row_step = int(m.group(2))
    # h @ W: 32 x 32 multiply-adds a row; the add and the tanh: 32 elements each (x @ U is hoisted)
    assert 32 * 32 + 2 * 32 <= per_row_step <= 32 * 32 + 4 * 32
    assert f"ROW_WORK = {launch.row_work()}" in src


def test_row_work_comes_from_the_environment_and_is_checked(monkeypatch):
    monkeypatch.setenv(launch.ROW_WORK_ENV, "12345")
    assert launch.row_work() == 12345
    monkeypatch.delenv(launch.ROW_WORK_ENV)
    assert launch.row_work() == launch.ROW_WORK
    for bad in ("0", "-3", "many"):
        monkeypatch.setenv(launch.ROW_WORK_ENV, bad)
        with pytest.raises(
            NumbaBackendError, match=f"environment variable RNNCOMP_ROW_WORK: expected an int >= 1, got '{bad}'"
        ):
            launch.row_work()


def test_results_are_the_same_on_one_block_and_on_several(monkeypatch):
    args = elman_args(7, 5)
    want = rc.compile(elman, backend="numpy")(**args)["h"]
    for work in ("1", str(10**12)):  # every loop in blocks / every loop on one thread
        monkeypatch.setenv(launch.ROW_WORK_ENV, work)
        got = rc.compile(elman, backend="numba-cpu")(**args)["h"]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ the user's thread count


def threads_passed(prog, T: int, B: int) -> int:
    """The thread count the runner passes to the generated program for a call."""
    args = elman_args(T, B)
    prog(**args)
    runner = prog._runner("infer", False, T)
    values = runner.arguments({**args, "h": np.zeros((B, 32), np.float32)}, {"T": T, "B": B})
    return values[runner.threads_at[0]]


def test_numbas_thread_count_is_respected_and_never_exceeded():
    pool = numba.config.NUMBA_NUM_THREADS
    prog = rc.compile(elman, backend="numba-cpu")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert threads_passed(prog, 4, 3) == 1
        numba.set_num_threads(pool)
        assert threads_passed(prog, 4, 3) == pool
        if pool >= 2:
            capped = rc.compile(elman, backend="numba-cpu", backend_options={"threads": 1})
            assert threads_passed(capped, 4, 3) == 1  # the cap lowers Numba's count
            two = rc.compile(elman, backend="numba-cpu", backend_options={"threads": 2})
            numba.set_num_threads(1)
            assert threads_passed(two, 4, 3) == 1  # and never raises it
    finally:
        numba.set_num_threads(before)


def test_the_environment_gives_the_default_cap(monkeypatch):
    monkeypatch.setenv(threads.ENV, "1")
    prog = rc.compile(elman, backend="numba-cpu")
    assert prog.backend_options["threads"] == 1
    assert threads_passed(prog, 4, 3) == 1
    assert "threads" not in rc.compile(elman, backend="numpy").backend_options  # other backends ignore it


@pytest.mark.parametrize(
    "bad, message",
    [
        (0, r"backend_options\['threads'\]: expected an int >= 1, got 0: a program runs on at least one thread"),
        (-2, r"backend_options\['threads'\]: expected an int >= 1, got -2"),
        ("2", r"backend_options\['threads'\]: expected an int >= 1 \(or None: Numba's thread count\), got '2'"),
        (True, r"backend_options\['threads'\]: expected an int >= 1 \(or None: Numba's thread count\), got True"),
        (2.0, r"got 2.0"),
    ],
)
def test_bad_thread_counts_are_refused_naming_the_option(bad, message):
    with pytest.raises(ArgumentError, match=message):
        rc.compile(elman, backend="numba-cpu", backend_options={"threads": bad})


def test_more_threads_than_the_machine_has_is_refused():
    cores = threads.machine_cores()
    with pytest.raises(
        ArgumentError,
        match=rf"backend_options\['threads'\]: {cores + 1} threads is more than this machine has: this process may "
        rf"run on {cores} cores? \(os.sched_getaffinity\)",
    ):
        rc.compile(elman, backend="numba-cpu", backend_options={"threads": cores + 1})


def test_more_threads_than_numbas_pool_is_refused(monkeypatch):
    monkeypatch.setattr(threads, "machine_cores", lambda: 64)
    monkeypatch.setattr(threads, "numba_pool", lambda: 2)
    with pytest.raises(
        ArgumentError,
        match=r"backend_options\['threads'\]: 3 threads is more than Numba's pool of 2 \(NUMBA_NUM_THREADS=2\); ask "
        "for fewer, or set NUMBA_NUM_THREADS before numba is imported",
    ):
        rc.compile(elman, backend="numba-cpu", backend_options={"threads": 3})
    assert rc.compile(elman, backend="numba-cpu", backend_options={"threads": 2}).backend_options["threads"] == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("0", "environment variable RNNCOMP_THREADS: expected an int >= 1, got 0"),
        ("two", "environment variable RNNCOMP_THREADS: expected an int >= 1, got 'two'"),
        ("100000", "environment variable RNNCOMP_THREADS: 100000 threads is more than this machine has"),
    ],
)
def test_a_bad_environment_thread_count_is_refused_naming_it(monkeypatch, text, message):
    monkeypatch.setenv(threads.ENV, text)
    with pytest.raises(ArgumentError, match=re.escape(message)):
        rc.compile(elman, backend="numba-cpu")


def test_a_thread_count_for_a_backend_without_threads_is_refused():
    with pytest.raises(
        ArgumentError, match=r"backend_options\['threads'\]: only the numba-cpu backend runs on a thread count; numpy"
    ):
        rc.compile(elman, backend="numpy", backend_options={"threads": 1})


# ------------------------------------------------------------------ threads that sleep after a call


def test_the_wait_policy_is_set_only_where_the_user_has_not():
    env: dict = {}
    assert openmp.quiet_threads(env) is True and env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "active"}
    assert openmp.quiet_threads(env) is False and env == {"OMP_WAIT_POLICY": "active"}


@pytest.mark.parametrize("given, want", [(None, "GOMP_SPINCOUNT = '0'"), ("active", "OMP_WAIT_POLICY = 'ACTIVE'")])
def test_the_backend_sets_the_wait_policy_before_openmp_loads(given, want):
    """libgomp prints what it read when it loads (OMP_DISPLAY_ENV): no spinning (a spin count of 0,
    where unset it is 300000) unless the user chose a policy."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["OMP_DISPLAY_ENV"] = "VERBOSE"
    if given:
        env["OMP_WAIT_POLICY"] = given
    code = (
        "import rnncomp.backends.numba_cpu, numba\n"
        "from rnncomp.backends.numba_cpu import fpenv\n"
        "fpenv.start_threads()\n"
        "print(numba.threading_layer())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    if "OPENMP DISPLAY ENVIRONMENT" not in out.stderr:
        pytest.skip(f"Numba runs on {out.stdout.split()[-1]!r} here, not on GNU OpenMP")
    assert want in out.stderr, out.stderr
