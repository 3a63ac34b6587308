"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?"): the gate and the candidate read only the input,

    z = σ(x W_z + b_z)      h̃ = x W_h + b_h      h' = (1 - z) * h + z * h̃

so the update is linear in h (h' = a * h + b with a = 1 - z, b = z * h̃): the `linear_scan` pass
computes a and b for all steps at once and runs h as a scan over time (`rnncomp dump
examples/mingru.py --after linear_scan` shows it; `--explain linear_scan` says why a cell is not).
"""

import rnncomp as rc
from rnncomp import Param, Seq, State


def make_mingru(I: int, H: int) -> rc.Cell:  # noqa: E741
    """The minGRU cell for input size I and hidden size H."""

    @rc.cell(name="mingru")
    def cell(
        x: Seq["B", I],  # noqa: F821  ("B" is a dim symbol, not a forward reference)
        h: State["B", H],  # noqa: F821
        W_z: Param[I, H],
        b_z: Param[H],
        W_h: Param[I, H],
        b_h: Param[H],
    ):
        z = rc.sigmoid(x @ W_z + b_z)
        h_tilde = x @ W_h + b_h
        h_new = (1 - z) * h + z * h_tilde
        return {"h": h_new, "y": h_new}

    return cell


mingru = make_mingru(16, 32)


if __name__ == "__main__":
    from _demo import demo

    demo(mingru)
