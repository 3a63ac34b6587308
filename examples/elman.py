"""Elman RNN: h[t] = tanh(x[t] @ W + h[t-1] @ U + b); the output is h itself."""

import rnncomp as rc
from rnncomp import Param, Seq, State


@rc.cell
def elman(x: Seq["B", 8], h: State["B", 16], W: Param[8, 16], U: Param[16, 16], b: Param[16]):  # noqa: F821 ("B" is a dim symbol)
    h_new = rc.tanh(x @ W + h @ U + b)
    return {"h": h_new, "y": h_new}


if __name__ == "__main__":
    from _demo import demo

    demo(elman)
