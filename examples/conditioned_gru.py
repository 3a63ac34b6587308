"""A GRU conditioned on one vector per sequence (a speaker, a topic, an image embedding): `c` is a
`Static` input, one row per batch row, the same at every step, fed into every gate.

    r = σ(x W_ir + h W_hr + c V_r + b_r)      z = σ(x W_iz + h W_hz + c V_z + b_z)
    n = tanh(x W_in + c V_n + b_in + r * (h W_hn + b_hn))      h' = (1 - z) * n + z * h

Before statics, c was copied across all T steps as a (T, B, 8) sequence; here it is passed as it is,
(B, 8): `c @ V` is computed once per sequence (the hoist pass moves it out of the loop), and its gradient
is summed over the steps inside the backward loop, so neither pass holds a (T, B, 8) array.
"""

import rnncomp as rc
from rnncomp import Param, Seq, State, Static


@rc.cell
def conditioned_gru(
    x: Seq["B", 16],  # noqa: F821  ("B" is a dim symbol, not a forward reference)
    c: Static["B", 8],  # noqa: F821
    h: State["B", 32],  # noqa: F821
    W_ih: Param[16, 96],
    W_hh: Param[32, 96],
    V: Param[8, 96],
    b_ih: Param[96],
    b_hh: Param[96],
):
    x_r, x_z, x_n = rc.split(x @ W_ih + c @ V + b_ih, 3)
    h_r, h_z, h_n = rc.split(h @ W_hh + b_hh, 3)
    r = rc.sigmoid(x_r + h_r)
    z = rc.sigmoid(x_z + h_z)
    n = rc.tanh(x_n + r * h_n)
    h_new = (1 - z) * n + z * h
    return {"h": h_new, "y": h_new}


if __name__ == "__main__":
    from _demo import demo

    demo(conditioned_gru)
