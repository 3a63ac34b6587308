"""LayerNorm LSTM (Ba, Kiros and Hinton 2016, section 3.1): layer norm on the input and the recurrent
pre-activations, each with its own gain and bias, and on the cell state before its tanh.

    z = LN(x Wx; gx, bx) + LN(h Wh; gh, bh) + b        gates i, f, g, o (PyTorch's order)
    c' = sigmoid(f) c + sigmoid(i) tanh(g)
    h' = sigmoid(o) tanh(LN(c'; gc, bc))

`torch_layernorm_lstm` is the same network in PyTorch with `F.layer_norm` (tests/test_layernorm.py
checks that the two agree, forward and gradients; benchmarks/layernorm.py times them).
`python examples/layernorm_lstm.py` also runs it against PyTorch when torch is installed.
"""

import rnncomp as rc
from rnncomp import Param, Seq, State


def make_layernorm_lstm_any(eps: float = 1e-5) -> rc.Cell:
    """The LayerNorm LSTM cell, written once for every input size I and hidden size H."""

    @rc.cell(name="layernorm_lstm")
    def cell(
        x: Seq["B", "I"],  # noqa: F821  ("B", "I", "4*H" are dims, not forward references)
        h: State["B", "H"],  # noqa: F821
        c: State["B", "H"],  # noqa: F821
        Wx: Param["I", "4*H"],  # noqa: F821
        Wh: Param["H", "4*H"],  # noqa: F821
        b: Param["4*H"],  # noqa: F821
        gx: Param["4*H"],  # noqa: F821
        bx: Param["4*H"],  # noqa: F821
        gh: Param["4*H"],  # noqa: F821
        bh: Param["4*H"],  # noqa: F821
        gc: Param["H"],  # noqa: F821
        bc: Param["H"],  # noqa: F821
    ):
        z = rc.layer_norm(x @ Wx, eps=eps, gain=gx, bias=bx) + rc.layer_norm(h @ Wh, eps=eps, gain=gh, bias=bh) + b
        i, f, g, o = rc.split(z, 4)
        c_new = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
        h_new = rc.sigmoid(o) * rc.tanh(rc.layer_norm(c_new, eps=eps, gain=gc, bias=bc))
        return {"h": h_new, "c": c_new, "y": h_new}

    return cell


def make_layernorm_lstm(I: int, H: int, eps: float = 1e-5) -> rc.Cell:  # noqa: E741
    """The LayerNorm LSTM cell for input size I and hidden size H."""
    return rc.with_dims(make_layernorm_lstm_any(eps), I=I, H=H)


layernorm_lstm_any = make_layernorm_lstm_any()
layernorm_lstm = make_layernorm_lstm(16, 32)


def torch_layernorm_lstm(x, params: dict, eps: float = 1e-5, state=None):
    """The same network in PyTorch (a loop over steps with F.layer_norm): x (T, B, I), params as
    torch tensors named as the cell's, `state` the initial (h, c) (zeros if None); returns y (T, B, H)
    and the final (h, c)."""
    import torch
    import torch.nn.functional as F

    p = params
    H = p["Wh"].shape[0]
    T, B = x.shape[:2]
    h, c = state if state is not None else (x.new_zeros((B, H)), x.new_zeros((B, H)))
    ln4, ln1 = (4 * H,), (H,)
    xw = F.layer_norm(x @ p["Wx"], ln4, p["gx"], p["bx"], eps)  # (T, B, 4H): one GEMM over all steps
    ys = []
    for t in range(T):
        z = xw[t] + F.layer_norm(h @ p["Wh"], ln4, p["gh"], p["bh"], eps) + p["b"]
        i, f, g, o = z.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(F.layer_norm(c, ln1, p["gc"], p["bc"], eps))
        ys.append(h)
    return torch.stack(ys), (h, c)


if __name__ == "__main__":
    from _demo import demo, random_arguments

    demo(layernorm_lstm)
    try:
        import torch
    except ImportError:
        raise SystemExit("(PyTorch is not installed: skipped the comparison with F.layer_norm)") from None
    import numpy as np

    args = random_arguments(layernorm_lstm, T=6, B=3)
    out, backward = rc.compile(layernorm_lstm, dtype="float64").vjp(**args)
    grads = backward({"y": np.ones_like(out["y"])})
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in args.items()}
    y, _ = torch_layernorm_lstm(tp["x"], tp)
    y.sum().backward()
    errs = [np.max(np.abs(out["y"] - y.detach().numpy()))] + [
        np.max(np.abs(grads[k] - tp[k].grad.numpy())) for k in args
    ]
    print(f"max |rnncomp - PyTorch F.layer_norm| over y and every gradient: {max(errs):.1e}")
