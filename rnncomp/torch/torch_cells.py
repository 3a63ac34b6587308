"""The cells of PyTorch's recurrent layers, in its formulation, for weights laid out x @ W.

    RNN:  h' = act(x W_ih + b_ih + h W_hh + b_hh)                          act: tanh or relu
    GRU:  r, z = σ(x W_ir + b_ir + h W_hr + b_hr), σ(... z ...)             gate order r, z, n
          n = tanh(x W_in + b_in + r * (h W_hn + b_hn))   h' = (1 - z) n + z h    (reset after)
    LSTM: i, f, g, o = split(x W_ih + b_ih + h W_hh + b_hh)                 gate order i, f, g, o
          c' = σ(f) c + σ(i) tanh(g)    h' = (σ(o) tanh(c')) [W_hr]          W_hr: proj_size > 0

W_ih = weight_ih_l{k}.T and so on (PyTorch stores (out, in) and multiplies x Wᵀ). Each cell's
per-step output is `y` (the new h); `B` is symbolic.
"""

from __future__ import annotations

import rnncomp as rc
from ir import Cell


def _inputs(g: rc.Graph, I: int, Hh: int, G: int, bias: bool):  # noqa: E741
    x = g.seq("x", ("B", I))
    W_ih, W_hh = g.param("W_ih", (I, G)), g.param("W_hh", (Hh, G))
    b = (g.param("b_ih", (G,)), g.param("b_hh", (G,))) if bias else None
    return x, W_ih, W_hh, b


def rnn_cell(I: int, H: int, nonlinearity: str = "tanh", bias: bool = True) -> Cell:  # noqa: E741
    """nn.RNN's step (tanh or relu)."""
    g = rc.Graph(f"rnn_{nonlinearity}")
    x, W_ih, W_hh, b = _inputs(g, I, H, H, bias)
    h = g.state("h", ("B", H))
    xi, hh = x @ W_ih, h.prev(1) @ W_hh
    if b is not None:
        xi, hh = xi + b[0], hh + b[1]
    act = {"tanh": rc.tanh, "relu": rc.relu}[nonlinearity]
    h_new = act(xi + hh)
    h.define(h_new)
    g.output("y", h_new)
    return g.build()


def gru_cell(I: int, H: int, bias: bool = True) -> Cell:  # noqa: E741
    """nn.GRU's step: gates r, z, n; the hidden bias of n inside r * (...)."""
    g = rc.Graph("gru")
    x, W_ih, W_hh, b = _inputs(g, I, H, 3 * H, bias)
    h = g.state("h", ("B", H))
    xi, hh = x @ W_ih, h.prev(1) @ W_hh
    if b is not None:
        xi, hh = xi + b[0], hh + b[1]
    x_r, x_z, x_n = rc.split(xi, 3)
    h_r, h_z, h_n = rc.split(hh, 3)
    r, z = rc.sigmoid(x_r + h_r), rc.sigmoid(x_z + h_z)
    n = rc.tanh(x_n + r * h_n)
    h_new = (1 - z) * n + z * h.prev(1)
    h.define(h_new)
    g.output("y", h_new)
    return g.build()


def lstm_cell(I: int, H: int, proj_size: int = 0, bias: bool = True) -> Cell:  # noqa: E741
    """nn.LSTM's step: gates i, f, g, o; with proj_size P > 0, h' = (σ(o) tanh(c')) W_hr, h of width P."""
    Hh = proj_size or H
    g = rc.Graph("lstm_proj" if proj_size else "lstm")
    x, W_ih, W_hh, b = _inputs(g, I, Hh, 4 * H, bias)
    W_hr = g.param("W_hr", (H, proj_size)) if proj_size else None
    h, c = g.state("h", ("B", Hh)), g.state("c", ("B", H))
    z = x @ W_ih + h.prev(1) @ W_hh
    if b is not None:
        z = x @ W_ih + b[0] + (h.prev(1) @ W_hh + b[1])
    i, f, gg, o = rc.split(z, 4)
    c_new = rc.sigmoid(f) * c.prev(1) + rc.sigmoid(i) * rc.tanh(gg)
    h_new = rc.sigmoid(o) * rc.tanh(c_new)
    if W_hr is not None:
        h_new = h_new @ W_hr
    h.define(h_new)
    c.define(c_new)
    g.output("y", h_new)
    return g.build()
