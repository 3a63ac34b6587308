"""A 2-layer stacked LSTM declared as ONE cell: layer 2 reads layer 1's new h1 at delay 0.

Each layer is the LSTM of lstm.py (gates i, f, g, o); the per-step output is layer 2's h2.
`stacked_lstm_any` is written once for every size; `stacked_lstm` is it at I=16, H1=32, H2=24.
"""

import rnncomp as rc
from rnncomp import Param, Seq, State


def lstm_layer(x: rc.Value, h: rc.Value, c: rc.Value, Wx: rc.Value, Wh: rc.Value, b: rc.Value):
    """One LSTM step: (h', c') from the input x and the previous (h, c)."""
    i, f, g, o = rc.split(x @ Wx + h @ Wh + b, 4)
    c_new = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
    return rc.sigmoid(o) * rc.tanh(c_new), c_new


@rc.cell(name="stacked_lstm")
def stacked_lstm_any(
    x: Seq["B", "I"],  # noqa: F821  ("B", "I", "4*H1" are dims, not forward references)
    h1: State["B", "H1"],  # noqa: F821
    c1: State["B", "H1"],  # noqa: F821
    h2: State["B", "H2"],  # noqa: F821
    c2: State["B", "H2"],  # noqa: F821
    Wx1: Param["I", "4*H1"],  # noqa: F821
    Wh1: Param["H1", "4*H1"],  # noqa: F821
    b1: Param["4*H1"],  # noqa: F821
    Wx2: Param["H1", "4*H2"],  # noqa: F821
    Wh2: Param["H2", "4*H2"],  # noqa: F821
    b2: Param["4*H2"],  # noqa: F821
):
    h1_new, c1_new = lstm_layer(x, h1, c1, Wx1, Wh1, b1)
    h2_new, c2_new = lstm_layer(h1_new, h2, c2, Wx2, Wh2, b2)
    return {"h1": h1_new, "c1": c1_new, "h2": h2_new, "c2": c2_new, "y": h2_new}


stacked_lstm = rc.with_dims(stacked_lstm_any, I=16, H1=32, H2=24)  # the sizes the tests and goldens use

if __name__ == "__main__":
    from _demo import demo

    demo(stacked_lstm)
