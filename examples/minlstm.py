"""minLSTM (Feng et al. 2024): forget and input gates of the input only, normalised to sum to one,

    f = σ(x W_f + b_f)   i = σ(x W_i + b_i)   h̃ = x W_h + b_h
    f' = f / (f + i)     i' = i / (f + i)     h' = f' * h + i' * h̃

linear in h, so the `linear_scan` pass runs it as a scan over time.
"""

import rnncomp as rc
from rnncomp import Param, Seq, State


def make_minlstm(I: int, H: int) -> rc.Cell:  # noqa: E741
    """The minLSTM cell for input size I and hidden size H."""

    @rc.cell(name="minlstm")
    def cell(
        x: Seq["B", I],  # noqa: F821  ("B" is a dim symbol, not a forward reference)
        h: State["B", H],  # noqa: F821
        W_f: Param[I, H],
        b_f: Param[H],
        W_i: Param[I, H],
        b_i: Param[H],
        W_h: Param[I, H],
        b_h: Param[H],
    ):
        f = rc.sigmoid(x @ W_f + b_f)
        i = rc.sigmoid(x @ W_i + b_i)
        total = f + i
        h_new = (f / total) * h + (i / total) * (x @ W_h + b_h)
        return {"h": h_new, "y": h_new}

    return cell


minlstm = make_minlstm(16, 32)


if __name__ == "__main__":
    from _demo import demo

    demo(minlstm)
