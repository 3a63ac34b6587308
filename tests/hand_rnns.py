"""Hand-written NumPy loops for the example networks, independent of rnncomp's op table.

Each takes time-major inputs `(T, B, ...)`, params, optional inits and optional `lengths`, and
returns the same dict the oracle does (per-step outputs stacked, final states). Copy-through
for `lengths` is written out per loop: a dead row's output is 0 and its state keeps its value.
Also `load_example`, which imports a script from examples/ by path.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    """Import examples/<name>.py as a module (examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def live_rows(lengths, t: int, B: int) -> np.ndarray:
    """(B, 1) booleans: which rows are still inside their sequence at step t."""
    if lengths is None:
        return np.ones((B, 1), dtype=bool)
    return (t < np.asarray(lengths))[:, None]


def _zeros_or(init, B: int, H: int) -> np.ndarray:
    return np.zeros((B, H)) if init is None else np.asarray(init, dtype=np.float64)


def elman(x, W, U, b, h=None, lengths=None) -> dict[str, np.ndarray]:
    """h[t] = tanh(x[t] W + h[t-1] U + b); y[t] = h[t]."""
    T, B = x.shape[:2]
    h = _zeros_or(h, B, U.shape[0])
    ys = np.zeros((T, B, U.shape[0]))
    for t in range(T):
        live = live_rows(lengths, t, B)
        new = np.tanh(x[t] @ W + h @ U + b)
        ys[t] = np.where(live, new, 0.0)
        h = np.where(live, new, h)
    return {"y": ys, "h": h}


def lstm_step(x, h, c, Wx, Wh, b):
    """One LSTM step with gates packed i, f, g, o along the last axis."""
    H = h.shape[1]
    z = x @ Wx + h @ Wh + b
    i, f, g, o = (z[:, k * H : (k + 1) * H] for k in range(4))
    c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c_new), c_new


def lstm(x, Wx, Wh, b, h=None, c=None, lengths=None) -> dict[str, np.ndarray]:
    """The LSTM of examples/lstm.py; y[t] = h[t]."""
    T, B = x.shape[:2]
    H = Wh.shape[0]
    h, c = _zeros_or(h, B, H), _zeros_or(c, B, H)
    ys = np.zeros((T, B, H))
    for t in range(T):
        live = live_rows(lengths, t, B)
        h_new, c_new = lstm_step(x[t], h, c, Wx, Wh, b)
        ys[t] = np.where(live, h_new, 0.0)
        h, c = np.where(live, h_new, h), np.where(live, c_new, c)
    return {"y": ys, "h": h, "c": c}


def gru(x, W_ih, W_hh, b_ih, b_hh, h=None, lengths=None) -> dict[str, np.ndarray]:
    """torch.nn.GRU's step (gates r, z, n; W = PyTorch's weight transposed); y[t] = h[t]."""
    T, B = x.shape[:2]
    H = W_hh.shape[0]
    h = _zeros_or(h, B, H)
    ys = np.zeros((T, B, H))
    for t in range(T):
        live = live_rows(lengths, t, B)
        gi, gh = x[t] @ W_ih + b_ih, h @ W_hh + b_hh
        r = sigmoid(gi[:, :H] + gh[:, :H])
        z = sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
        n = np.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
        new = (1.0 - z) * n + z * h
        ys[t] = np.where(live, new, 0.0)
        h = np.where(live, new, h)
    return {"y": ys, "h": h}


def three_node(x, M_A, M_B, M_C, M_o, C=None, lengths=None) -> dict[str, np.ndarray]:
    """A = tanh([x, C[t-1]] M_A), Bv = tanh(A M_B), C = tanh(Bv M_C), y = C M_o."""
    T, B = x.shape[:2]
    C = _zeros_or(C, B, M_C.shape[1])
    ys = np.zeros((T, B, M_o.shape[1]))
    for t in range(T):
        live = live_rows(lengths, t, B)
        A = np.tanh(np.concatenate([x[t], C], axis=1) @ M_A)
        new = np.tanh(np.tanh(A @ M_B) @ M_C)
        ys[t] = np.where(live, new @ M_o, 0.0)
        C = np.where(live, new, C)
    return {"y": ys, "C": C}


def narx(x, Wx0, Wx1, Wy1, Wy2, Ws, Us, Vs, b, y=None, s=None, lengths=None) -> dict[str, np.ndarray]:
    """The NARX cell of examples/narx.py: y reads x[t], x[t-1], y[t-1], y[t-2]; s reads y[t-1], s[t-1]."""
    T, B = x.shape[:2]
    H = Wy1.shape[0]
    y1 = _zeros_or(y, B, H)  # y[t-1]
    y2 = y1.copy()  # y[t-2]: the init too, before step 0
    s = _zeros_or(s, B, H)
    x1 = np.zeros_like(x[0]) if T else None  # x[t-1]
    outs = np.zeros((T, B, H))
    for t in range(T):
        live = live_rows(lengths, t, B)
        s_new = np.tanh(y1 @ Ws + s @ Us)
        y_new = np.tanh(x[t] @ Wx0 + x1 @ Wx1 + y1 @ Wy1 + y2 @ Wy2 + s_new @ Vs + b)
        outs[t] = np.where(live, y_new, 0.0)
        y2, y1 = y1, np.where(live, y_new, y1)
        s = np.where(live, s_new, s)
        x1 = x[t]
    return {"out": outs, "y": y1, "s": s}


def stacked_lstm(x, Wx1, Wh1, b1, Wx2, Wh2, b2, h1=None, c1=None, h2=None, c2=None, lengths=None):
    """Two LSTM layers in one step; layer 2 reads layer 1's new h; y[t] = h2[t]."""
    T, B = x.shape[:2]
    H1, H2 = Wh1.shape[0], Wh2.shape[0]
    h1, c1, h2, c2 = _zeros_or(h1, B, H1), _zeros_or(c1, B, H1), _zeros_or(h2, B, H2), _zeros_or(c2, B, H2)
    ys = np.zeros((T, B, H2))
    for t in range(T):
        live = live_rows(lengths, t, B)
        h1_new, c1_new = lstm_step(x[t], h1, c1, Wx1, Wh1, b1)
        h2_new, c2_new = lstm_step(h1_new, h2, c2, Wx2, Wh2, b2)
        ys[t] = np.where(live, h2_new, 0.0)
        h1, c1 = np.where(live, h1_new, h1), np.where(live, c1_new, c1)
        h2, c2 = np.where(live, h2_new, h2), np.where(live, c2_new, c2)
    return {"y": ys, "h1": h1, "c1": c1, "h2": h2, "c2": c2}


HAND = {
    "elman": elman,
    "lstm": lstm,
    "gru": gru,
    "three_node": three_node,
    "narx": narx,
    "stacked_lstm": stacked_lstm,
}
