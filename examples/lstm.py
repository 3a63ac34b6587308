"""LSTM with one fused gate GEMM: z = x @ Wx + h @ Wh + b, gates in the order i, f, g, o."""

import rnncomp as rc
from rnncomp import Param, Seq, State


@rc.cell
def lstm(
    x: Seq["B", 16],  # noqa: F821  ("B" is a dim symbol, not a forward reference)
    h: State["B", 32],  # noqa: F821
    c: State["B", 32],  # noqa: F821
    Wx: Param[16, 128],
    Wh: Param[32, 128],
    b: Param[128],
):
    i, f, g, o = rc.split(x @ Wx + h @ Wh + b, 4)
    c_new = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
    h_new = rc.sigmoid(o) * rc.tanh(c_new)
    return {"h": h_new, "c": c_new, "y": h_new}


if __name__ == "__main__":
    from _demo import demo

    demo(lstm)
