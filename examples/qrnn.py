"""QRNN with fo-pooling (Bradbury et al. 2017), filter width 1: gates from the input only,

    z = tanh(x W_z)   f = σ(x W_f)   o = σ(x W_o)      c' = f * c + (1 - f) * z      h = o * c'

The cell state c is linear in itself (a = f, b = (1 - f) z): the `linear_scan` pass scans it, and
h, a function of c' and the input, is computed for every step from the scanned trace.
"""

import rnncomp as rc
from rnncomp import Param, Seq, State


@rc.cell(name="qrnn")
def qrnn_any(
    x: Seq["B", "I"],  # noqa: F821  ("B", "I", "3*H" are dims, not forward references)
    c: State["B", "H"],  # noqa: F821
    W: Param["I", "3*H"],  # noqa: F821
    b: Param["3*H"],  # noqa: F821
):
    """The fo-pooling QRNN layer, written once for every input size I and hidden size H."""
    gz, gf, go = rc.split(x @ W + b, 3)
    z, f, o = rc.tanh(gz), rc.sigmoid(gf), rc.sigmoid(go)
    c_new = f * c + (1 - f) * z
    return {"c": c_new, "h": o * c_new}


def make_qrnn(I: int, H: int) -> rc.Cell:  # noqa: E741
    """The fo-pooling QRNN layer for input size I and hidden size H."""
    return rc.with_dims(qrnn_any, I=I, H=H)


qrnn = make_qrnn(16, 32)


if __name__ == "__main__":
    from _demo import demo

    demo(qrnn)
