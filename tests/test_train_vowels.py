"""The README's main job, examples/train_vowels.py: its data, its messages, and a short run of each cell."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

pytest.importorskip("torch")
pytest.importorskip("sktime")

import _vowels_data  # noqa: E402
import train_vowels  # noqa: E402


def test_the_data_is_japanese_vowels_as_uci_describes_it():
    train, test = _vowels_data.load()
    assert train.x.shape[1:] == (270, 12) and test.x.shape[1:] == (370, 12)
    lengths = np.concatenate([train.lengths, test.lengths])
    assert lengths.min() == 7 and lengths.max() == 29
    assert set(train.y) == set(test.y) == set(range(9))
    for split in (train, test):  # zeros past each row's own length: nothing of another row leaks in
        t = np.arange(split.x.shape[0])[:, None]
        assert not split.x[t >= split.lengths[None, :]].any()
    assert abs(float(train.x[np.arange(train.x.shape[0])[:, None] < train.lengths[None, :]].mean())) < 1e-5


def test_missing_sktime_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sktime", None)  # `import sktime...` now raises ImportError
    monkeypatch.setitem(sys.modules, "sktime.datasets", None)
    with pytest.raises(
        SystemExit, match=r"not installed .*install the examples extra: pip install -e '\.\[examples\]'"
    ):
        _vowels_data.load()


def test_an_unknown_cell_lists_the_known_ones():
    with pytest.raises(SystemExit, match=r"--cell 'lstmm' is not a cell of this example \(did you mean 'lstm'\?\); "
                       "known cells: lstm, gru"):  # fmt: skip
        train_vowels.parse(["--cell", "lstmm"])
    with pytest.raises(SystemExit, match="known cells: lstm, gru"):
        train_vowels.parse(["--cell", "rnn"])


def _results(out: str) -> list[str]:
    return [line for line in out.splitlines() if "test accuracy" in line or "same initial weights" in line]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_short_run_trains_prints_and_draws_the_same_numbers_twice(cell, tmp_path, capsys):
    png = tmp_path / "vowels.png"
    argv = ["--cell", cell, "--epochs", "2", "--hidden", "16", "--compare", "--plot", str(png)]
    train_vowels.main(argv)
    first = capsys.readouterr().out
    assert png.stat().st_size > 10_000 and f"figure: {png}" in first
    lines = _results(first)
    assert len(lines) == 4, first  # the weights check, each model's accuracy, the side-by-side line
    diff = float(lines[0].split("=")[-1])
    assert diff < 1e-5  # both models start from the same weights and compute the same logits
    accuracies = [float(w.rstrip("%")) for line in lines[1:3] for w in line.split() if w.endswith("%")]
    assert all(30 < a <= 100 for a in accuracies), lines  # 2 epochs: well above chance (11%)
    train_vowels.main(argv)  # seeded: the same command gives the same numbers
    assert [line.split(";")[0] for line in _results(capsys.readouterr().out)] == [line.split(";")[0] for line in lines]


def test_the_main_command_runs_as_a_script(tmp_path):
    """`python examples/train_vowels.py`, as the README runs it (one epoch here), with its progress bar."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "examples/train_vowels.py", "--epochs", "1", "--plot", str(tmp_path / "v.png")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "rnncomp lstm: test accuracy" in done.stdout and "epoch  1/1" in done.stdout + done.stderr
    assert (tmp_path / "v.png").exists()
