"""The cells the benchmarks measure, at the sizes the issues name."""

import numpy as np

import rnncomp as rc
from rnncomp import Param, Seq, State


def lstm_cell(I: int, H: int) -> rc.Cell:  # noqa: E741
    """One-layer LSTM, gate order i, f, g, o (PyTorch's), a single bias."""

    @rc.cell(name="lstm")
    def lstm(
        x: Seq["B", I], h: State["B", H], c: State["B", H], Wx: Param[I, 4 * H], Wh: Param[H, 4 * H], b: Param[4 * H]
    ):
        z = x @ Wx + h @ Wh + b
        i, f, g, o = rc.split(z, 4, axis=-1)
        c = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
        h = rc.sigmoid(o) * rc.tanh(c)
        return {"h": h, "c": c, "y": h}

    return lstm


def gru_cell(I: int, H: int) -> rc.Cell:  # noqa: E741
    """PyTorch's GRU (gates r, z, n; two biases, the hidden one inside r * (...)), as examples/gru.py."""

    @rc.cell(name="gru")
    def gru(
        x: Seq["B", I],
        h: State["B", H],
        W_ih: Param[I, 3 * H],
        W_hh: Param[H, 3 * H],
        b_ih: Param[3 * H],
        b_hh: Param[3 * H],
    ):
        x_r, x_z, x_n = rc.split(x @ W_ih + b_ih, 3)
        h_r, h_z, h_n = rc.split(h @ W_hh + b_hh, 3)
        r = rc.sigmoid(x_r + h_r)
        z = rc.sigmoid(x_z + h_z)
        n = rc.tanh(x_n + r * h_n)
        h_new = (1 - z) * n + z * h
        return {"h": h_new, "y": h_new}

    return gru


def lstm_arrays(I: int, H: int, B: int, T: int, seed: int = 0) -> dict[str, np.ndarray]:  # noqa: E741
    """float32 LSTM arguments: PyTorch's default init, U(-1/sqrt(H), 1/sqrt(H)), in rnncomp's layout; x ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    s = 1.0 / np.sqrt(H)
    return {
        "x": rng.standard_normal((T, B, I), dtype=np.float32),
        "Wx": rng.uniform(-s, s, (I, 4 * H)).astype(np.float32),
        "Wh": rng.uniform(-s, s, (H, 4 * H)).astype(np.float32),
        "b": rng.uniform(-s, s, 4 * H).astype(np.float32),
    }
