"""`rnncomp dump`: each format, picking a cell, IR text files, and every error as one line with its exit code."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rnncomp
from ir.dot import cell_to_dot
from ir.json_form import cell_from_json
from ir.printer import print_cell
from rnncomp.cli import load_cells, main, select_cell

ROOT = Path(__file__).resolve().parent.parent

CELLS_PY = """
import rnncomp as rc
from rnncomp import Param, Seq, State


@rc.cell
def elman(x: Seq["B", 4], h: State["B", 8], W: Param[4, 8], U: Param[8, 8]):
    h = rc.tanh(x @ W + h @ U)
    return {"h": h, "y": h}


def make_gru_like():
    g = rc.Graph("gated")
    x = g.seq("x", ("B", 4))
    W = g.param("W", (4, 8))
    h = g.state("h", ("B", 8))
    z = rc.sigmoid(x @ W)
    h.define(z * h.prev(1) + (1 - z) * rc.tanh(x @ W))
    g.output("y", h)
    return g.build()


gated_cell = make_gru_like()
also_elman = elman  # the same object twice: listed once
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def failure(capsys, code: int, *argv: str) -> str:
    """Run, expect exit `code` and a single `rnncomp: error:` line; return the message after the prefix."""
    got, out, err = run(capsys, *argv)
    assert (got, out) == (code, ""), err
    assert err.startswith("rnncomp: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err[len("rnncomp: error: ") : -1]


@pytest.fixture
def cells_py(tmp_path: Path) -> Path:
    return write(tmp_path, "cells.py", CELLS_PY)


def cell_named(path: Path, name: str):
    return next(c for _, c in load_cells(path) if c.name == name)


# ---------------------------------------------------------------- formats


def test_dump_text_dot_json(capsys, cells_py):
    cell = cell_named(cells_py, "elman")
    code, out, err = run(capsys, "dump", cells_py, "--cell", "elman")
    assert (code, err) == (0, "") and out.rstrip("\n") == print_cell(cell).rstrip("\n")
    code, out, _ = run(capsys, "dump", cells_py, "--cell", "elman", "--format", "dot")
    assert code == 0 and out == cell_to_dot(cell)
    code, out, _ = run(capsys, "dump", cells_py, "--cell", "elman", "--format", "json")
    assert code == 0 and cell_from_json(json.loads(out)) == cell


def test_load_cells_lists_each_cell_once_by_variable(cells_py):
    assert [(var, c.name) for var, c in load_cells(cells_py)] == [("elman", "elman"), ("gated_cell", "gated")]


def test_cell_by_cell_name_or_variable_name(capsys, cells_py):
    by_name = run(capsys, "dump", cells_py, "--cell", "gated", "--format", "json")
    by_var = run(capsys, "dump", cells_py, "--cell", "gated_cell", "--format", "json")
    assert by_name == by_var and by_name[0] == 0
    assert json.loads(by_name[1])["name"] == "gated"


def test_single_cell_needs_no_flag(capsys, tmp_path):
    path = write(tmp_path, "one.py", CELLS_PY.split("def make_gru_like")[0])
    code, out, _ = run(capsys, "dump", path, "--format", "json")
    assert code == 0 and json.loads(out)["name"] == "elman"


def test_ir_text_file(capsys, tmp_path, cells_py):
    cells = [c for _, c in load_cells(cells_py)]
    path = write(tmp_path, "cells.rnn", "\n".join(print_cell(c) for c in cells))
    code, out, err = run(capsys, "dump", path, "--cell", "gated")
    assert (code, err) == (0, "") and out.rstrip("\n") == print_cell(cells[1]).rstrip("\n")
    code, out, _ = run(capsys, "dump", path, "--cell", "elman", "--format", "json")
    assert code == 0 and cell_from_json(json.loads(out)) == cells[0]


def test_file_may_import_its_neighbours(capsys, tmp_path):
    write(tmp_path, "shapes_for_test.py", "HIDDEN = 8\n")
    path = write(
        tmp_path,
        "uses_neighbour.py",
        """
        import rnncomp as rc
        from shapes_for_test import HIDDEN

        g = rc.Graph("n")
        x = g.seq("x", ("B", HIDDEN))
        g.output("y", rc.tanh(x))
        cell = g.build()
        """,
    )
    before = list(sys.path)
    code, out, _ = run(capsys, "dump", path, "--format", "json")
    assert code == 0 and json.loads(out)["nodes"][0]["type"]["shape"] == ["B", 8]
    assert sys.path == before


def test_two_files_of_one_name_do_not_collide(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write(tmp_path / "a", "cells.py", CELLS_PY)
    b = write(tmp_path / "b", "cells.py", CELLS_PY.replace('"gated"', '"other"'))
    assert [c.name for _, c in load_cells(a)] == ["elman", "gated"]
    assert [c.name for _, c in load_cells(b)] == ["elman", "other"]
    assert [c.name for _, c in load_cells(a)] == ["elman", "gated"]


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert (code, out) == (0, f"rnncomp {rnncomp.__version__}\n")


# ---------------------------------------------------------------- errors


def test_several_cells_and_no_choice(capsys, cells_py):
    msg = failure(capsys, 2, "dump", cells_py)
    assert msg == f"{cells_py} defines 2 cells: elman, gated (variable gated_cell); choose one with --cell NAME"


def test_unknown_cell_suggests_the_closest(capsys, cells_py):
    msg = failure(capsys, 2, "dump", cells_py, "--cell", "elmann")
    assert (
        msg
        == f"{cells_py} has no cell named 'elmann'; did you mean 'elman'? (cells: elman, gated (variable gated_cell))"
    )
    msg = failure(capsys, 2, "dump", cells_py, "--cell", "zzz")
    assert msg == f"{cells_py} has no cell named 'zzz' (cells: elman, gated (variable gated_cell))"


def test_two_cells_of_one_name(capsys, tmp_path):
    path = write(tmp_path, "twins.py", CELLS_PY + "\ngated_again = make_gru_like()\n")
    msg = failure(capsys, 2, "dump", path, "--cell", "gated")
    assert msg == f"{path}: several cells are named 'gated' (variables gated_cell, gated_again); pass a variable name"
    assert run(capsys, "dump", path, "--cell", "gated_again")[0] == 0


def test_no_cell_in_file(capsys, tmp_path):
    path = write(tmp_path, "empty.py", "x = 1\n")
    assert failure(capsys, 2, "dump", path) == f"{path} defines no cell (no Cell object among its globals)"


def test_missing_file_and_directory(capsys, tmp_path):
    assert failure(capsys, 2, "dump", tmp_path / "nope.py") == f"{tmp_path / 'nope.py'}: no such file"
    assert failure(capsys, 2, "dump", tmp_path) == f"{tmp_path}: not a file"


def test_rnncomp_error_from_the_file(capsys, tmp_path):
    path = write(
        tmp_path,
        "bad_shapes.py",
        """
        import rnncomp as rc

        g = rc.Graph("bad")
        x = g.seq("x", ("B", 4))
        W = g.param("W", (8, 8))
        g.output("y", x @ W)
        """,
    )
    msg = failure(capsys, 1, "dump", path)
    assert (
        msg
        == f"{path}:7: matmul: inner dims differ: f32[B, 4] @ f32[8, 8] (4 != 8) in matmul(x: f32[B, 4], W: f32[8, 8])"
    )


def test_python_error_in_the_file(capsys, tmp_path):
    path = write(
        tmp_path, "typo.py", "import rnncomp as rc\n\ng = rc.Graph('t')\nx = g.seq('x', (2,))\ny = rc.tahn(x)\n"
    )
    assert failure(capsys, 1, "dump", path) == f"{path}:5: AttributeError: module 'rnncomp' has no attribute 'tahn'"
    assert not [m for m in sys.modules if m.endswith("_typo")], "a failed import stays in sys.modules"


def test_python_error_named_by_a_relative_path(capsys, tmp_path, monkeypatch):
    write(tmp_path, "typo.py", "import rnncomp as rc\n\n\ny = rc.tahn\n")
    monkeypatch.chdir(tmp_path)
    msg = failure(capsys, 1, "dump", "typo.py")
    assert msg == "typo.py:4: AttributeError: module 'rnncomp' has no attribute 'tahn'"


def test_syntax_error_in_the_file(capsys, tmp_path):
    path = write(tmp_path, "syntax.py", "x = (\n")
    assert failure(capsys, 1, "dump", path).startswith(f"{path}:1: SyntaxError: ")


def test_file_that_exits(capsys, tmp_path):
    path = write(tmp_path, "exits.py", "import sys\nsys.exit(3)\n")
    assert failure(capsys, 1, "dump", path) == f"{path}: exited (sys.exit(3)) while being imported"


def test_parse_error_in_an_ir_text_file(capsys, tmp_path):
    path = write(tmp_path, "bad.rnn", "this is not IR\n")
    code, out, err = run(capsys, "dump", path)
    assert (code, out) == (1, "")
    assert err.startswith(f"rnncomp: error: {path}:1:") and "Traceback" not in err


def test_usage_errors_exit_2(capsys):
    assert run(capsys)[0] == 2
    code, _, err = run(capsys, "dump", "x.py", "--format", "svg")
    assert code == 2 and "invalid choice: 'svg'" in err
    code, _, err = run(capsys, "frobnicate")
    assert code == 2 and "invalid choice: 'frobnicate'" in err


# ---------------------------------------------------------------- the entry point


def test_python_dash_m_rnncomp_dumps_an_example():
    path = ROOT / "examples" / "lstm.py"
    name = load_cells(path)[0][1].name
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "rnncomp", "dump", "examples/lstm.py", "--cell", name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    want = select_cell(load_cells(path), name, str(path))  # examples/lstm.py: lstm, not lstm_any (size-generic)
    assert proc.stdout.rstrip("\n") == print_cell(want).rstrip("\n")
