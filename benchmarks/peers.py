"""The LSTMs rnncomp is compared with, one function per peer, all with the same weights and layout.

Weights are rnncomp's layout: Wx (I, 4H), Wh (H, 4H), b (4H,), gate order i, f, g, o (PyTorch's).
Each `make_*` returns (forward, forward_backward) closures over the inputs, or raises `Missing`
naming the package, so a benchmark reports a missing peer instead of silently skipping it.
"""

from __future__ import annotations

import numpy as np


class Missing(Exception):
    """A peer whose package is not installed (`pip install -e .[bench]`)."""


def make_torch(x, Wx, Wh, b, threads: int = 2):
    try:
        import torch
    except ImportError as e:
        raise Missing(f"PyTorch ({e})") from None
    torch.set_num_threads(threads)
    T, B, I = x.shape  # noqa: E741
    H = Wh.shape[0]
    lstm = torch.nn.LSTM(I, H)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(Wx.T.copy()))
        lstm.weight_hh_l0.copy_(torch.from_numpy(Wh.T.copy()))
        lstm.bias_ih_l0.copy_(torch.from_numpy(b))
        lstm.bias_hh_l0.zero_()
    xt = torch.from_numpy(x)

    def forward():
        with torch.no_grad():
            y, (h, c) = lstm(xt)
        return y.numpy()

    def forward_backward():
        lstm.zero_grad()
        xg = xt.clone().requires_grad_(True)
        y, _ = lstm(xg)
        y.sum().backward()
        return {
            "y": y.detach().numpy(),
            "Wx": lstm.weight_ih_l0.grad.numpy().T,
            "Wh": lstm.weight_hh_l0.grad.numpy().T,
            "b": lstm.bias_ih_l0.grad.numpy(),
            "x": xg.grad.numpy(),
        }

    return forward, forward_backward


def make_jax(x, Wx, Wh, b, unroll: int = 1):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as e:
        raise Missing(f"JAX ({e})") from None
    H = Wh.shape[0]

    def run(params, xs):
        Wx_, Wh_, b_ = params
        B = xs.shape[1]

        def step(carry, xt):
            h, c = carry
            z = xt @ Wx_ + h @ Wh_ + b_
            i, f, g, o = jnp.split(z, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((B, H), xs.dtype)
        _, ys = jax.lax.scan(step, (zeros, zeros), xs, unroll=unroll)
        return ys

    fwd = jax.jit(run)
    loss = lambda p, xs: run(p, xs).sum()  # noqa: E731
    grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    params = tuple(jnp.asarray(a) for a in (Wx, Wh, b))
    xj = jnp.asarray(x)

    def forward():
        return np.asarray(fwd(params, xj).block_until_ready())

    def forward_backward():
        v, (gp, gx) = grad(params, xj)
        gx.block_until_ready()
        return {"Wx": np.asarray(gp[0]), "Wh": np.asarray(gp[1]), "b": np.asarray(gp[2]), "x": np.asarray(gx)}

    return forward, forward_backward


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def make_numpy(x, Wx, Wh, b):
    """Plain NumPy: the input projection as one GEMM, a Python loop over steps, hand-written BPTT."""
    T, B, _ = x.shape
    H = Wh.shape[0]

    def forward(keep: bool = False):
        xp = (x.reshape(T * B, -1) @ Wx).reshape(T, B, 4 * H) + b
        h = np.zeros((B, H), x.dtype)
        c = np.zeros((B, H), x.dtype)
        ys = np.empty((T, B, H), x.dtype)
        saved = []
        for t in range(T):
            z = xp[t] + h @ Wh
            i, f, o = _sigmoid(z[:, :H]), _sigmoid(z[:, H : 2 * H]), _sigmoid(z[:, 3 * H :])
            g = np.tanh(z[:, 2 * H : 3 * H])
            c_prev, h_prev = c, h
            c = f * c + i * g
            tc = np.tanh(c)
            h = o * tc
            ys[t] = h
            if keep:
                saved.append((i, f, g, o, c_prev, h_prev, tc))
        return (ys, saved) if keep else ys

    def forward_backward():
        ys, saved = forward(keep=True)
        dz = np.empty((T, B, 4 * H), x.dtype)
        dh = np.zeros((B, H), x.dtype)
        dc = np.zeros((B, H), x.dtype)
        hs = np.empty((T, B, H), x.dtype)
        for t in range(T - 1, -1, -1):
            i, f, g, o, c_prev, h_prev, tc = saved[t]
            hs[t] = h_prev
            dh = dh + 1.0
            do = dh * tc
            dc = dc + dh * o * (1 - tc * tc)
            di, df, dg = dc * g, dc * c_prev, dc * i
            dc = dc * f
            dz[t] = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)], axis=1)
            dh = dz[t] @ Wh.T
        flat = dz.reshape(T * B, 4 * H)
        return {
            "y": ys,
            "Wx": x.reshape(T * B, -1).T @ flat,
            "Wh": hs.reshape(T * B, H).T @ flat,
            "b": flat.sum(0),
            "x": (flat @ Wx.T).reshape(x.shape),
        }

    return forward, forward_backward
