"""The cells the benchmarks measure, at the sizes the issues name."""

import numpy as np

import rnncomp as rc
from rnncomp import Param, Seq, State


@rc.cell(name="lstm")
def lstm_any(
    x: Seq["B", "I"],  # noqa: F821  ("B", "I", "4*H" are dims, not forward references)
    h: State["B", "H"],  # noqa: F821
    c: State["B", "H"],  # noqa: F821
    Wx: Param["I", "4*H"],  # noqa: F821
    Wh: Param["H", "4*H"],  # noqa: F821
    b: Param["4*H"],  # noqa: F821
):
    """One-layer LSTM, gate order i, f, g, o (PyTorch's), a single bias; written once for every size."""
    z = x @ Wx + h @ Wh + b
    i, f, g, o = rc.split(z, 4, axis=-1)
    c = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
    h = rc.sigmoid(o) * rc.tanh(c)
    return {"h": h, "c": c, "y": h}


@rc.cell(name="gru")
def gru_any(
    x: Seq["B", "I"],  # noqa: F821
    h: State["B", "H"],  # noqa: F821
    W_ih: Param["I", "3*H"],  # noqa: F821
    W_hh: Param["H", "3*H"],  # noqa: F821
    b_ih: Param["3*H"],  # noqa: F821
    b_hh: Param["3*H"],  # noqa: F821
):
    """PyTorch's GRU (gates r, z, n; two biases, the hidden one inside r * (...)), as examples/gru.py."""
    x_r, x_z, x_n = rc.split(x @ W_ih + b_ih, 3)
    h_r, h_z, h_n = rc.split(h @ W_hh + b_hh, 3)
    r = rc.sigmoid(x_r + h_r)
    z = rc.sigmoid(x_z + h_z)
    n = rc.tanh(x_n + r * h_n)
    h_new = (1 - z) * n + z * h
    return {"h": h_new, "y": h_new}


def lstm_cell(I: int, H: int) -> rc.Cell:  # noqa: E741
    """The LSTM at I inputs and H hidden units."""
    return rc.with_dims(lstm_any, I=I, H=H)


def gru_cell(I: int, H: int) -> rc.Cell:  # noqa: E741
    """The GRU at I inputs and H hidden units."""
    return rc.with_dims(gru_any, I=I, H=H)


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
