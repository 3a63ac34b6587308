"""unroll="auto": it picks among exact modes (results equal the oracle and the fixed modes), keeps
the choice on disk for the next process, obeys RNNCOMP_UNROLL, and rebuilds a bad choice file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import rnncomp as rc
from rnncomp import autotune
from rnncomp.reference import run as oracle
from tests.support import cell_of, max_err, random_args, random_lengths

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def quick(monkeypatch, tmp_path):
    """A fresh cache folder per test, RNNCOMP_UNROLL unset, and one timing round (tests time nothing)."""
    monkeypatch.setenv("RNNCOMP_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(autotune.ENV, raising=False)
    monkeypatch.setattr(autotune, "ROUNDS", 1)
    monkeypatch.setattr(autotune, "MIN_SECONDS", 0.0)


def files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.unroll.json"))


def test_buckets_and_candidates():
    assert [autotune.bucket(T) for T in (0, 1, 2, 3, 5, 8, 9, 1000)] == [0, 1, 2, 4, 8, 8, 16, 1024]
    assert autotune.candidates(0) == ["loop"]
    assert autotune.candidates(2) == ["loop", 2, "full"]
    assert autotune.candidates(8) == ["loop", 2, 4, 8, "full"]
    assert autotune.candidates(32) == ["loop", 2, 4, 8]


@pytest.mark.parametrize("with_lengths", [False, True])
def test_results_equal_the_oracle_and_the_fixed_modes(with_lengths):
    cell = cell_of("lstm")
    args = random_args(cell, 5, 3, inits=True)
    kw = {"lengths": random_lengths(5, 3)} if with_lengths else {}
    prog = rc.compile(cell, unroll="auto", backend="numpy", dtype="float64")
    assert max_err(prog(**kw, **args), oracle(cell, **kw, **args, strict=True)) <= 1e-12
    loss, grads = prog.value_and_grad("y", **kw, **args)
    (fwd,) = [c for c in prog.choice() if c.kind == "forward"]
    (train,) = [c for c in prog.choice() if c.kind == "train"]
    assert fwd.lengths == train.lengths == with_lengths
    picked = rc.compile(cell, unroll=train.mode, backend="numpy", dtype="float64")
    loss2, grads2 = picked.value_and_grad("y", **kw, **args)
    assert loss == loss2 and max_err(grads, grads2) == 0.0  # the picked mode's own numbers
    loop = rc.compile(cell, unroll="loop", backend="numpy", dtype="float64").value_and_grad("y", **kw, **args)
    assert max_err(grads, loop[1]) <= 1e-12
    out, backward = prog.vjp(**kw, **args)  # the train choice is made: vjp uses it, times nothing more
    assert len(prog.choice()) == 2
    assert max_err(backward({"y": np.ones_like(out["y"])}), loop[1]) <= 1e-12


def test_numba_cpu_picks_among_its_modes_and_agrees():
    cell = cell_of("elman")
    args = random_args(cell, 2, 2)
    prog = rc.compile(cell, unroll="auto", dtype="float64")
    assert max_err(prog(**args), oracle(cell, **args, strict=True)) <= 1e-12
    _, grads = prog.value_and_grad("y", **args)
    _, want = rc.compile(cell, dtype="float64").value_and_grad("y", **args)
    assert max_err(grads, want) <= 1e-12
    for c in prog.choice():
        assert sorted(map(str, c.times)) == ["2", "full", "loop"] and c.source == "timed"
        assert c.mode == min(c.times, key=c.times.get) and all(t > 0 for t in c.times.values())


def test_choice_says_what_was_picked(tmp_path):
    cell = cell_of("elman")
    prog = rc.compile(cell, unroll="auto", backend="numpy")
    assert prog.choice() == []
    prog(**random_args(cell, 6, 3))
    (c,) = prog.choice()
    assert (c.kind, c.lengths, c.T_bucket, c.dims) == ("forward", False, 8, {"B": 3})
    assert (c.dtype, c.source) == ("float32", "timed")
    assert list(c.times) == ["loop", 2, 4, 8, "full"] and c.mode in c.times
    assert Path(c.path).parent == tmp_path and Path(c.path).exists()
    assert str(c).startswith("forward T<=8 B=3 float32: unroll=") and "loop: " in str(c)
    prog(**random_args(cell, 7, 3))  # the same bucket: no new choice
    prog(**random_args(cell, 9, 3))  # T bucket 16
    prog(**random_args(cell, 7, 4))  # another batch
    assert [(c.T_bucket, c.dims["B"]) for c in prog.choice()] == [(8, 3), (16, 3), (8, 4)]
    with pytest.raises(rc.ArgumentError, match=r"choice\(\): this program has unroll='loop'; only unroll='auto'"):
        rc.compile(cell, backend="numpy").choice()


def test_a_second_process_reads_the_choice(tmp_path):
    cell = cell_of("elman")
    rc.compile(cell, unroll="auto", backend="numpy")(**random_args(cell, 4, 2))
    (path,) = files(tmp_path)
    mode = json.loads(path.read_text())["mode"]
    code = (
        "import rnncomp as rc; from tests.support import cell_of, random_args;"
        "cell = cell_of('elman'); p = rc.compile(cell, unroll='auto', backend='numpy');"
        "p(**random_args(cell, 4, 2)); c, = p.choice(); print(c.source, c.mode, c.path)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RNNCOMP_CACHE_DIR": str(tmp_path)}
    env.pop(autotune.ENV, None)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=120)
    assert r.stdout.split() == ["disk", str(mode), str(path)]
    assert files(tmp_path) == [path]


@pytest.mark.parametrize("value, mode", [("2", 2), ("loop", "loop"), ("full", "full")])
def test_the_environment_variable_forces_a_mode(monkeypatch, tmp_path, value, mode):
    monkeypatch.setenv(autotune.ENV, value)
    cell = cell_of("elman")
    args = random_args(cell, 5, 2)
    prog = rc.compile(cell, unroll="auto", backend="numpy", dtype="float64")
    assert max_err(prog(**args), oracle(cell, **args, strict=True)) <= 1e-12
    (c,) = prog.choice()
    assert (c.mode, c.source, c.times) == (mode, "env", {}) and "forced by RNNCOMP_UNROLL" in str(c)
    assert files(tmp_path) == []  # nothing timed, nothing written
    if mode == "full":
        with pytest.raises(rc.ArgumentError, match=r"unroll='auto' picked 'full'.*pass T=\.\.\."):
            prog.ir("unroll")
        assert "@4" in prog.ir("unroll", T=5)
    else:
        assert "loop" in prog.ir("unroll")


@pytest.mark.parametrize("value", ["partial", "0", "-2", "2.5"])
def test_a_bad_environment_value_names_the_variable(monkeypatch, value):
    monkeypatch.setenv(autotune.ENV, value)
    cell = cell_of("elman")
    prog = rc.compile(cell, unroll="auto", backend="numpy")
    msg = rf"environment variable RNNCOMP_UNROLL: expected 'loop', 'full' or an int k >= 1 .*got '{value}'"
    with pytest.raises(rc.ArgumentError, match=msg):
        prog(**random_args(cell, 3, 2))


@pytest.mark.parametrize("text", ["{not json", '{"format": "rnncomp-unroll-choice-1", "mode": "7", "times": {}}', "[]"])
def test_a_bad_choice_file_is_rebuilt_with_one_warning(tmp_path, text):
    cell = cell_of("elman")
    args = random_args(cell, 4, 2)
    rc.compile(cell, unroll="auto", backend="numpy")(**args)
    (path,) = files(tmp_path)
    path.write_text(text)
    with pytest.warns(RuntimeWarning, match=r"unroll choice file .*unreadable") as record:
        prog = rc.compile(cell, unroll="auto", backend="numpy")
        prog(**args)
        prog(**args)
    assert len([w for w in record if "unroll choice" in str(w.message)]) == 1
    assert prog.choice()[0].source == "timed"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = rc.compile(cell, unroll="auto", backend="numpy")
        again(**args)
    assert again.choice()[0].source == "disk" and again.choice()[0].mode == prog.choice()[0].mode


def test_training_chooses_per_kind_and_with_checkpoints(tmp_path):
    cell = cell_of("gru")
    args = random_args(cell, 6, 2)
    prog = rc.compile(cell, unroll="auto", backend="numpy", dtype="float64", checkpoint=4, truncate=5)
    out, backward = prog.vjp(**args)
    grads = backward({"y": np.ones_like(out["y"])})
    (c,) = prog.choice()
    assert c.kind == "train" and c.T_bucket == 8
    want = rc.compile(cell, backend="numpy", dtype="float64", checkpoint=4, truncate=5).vjp(**args)
    assert max_err(out, want[0]) <= 1e-12
    assert max_err(grads, want[1]({"y": np.ones_like(out["y"])})) <= 1e-12
    assert len(files(tmp_path)) == 1


def test_lengths_choose_by_the_longest_row_and_lists_are_bound_first():
    cell = cell_of("elman")
    args = random_args(cell, 20, 2)
    prog = rc.compile(cell, unroll="auto", backend="numpy", dtype="float64")
    L = np.array([5, 2])
    assert max_err(prog(lengths=L, **args), oracle(cell, lengths=L, **args, strict=True)) <= 1e-12
    listed = {k: v.tolist() for k, v in args.items()}  # no .shape: the T bucket is found by binding them
    assert max_err(prog(lengths=[3, 1], **listed), oracle(cell, lengths=[3, 1], **args, strict=True)) <= 1e-12
    assert [(c.lengths, c.T_bucket) for c in prog.choice()] == [(True, 8), (True, 4)]


def test_a_directory_where_the_choice_file_should_be_is_replaced(tmp_path):
    cell = cell_of("elman")
    args = random_args(cell, 4, 2)
    rc.compile(cell, unroll="auto", backend="numpy")(**args)
    (path,) = files(tmp_path)
    path.unlink()
    (path / "inside").mkdir(parents=True)
    with pytest.warns(RuntimeWarning, match=r"unroll choice file .*unreadable"):
        rc.compile(cell, unroll="auto", backend="numpy")(**args)
    assert path.is_file() and json.loads(path.read_text())["cell"] == "elman"


def test_a_cache_that_cannot_be_written_is_no_failure(monkeypatch, tmp_path):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("RNNCOMP_CACHE_DIR", str(tmp_path / "a-file" / "cache"))  # under a file
    cell = cell_of("elman")
    args = random_args(cell, 4, 2)
    prog = rc.compile(cell, unroll="auto", backend="numpy")
    assert max_err(prog(**args), oracle(cell, **args)) <= 1e-5
    assert prog.choice()[0].source == "timed"


def test_the_probe_times_short_calls_for_min_seconds_and_long_ones_for_rounds(monkeypatch):
    """Rounds go on until both ROUNDS and MIN_SECONDS are reached (at most MAX_ROUNDS): a 1 ms call gets
    hundreds of rounds, a 2 s call ROUNDS. A fake clock: each call advances it by its mode's cost."""
    monkeypatch.setattr(autotune, "ROUNDS", 3)
    monkeypatch.setattr(autotune, "MIN_SECONDS", 1.0)
    clock = [0.0]
    monkeypatch.setattr(autotune.time, "perf_counter", lambda: clock[0])
    auto = rc.compile(cell_of("elman"), length="T", unroll="auto", backend="numpy")._auto
    for cost, want in ((1e-3, 477), (2.0, 3)):  # 477 rounds of 2.1 ms: the first past 1 s
        calls = {m: 0 for m in ("loop", 2)}

        def run(m, cost=cost, calls=calls):
            calls[m] += 1
            clock[0] += cost * (1.0 if m == "loop" else 1.1)

        times, _ = auto._time(["loop", 2], run)
        assert calls["loop"] - 1 == calls[2] - 1 == want  # one untimed call each, then the rounds
        assert times["loop"] == pytest.approx(cost) and times[2] == pytest.approx(1.1 * cost)
