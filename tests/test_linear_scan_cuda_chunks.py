"""numba-cuda's parallel linear scan (backends/numba_cuda/scan.py), in Numba's CUDA simulator: for
several chunk counts C and elements per block G (set through the threads per block, C * G) and
several T (fewer steps than chunks, uneven chunks, T = 40), minGRU and minLSTM agree with the numpy
backend (float64 <= 1e-10), forward and gradients, with lengths and reverse.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace

import pytest

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
if "numba" in sys.modules and "numba.cuda" not in sys.modules:
    sys.modules["numba"].core.config.reload_config()  # numba read its config before this module ran
cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
if not cuda.is_available():
    pytest.skip("no simulator and no GPU: run with NUMBA_ENABLE_CUDASIM=1", allow_module_level=True)

import rnncomp as rc  # noqa: E402
from rnncomp.backends.numba_cuda import runner  # noqa: E402
from rnncomp.backends.numba_cuda.device import SIMULATED  # noqa: E402
from rnncomp.backends.numba_cuda.scan import chunks  # noqa: E402
from tests.hand_rnns import load_example  # noqa: E402
from tests.support import random_args, random_lengths  # noqa: E402
from tests.test_numba_cuda import _close, _simulator_settings  # noqa: E402, F401  (the fixture)

B = 2
CELLS = {
    "mingru": load_example("mingru").make_mingru(2, 3),
    "minlstm": load_example("minlstm").make_minlstm(2, 3),
}


def test_chunks_split_the_block():
    assert chunks(256) == (32, 8) and chunks(4) == (4, 1) and chunks(12) == (4, 3) and chunks(1) == (1, 1)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("lengths", [False, True], ids=["all", "lengths"])
@pytest.mark.parametrize("T", [1, 7, 40])
@pytest.mark.parametrize("threads", [1, 6, 8, 32])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_parallel_scan_agrees_at_every_chunk_count(monkeypatch, name, threads, T, lengths, reverse):
    monkeypatch.setattr(runner, "device_config", lambda: replace(SIMULATED, threads=threads))
    C, G = chunks(threads)
    cell = CELLS[name]
    args = random_args(cell, T, B, inits=True, seed=T)
    L = random_lengths(T, B, seed=T) if lengths else None
    ref = rc.compile(cell, backend="numpy", dtype="float64", reverse=reverse)
    prog = rc.compile(cell, backend="numba-cuda", dtype="float64", reverse=reverse)
    source = prog.source(lengths=lengths, grad=True)
    assert f"cuda.shared.array({C * G}, float64)  # chunk maps" in source and f"// {G}  # this" in source
    _close(prog(lengths=L, **args), ref(lengths=L, **args), "float64")
    output = next(iter(cell.outputs))
    (lw, gw), (lg, gg) = (p.value_and_grad(output, lengths=L, **args) for p in (ref, prog))
    _close({"loss": lg}, {"loss": lw}, "float64")
    _close(gg, gw, "float64")


def test_float32_error_of_the_parallel_scan(monkeypatch):
    """Measured in the simulator (minGRU I=2, H=3, B=2, float32, T = 1,000 and 4,000, 32 chunks): the
    parallel scan differs from the sequential float32 recurrence (the numpy backend with the pass off) by
    1.4e-7 and 7.6e-8 of the largest |y|, and from float64 by 1.1e-7 and 1.4e-7, where the sequential
    float32 loop's own error is 1.1e-7 and 1.6e-7: reassociating the chunk maps (factors in (0, 1)) adds
    no error beyond the loop's rounding."""
    monkeypatch.setattr(runner, "device_config", lambda: replace(SIMULATED, threads=32))
    T, cell = 1000, CELLS["mingru"]
    args = random_args(cell, T, B, inits=True, seed=3)
    a32 = {k: v.astype("float32") for k, v in args.items()}
    exact = rc.compile(cell, backend="numpy", dtype="float64")(**args)["y"]
    seq = rc.compile(cell, backend="numpy", dtype="float32", passes="simplify,hoist,simplify")(**a32)["y"]
    prog = rc.compile(cell, backend="numba-cuda", dtype="float32")
    assert "chunk maps" in prog.source()  # the parallel scan, not the sequential one
    par = prog(**a32)["y"]
    scale = abs(exact).max()
    err_par, err_seq = abs(par - exact).max() / scale, abs(seq - exact).max() / scale
    assert err_seq <= 1e-6 and err_par <= max(2 * err_seq, 1e-7), (err_par, err_seq)
    assert abs(par - seq).max() > 0  # reassociated: not bit-equal to the loop (else this checks nothing)
