"""Seeing every stage: prog.ir, RNNCOMP_PRINT_AFTER, `rnncomp dump` of program stages, program DOT."""

from __future__ import annotations

import re

import pytest

import rnncomp as rc
from rnncomp.cli import main
from tests.support import cell_of, random_args


def test_ir_of_each_stage_by_pass_name():
    prog = rc.compile(cell_of("lstm"), length="T", unroll="loop")
    stages = prog.stages()
    assert list(stages) == ["unroll", "simplify", "hoist", "linear_scan", "simplify#2"]
    assert prog.ir("unroll").startswith("program lstm(B, T) {")
    assert "loop(" in prog.ir("unroll") and "cell lstm {" in prog.ir("cell")
    assert "reverse=true" in prog.ir("grad")  # the backward is a reverse loop
    assert "input saved trace@h" in prog.ir("grad")
    with pytest.raises(rc.ArgumentError, match=r"unknown stage 'fuse'; stages: \['cell', 'unroll'"):
        prog.ir("fuse")


def test_print_after_all(monkeypatch, capsys):
    monkeypatch.setenv("RNNCOMP_PRINT_AFTER", "all")
    cell = cell_of("elman")
    rc.compile(cell, dtype="float64")(**random_args(cell, 3, 2))
    err = capsys.readouterr().err
    headers = re.findall(r"// -----// IR Dump After (\S+) //----- //", err)
    assert headers == ["unroll", "simplify", "hoist", "linear_scan", "simplify#2"]


def test_print_after_a_list(monkeypatch, capsys):
    monkeypatch.setenv("RNNCOMP_PRINT_AFTER", "hoist")
    rc.compile(cell_of("elman")).stages()
    assert re.findall(r"IR Dump After (\S+)", capsys.readouterr().err) == ["hoist"]


def test_dump_program_stages(capsys):
    assert main(["dump", "examples/lstm.py", "--length", "T", "--unroll", "3", "--after", "all"]) == 0
    out = capsys.readouterr().out
    assert out.count("IR Dump After") == 7 and "IR Dump After plan" in out
    assert 'length="T//3"' in out and 'length="T%3"' in out


def test_dump_full_unroll_as_dot_shows_time_copies_and_inits(capsys):
    assert (
        main(["dump", "examples/elman.py", "--length", "3", "--unroll", "full", "--after", "unroll", "--format", "dot"])
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith('digraph "elman"')
    assert all(f"h@{t} = tanh" in out for t in range(3))
    assert "init h" in out and 'shape="cylinder"' in out


def test_dump_loop_as_dot_has_a_cluster(capsys):
    assert main(["dump", "examples/gru.py", "--after", "simplify", "--format", "dot"]) == 0
    assert "subgraph" in capsys.readouterr().out


def test_dump_grad(capsys):
    assert main(["dump", "examples/elman.py", "--grad", "--after", "grad"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("program elman_grad(B, T) {") and "reverse=true" in out


def test_dump_program_errors(capsys):
    assert main(["dump", "examples/elman.py", "--unroll", "full"]) == 2
    assert "a full unroll needs a concrete --length N" in capsys.readouterr().err
    assert main(["dump", "examples/elman.py", "--after", "fusion"]) == 2
    err = capsys.readouterr().err
    assert (
        "--after fusion: no such pass; the stages are unroll, simplify, hoist, linear_scan, simplify#2, fuse, plan"
        in err
    )
    assert main(["dump", "examples/elman.py", "--unroll", "0"]) == 1
    assert "argument 'unroll': the unroll factor must be >= 1, got 0" in capsys.readouterr().err
