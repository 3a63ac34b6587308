"""GRU in PyTorch's formulation (torch.nn.GRU), gates in the order r, z, n.

    r = σ(x W_ir + b_ir + h W_hr + b_hr)      z = σ(x W_iz + b_iz + h W_hz + b_hz)
    n = tanh(x W_in + b_in + r * (h W_hn + b_hn))      h' = (1 - z) * n + z * h

Layout: W_ih = weight_ih_l0.T (I, 3·H) and W_hh = weight_hh_l0.T (H, 3·H), since rnncomp
multiplies x @ W; b_ih and b_hh are PyTorch's two separate biases (the hidden one sits inside r * (...)).
`gru_any` is written once for every size; `gru` is it at I=16, H=32.
"""

import rnncomp as rc
from rnncomp import Param, Seq, State


@rc.cell(name="gru")
def gru_any(
    x: Seq["B", "I"],  # noqa: F821  ("B", "I", "3*H" are dims, not forward references)
    h: State["B", "H"],  # noqa: F821
    W_ih: Param["I", "3*H"],  # noqa: F821
    W_hh: Param["H", "3*H"],  # noqa: F821
    b_ih: Param["3*H"],  # noqa: F821
    b_hh: Param["3*H"],  # noqa: F821
):
    x_r, x_z, x_n = rc.split(x @ W_ih + b_ih, 3)
    h_r, h_z, h_n = rc.split(h @ W_hh + b_hh, 3)
    r = rc.sigmoid(x_r + h_r)
    z = rc.sigmoid(x_z + h_z)
    n = rc.tanh(x_n + r * h_n)
    h_new = (1 - z) * n + z * h
    return {"h": h_new, "y": h_new}


gru = rc.with_dims(gru_any, I=16, H=32)  # the sizes the tests, goldens and benchmarks use


if __name__ == "__main__":
    from _demo import demo

    demo(gru)
