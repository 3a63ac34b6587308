"""A real-diagonal linear RNN (the recurrence of LRU and diagonal state-space models, real case):

    h' = λ * h + x B      y = h' C + x D

λ (a param, one decay per feature; in (0, 1) for a stable recurrence) is the same at every step and
broadcast over batch rows; the recurrence is linear, so the `linear_scan` pass scans it.
"""

import rnncomp as rc
from rnncomp import Param, Seq, State


def make_diagonal_rnn(I: int, H: int, O: int) -> rc.Cell:  # noqa: E741
    """The diagonal linear RNN for input size I, state size H and output size O."""

    @rc.cell(name="diagonal_rnn")
    def cell(
        x: Seq["B", I],  # noqa: F821  ("B" is a dim symbol, not a forward reference)
        h: State["B", H],  # noqa: F821
        lam: Param[H],
        B_in: Param[I, H],
        C: Param[H, O],
        D: Param[I, O],
    ):
        h_new = lam * h + x @ B_in
        return {"h": h_new, "y": h_new @ C + x @ D}

    return cell


diagonal_rnn = make_diagonal_rnn(16, 32, 8)


if __name__ == "__main__":
    from _demo import demo

    demo(diagonal_rnn)
