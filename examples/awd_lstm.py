"""AWD-LSTM's regularisation (Merity, Keskar and Socher 2017) in one fused cell: variational ("locked")
dropout on the input and on the output, one mask per batch row for the whole sequence, and
DropConnect ("weight drop") on the recurrent weight, one mask for the whole call.

    x~ = dropout(x, 0.25, per="sequence")       Wh~ = dropout(Wh, 0.5, per="sequence")
    z = x~ Wx + h Wh~ + b                        gates i, f, g, o (PyTorch's order)
    c' = sigmoid(f) c + sigmoid(i) tanh(g)       h' = sigmoid(o) tanh(c')
    y = dropout(h', 0.4, per="sequence")         (the state carries h', undropped)

Masks are drawn when a call passes `seed=` (training); without it the cell is a plain LSTM
(inference). cuDNN cannot fuse any of this; here it is one program. `torch_awd_lstm` is the same
network in PyTorch given the masks (`awd_masks` draws rnncomp's); tests/test_dropout.py checks the two
agree, forward and gradients, and `python examples/awd_lstm.py` does it too when torch is installed.
"""

import numpy as np

import rnncomp as rc
from ir.mask_ops import mask_values
from rnncomp import Param, Seq, State
from rnncomp.masks import seed_words

P_INPUT, P_WEIGHT, P_OUTPUT = 0.25, 0.5, 0.4


@rc.cell
def awd_lstm(
    x: Seq["B", 16],  # noqa: F821  ("B" is a dim symbol, not a forward reference)
    h: State["B", 32],  # noqa: F821
    c: State["B", 32],  # noqa: F821
    Wx: Param[16, 128],
    Wh: Param[32, 128],
    b: Param[128],
):
    x_d = rc.dropout(x, P_INPUT, per="sequence")
    Wh_d = rc.dropout(Wh, P_WEIGHT, per="sequence")
    i, f, g, o = rc.split(x_d @ Wx + h @ Wh_d + b, 4)
    c_new = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
    h_new = rc.sigmoid(o) * rc.tanh(c_new)
    return {"h": h_new, "c": c_new, "y": rc.dropout(h_new, P_OUTPUT, per="sequence")}


def awd_masks(seed: int | None, B: int, cell: rc.Cell = awd_lstm) -> dict[str, np.ndarray]:
    """The masks a call with `seed=` applies (float64, kept values scaled by 1/(1-p)): "x" (B, I),
    "Wh" (H, 4H) and "y" (B, H); all ones without a seed."""
    which = {P_INPUT: "x", P_WEIGHT: "Wh", P_OUTPUT: "y"}
    out = {}
    for n in cell.nodes():
        if n.op == "dropout_mask":
            a = n.attrs
            shape = tuple(B if d == "B" else d for d in a["shape"])
            out[which[a["p"]]] = mask_values(
                0, seed_words(seed), a["p"], a["site"], a["sequence"], a["zoneout"], shape, "float64"
            )
    return out


def torch_awd_lstm(x, params: dict, masks: dict, state=None):
    """The same network in PyTorch (a loop over steps): x (T, B, I), params as torch tensors named as
    the cell's, `masks` as `awd_masks` gives them (torch tensors), `state` the initial (h, c) (zeros if
    None); returns y (T, B, H) and the final (h, c)."""
    import torch

    p = params
    H = p["Wh"].shape[0]
    T, B = x.shape[:2]
    h, c = state if state is not None else (x.new_zeros((B, H)), x.new_zeros((B, H)))
    xw = (x * masks["x"]) @ p["Wx"]  # (T, B, 4H): one GEMM over all steps
    Wh = p["Wh"] * masks["Wh"]
    ys = []
    for t in range(T):
        i, f, g, o = (xw[t] + h @ Wh + p["b"]).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        ys.append(h * masks["y"])
    return torch.stack(ys), (h, c)


if __name__ == "__main__":
    from _demo import demo, random_arguments

    from rnncomp.reference import run

    demo(awd_lstm)  # inference: no seed, a plain LSTM
    args = random_arguments(awd_lstm, T=6, B=3)
    want = run(awd_lstm, **args, seed=2024)
    for unroll in ("loop", 2, "full"):
        got = rc.compile(awd_lstm, unroll=unroll, dtype="float64")(**args, seed=2024)
        err = max(float(np.max(np.abs(got[k] - want[k]))) for k in want)
        print(f"seed=2024, unroll={unroll!r}: max |rnncomp - oracle| = {err:.1e}")
        if err > 1e-10:
            raise SystemExit(f"unroll={unroll!r}: rnncomp and the oracle disagree by {err:.3e}")
    m = awd_masks(2024, 3)
    print("kept fractions: " + ", ".join(f"{k} {np.mean(v != 0):.2f}" for k, v in m.items()))
    try:
        import torch
    except ImportError:
        raise SystemExit("(PyTorch is not installed: skipped the comparison with PyTorch)") from None
    tp = {k: torch.tensor(v) for k, v in args.items() if k != "x"}
    y, (h, c) = torch_awd_lstm(torch.tensor(args["x"]), tp, {k: torch.tensor(v) for k, v in m.items()})
    err = float(np.max(np.abs(y.numpy() - want["y"])))
    print(f"max |rnncomp - PyTorch with the same masks| = {err:.1e}")
    if err > 1e-10:
        raise SystemExit(f"rnncomp and PyTorch disagree by {err:.3e}")
