"""The cells the benchmarks measure, at the sizes the issues name."""

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
