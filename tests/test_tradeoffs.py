"""benchmarks/tradeoffs.py --quick: every part runs, draws its PNG and writes its own RESULTS.md section.

Tiny sizes on the numpy backend (the numbers mean nothing here; the benchmark itself runs numba-cpu)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"


def test_tradeoffs_quick_writes_figures_and_its_section(tmp_path):
    pytest.importorskip("torch")  # the lengths part times nn.LSTM (CI installs torch: see .ci/run)
    results = tmp_path / "RESULTS.md"
    old = "<!-- tradeoffs:begin -->\n## an older run\n<!-- tradeoffs:end -->\n"
    results.write_text(f"# Benchmark results\n\n{old}\n## Someone else's section\n\nkept\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "benchmarks/tradeoffs.py", "--quick", "--backend", "numpy", "--repeat", "1"]
    argv += ["--out", str(tmp_path / "fig"), "--results", str(results)]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for part in ("memory", "unroll", "compile", "lengths", "truncate"):
        assert (tmp_path / "fig" / f"tradeoffs_{part}.png").read_bytes()[:8] == PNG
    text = results.read_text()
    assert text.count("<!-- tradeoffs:begin -->") == 1 and text.count("<!-- tradeoffs:end -->") == 1
    assert "## Someone else's section\n\nkept\n" in text and "an older run" not in text  # replaced, rest kept
    assert "`python benchmarks/tradeoffs.py --quick`" in text and "load average" in text
    for title in ("Memory kept for the backward pass vs T", "Time per call vs unroll mode", "Truncated BPTT"):
        assert f"### {title}" in text
    assert "](fig/tradeoffs_lengths.png)" in text


def test_tradeoffs_rejects_an_unknown_part():
    done = subprocess.run(
        [sys.executable, "benchmarks/tradeoffs.py", "--only", "memory,speed"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--only: unknown part(s) speed; parts are memory, unroll" in done.stderr
