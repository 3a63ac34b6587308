"""A 2-layer stacked LSTM declared as ONE cell: layer 2 reads layer 1's new h1 at delay 0.

Each layer is the LSTM of lstm.py (gates i, f, g, o); the per-step output is layer 2's h2.
"""

import rnncomp as rc
from rnncomp import Param, Seq, State


def lstm_layer(x: rc.Value, h: rc.Value, c: rc.Value, Wx: rc.Value, Wh: rc.Value, b: rc.Value):
    """One LSTM step: (h', c') from the input x and the previous (h, c)."""
    i, f, g, o = rc.split(x @ Wx + h @ Wh + b, 4)
    c_new = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
    return rc.sigmoid(o) * rc.tanh(c_new), c_new


@rc.cell
def stacked_lstm(
    x: Seq["B", 16],  # noqa: F821  ("B" is a dim symbol, not a forward reference)
    h1: State["B", 32],  # noqa: F821
    c1: State["B", 32],  # noqa: F821
    h2: State["B", 24],  # noqa: F821
    c2: State["B", 24],  # noqa: F821
    Wx1: Param[16, 128],
    Wh1: Param[32, 128],
    b1: Param[128],
    Wx2: Param[32, 96],
    Wh2: Param[24, 96],
    b2: Param[96],
):
    h1_new, c1_new = lstm_layer(x, h1, c1, Wx1, Wh1, b1)
    h2_new, c2_new = lstm_layer(h1_new, h2, c2, Wx2, Wh2, b2)
    return {"h1": h1_new, "c1": c1_new, "h2": h2_new, "c2": c2_new, "y": h2_new}


if __name__ == "__main__":
    from _demo import demo

    demo(stacked_lstm)
