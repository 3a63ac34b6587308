"""The scan ops on numba-cuda, in Numba's CUDA simulator (tiny sizes): the linear_scan examples agree
with the numpy backend, forward and gradients, with lengths, reverse and checkpoint.

`NUMBA_ENABLE_CUDASIM=1` is set here before numba.cuda is imported, as in tests/test_numba_cuda.py.
"""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
if "numba" in sys.modules and "numba.cuda" not in sys.modules:
    sys.modules["numba"].core.config.reload_config()  # numba read its config before this module ran
cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
if not cuda.is_available():
    pytest.skip("no simulator and no GPU: run with NUMBA_ENABLE_CUDASIM=1", allow_module_level=True)

import rnncomp as rc  # noqa: E402
from tests.hand_rnns import load_example  # noqa: E402
from tests.support import random_args, random_lengths  # noqa: E402
from tests.test_linear_scan import ops_of  # noqa: E402
from tests.test_numba_cuda import _close, _simulator_settings  # noqa: E402, F401  (the fixture)

T, B = 3, 2
CELLS = {
    "mingru": load_example("mingru").make_mingru(3, 2),
    "minlstm": load_example("minlstm").make_minlstm(3, 2),
    "diagonal_rnn": load_example("diagonal_rnn").make_diagonal_rnn(3, 2, 2),
    "qrnn": load_example("qrnn").make_qrnn(3, 2),
}


@pytest.mark.parametrize("options", [{}, {"reverse": True}, {"checkpoint": 2}], ids=["plain", "reverse", "checkpoint"])
@pytest.mark.parametrize("lengths", [False, True], ids=["all", "lengths"])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_scanned_examples_agree(name, lengths, options):
    cell = CELLS[name]
    args = random_args(cell, T, B, inits=True)
    L = random_lengths(T, B) if lengths else None
    ref = rc.compile(cell, backend="numpy", dtype="float64", **options)
    prog = rc.compile(cell, backend="numba-cuda", dtype="float64", **options)
    assert "linear_scan" in ops_of(list(prog.stages(lengths=lengths, grad=True).values())[-1])
    _close(prog(lengths=L, **args), ref(lengths=L, **args), "float64")
    output = next(iter(cell.outputs))
    (lw, gw), (lg, gg) = (p.value_and_grad(output, lengths=L, **args) for p in (ref, prog))
    _close({"loss": lg}, {"loss": lw}, "float64")
    _close(gg, gw, "float64")
