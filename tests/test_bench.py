"""`rnncomp bench`: the table of medians per unroll mode, the plot, and each bad-input message."""

import sys
import textwrap
from pathlib import Path

import pytest

from rnncomp.bench import bench, parse_unrolls
from rnncomp.cli import load_cells, main

SIZED = """
import rnncomp as rc
from rnncomp import Param, Seq, State


@rc.cell
def elman(x: Seq["B", "I"], h: State["B", "H"], W: Param["I", "H"], U: Param["H", "H"], b: Param["H"]):
    h = rc.tanh(x @ W + h @ U + b)
    return {"h": h, "y": h}
"""

FIXED = """
import rnncomp as rc
from rnncomp import Param, Seq, State


@rc.cell
def fixed(x: Seq["B", 3], h: State["B", 4], W: Param[3, 4], U: Param[4, 4]):
    h = rc.tanh(x @ W + h @ U)
    return {"h": h, "y": h}
"""


@pytest.fixture
def sized(tmp_path: Path) -> Path:
    p = tmp_path / "sized.py"
    p.write_text(textwrap.dedent(SIZED))
    return p


def failure(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert (code, out) == (2, ""), err
    assert err.startswith("rnncomp: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err[len("rnncomp: error: ") : -1]


def test_bench_prints_a_table_of_medians_per_mode_and_draws_it(capsys, sized, tmp_path):
    png = tmp_path / "out.png"
    argv = ["bench", sized, "--length", "5", "--batch", "2", "--dim", "I=3", "--dim", "H=4", "--repeat", "2"]
    code = main([str(a) for a in argv + ["--unroll", "loop,2,full", "--backend", "numpy", "--plot", png]])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("cell elman: T=5, B=2, I=3, H=4; medians of 2 calls (ms)")
    assert [ln.split("|")[0].strip() for ln in lines[2:5]] == ["loop", "2", "full"]
    for ln in lines[2:5]:
        fwd, both, build = (float(v) for v in ln.split("|")[1:])
        assert fwd > 0 and both > 0 and build >= 0  # numpy builds in < 5 ms: 0.00 s
    assert lines[5] == f"plot: {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "bench elman" in err  # the progress bar (tqdm writes to stderr)


def test_bench_times_every_call_it_counts(sized):
    """The bar advances once per build and once per timed call; each timed call runs."""
    cell = load_cells(sized)[0][1]
    ticks = []

    class Bar:
        def __init__(self, total):
            self.total = total

        def update(self):
            ticks.append(1)

        def close(self):
            ticks.append("closed")

    r = bench(cell, 4, 2, {"I": 3, "H": 2}, ["loop", 3], repeat=3, backend="numpy", progress=Bar)
    assert ticks.count(1) == 2 * (1 + 2 * 3) and ticks[-1] == "closed"
    assert set(r.ms) == {(m, k) for m in ("loop", 3) for k in ("fwd", "fwd+bwd")}


def test_a_dim_the_cell_does_not_have_names_the_cells_dims(capsys, sized, tmp_path):
    msg = failure(capsys, "bench", sized, "--dim", "K=3", "--dim", "H=4")
    assert msg == "--dim K=...: cell 'elman' has no dim 'K'; its dims are B, I, H (B: --batch)"
    fixed = tmp_path / "fixed.py"
    fixed.write_text(textwrap.dedent(FIXED))
    msg = failure(capsys, "bench", fixed, "--dim", "H=256")
    assert msg == (
        "--dim H=...: cell 'fixed' has no dim 'H'; its only symbolic dim is B; its other sizes are fixed ints "
        "(B: --batch)"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dim", "H=4"], "cell 'elman' has unbound dims I: pass --dim I=SIZE"),
        ([], "cell 'elman' has unbound dims I, H: pass --dim I=SIZE --dim H=SIZE"),
        (["--dim", "H256"], "--dim H256: expected NAME=SIZE, such as H=256"),
        (["--dim", "B=4"], "--dim B=...: the batch size is set with --batch"),
        (["--dim", "I=3", "--dim", "H=4", "--unroll", "loop,x"], "--unroll loop,x: 'x' is not an unroll mode"),
        (["--dim", "I=3", "--dim", "H=4", "--unroll", "4,4"], "--unroll 4,4: a mode is named twice"),
        (["--dim", "I=3", "--dim", "H=4", "--length", "0"], "--length 0: expected an int >= 1"),
        (["--dim", "I=3", "--dim", "H=4", "--cell", "lstm"], "has no cell named 'lstm'"),
    ],
)
def test_bench_bad_input(capsys, sized, args, message):
    assert message in failure(capsys, "bench", sized, *args)


def test_bench_unknown_output_and_missing_matplotlib(capsys, sized, monkeypatch, tmp_path):
    base = ["bench", sized, "--length", "2", "--batch", "1", "--dim", "I=2", "--dim", "H=2", "--repeat", "1"]
    base += ["--unroll", "loop", "--backend", "numpy"]
    msg = failure(capsys, *base, "--output", "z")
    assert msg == "--output z: cell 'elman' has no output 'z'; outputs are ['y', 'h']"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    msg = failure(capsys, *base, "--plot", tmp_path / "p.png")
    assert msg == "--plot needs matplotlib, which is not installed: pip install 'rnncomp[examples]'"
    assert not (tmp_path / "p.png").exists()


def test_parse_unrolls():
    assert parse_unrolls("loop, 2,full,16") == ["loop", 2, "full", 16]
