"""Size-generic cells on numba-cuda, in Numba's CUDA simulator: one cell written once (dims such as
"4*H") runs at two sizes, forward and gradients agreeing with the numpy backend (tests/test_dims.py
covers numpy and numba-cpu). Tiny sizes: the simulator runs each CUDA thread as a Python thread."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
if "numba" in sys.modules and "numba.cuda" not in sys.modules:
    sys.modules["numba"].core.config.reload_config()  # numba read its config before this module ran
cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
if not cuda.is_available():
    pytest.skip(
        "numba.cuda was imported without the simulator before this module ran, and there is no GPU: "
        "run with NUMBA_ENABLE_CUDASIM=1",
        allow_module_level=True,
    )

import rnncomp as rc  # noqa: E402
from tests.support import max_err  # noqa: E402
from tests.test_dims import halves, halves_args, lstm, lstm_args  # noqa: E402


@pytest.mark.parametrize("n_in, H", [(2, 2), (3, 4)])
def test_lstm_written_once_at_two_sizes_forward_and_gradients(n_in, H):
    prog = rc.compile(lstm, backend="numba-cuda", dtype="float64")
    oracle = rc.compile(lstm, backend="numpy", dtype="float64")
    args = lstm_args(n_in, H, T=3)
    out, bwd = prog.vjp(**args)
    want_out, want_bwd = oracle.vjp(**args)
    assert max_err(out, want_out) < 1e-10
    cot = {k: np.ones_like(v) for k, v in want_out.items()}
    assert max_err(bwd(cot), want_bwd(cot)) < 1e-10


def test_concat_and_split_of_symbols_with_dims_given_ahead():
    prog = rc.compile(halves, backend="numba-cuda", dtype="float64", dims={"H": 4})
    args = halves_args(2, 4, T=3)
    assert max_err(prog(**args), rc.compile(halves, backend="numpy", dtype="float64")(**args)) < 1e-10
    with pytest.raises(rc.ArgumentError, match=r"dim 1 \(H\) is 2 here but 4 in dims= of rc.compile"):
        prog(**halves_args(2, 2, T=3))
