"""`rnncomp dump FILE --grad --checkpoint K|sqrt|SIZE --length N`: the schedule and memory report of a
training call, the same as `prog.schedule` and `prog.memory` give, and each bad value as one clear line."""

import pytest

import rnncomp as rc
from passes.sizes import format_size
from tests.test_cli import CELLS_PY, cell_named, failure, run, write


@pytest.fixture
def cells_py(tmp_path):
    return write(tmp_path, "cells.py", CELLS_PY)


@pytest.mark.parametrize("given, checkpoint, unroll", [("2KiB", "2KiB", None), ("7", 7, "4"), ("sqrt", "sqrt", "loop")])
def test_dump_prints_the_schedule_and_memory_report(capsys, cells_py, given, checkpoint, unroll):
    argv = ["dump", cells_py, "--cell", "elman", "--grad", "--checkpoint", given, "--length", "100", "--batch", "3"]
    code, out, err = run(capsys, *argv, *(["--unroll", unroll] if unroll else []))
    assert code == 0, err
    prog = rc.compile(
        cell_named(cells_py, "elman"), length=100, backend="numpy", checkpoint=checkpoint,
        unroll=None if unroll is None else int(unroll) if unroll.isdigit() else unroll,
    )  # fmt: skip
    view, mem = prog.schedule(100, B=3), prog.memory(100, B=3)
    assert str(view) in out  # stored steps, runs per step, kept, peak, recompute factor
    last = out.splitlines()[-1]
    assert last.startswith(f"memory: kept {format_size(mem['kept'])} ({int(mem['kept'])} bytes), peak ")
    assert f"recompute factor {mem['recompute']:.3f}" in last and 1.0 < mem["recompute"] <= 2.0
    assert f"plain BPTT keeps {format_size(mem['per_step'] * 100)}" in last
    assert ("of a 2.0 KiB budget" in last) == (given == "2KiB") and mem["peak"] <= (2048 if given == "2KiB" else 1e9)
    assert "stored: " in out and "runs per step: " in out


BASE = ["--cell", "elman", "--length", "100", "--grad"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--checkpoint", "64 parsecs"],
            "--checkpoint: '64 parsecs' is not a size; write a number and a unit, one of B",
        ),
        (["--checkpoint", "0"], "--checkpoint: expected an int >= 1, 'sqrt' or a size with a unit (one of B, KiB"),
        (["--checkpoint=-5MiB"], "--checkpoint: a budget must be at least 1 byte, got '-5MiB'"),
        (["--checkpoint", "64B"], "checkpoint='64B': a budget of 64 B is below the least any schedule of T=100 steps"),
        (["--checkpoint", "sqrt", "--format", "dot"], "--checkpoint prints the schedule and memory report as text"),
        (["--checkpoint", "sqrt", "--batch", "0"], "--batch 0: expected an int >= 1"),
    ],
)
def test_bad_checkpoint_values_are_one_line(capsys, cells_py, flags, message):
    assert failure(capsys, 2, "dump", cells_py, *BASE, *flags).startswith(message)


def test_checkpoint_needs_grad_and_a_concrete_length(capsys, cells_py):
    msg = failure(capsys, 2, "dump", cells_py, "--cell", "elman", "--length", "100", "--checkpoint", "sqrt")
    assert msg == "--checkpoint sqrt: the schedule is what the backward keeps; add --grad"
    msg = failure(capsys, 2, "dump", cells_py, "--cell", "elman", "--grad", "--checkpoint", "sqrt", "--length", "T")
    assert msg == "--checkpoint sqrt: needs a concrete --length N (the schedule is planned per T), got 'T'"
