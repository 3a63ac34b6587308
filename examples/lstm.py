"""LSTM with one fused gate GEMM: z = x @ Wx + h @ Wh + b, gates in the order i, f, g, o.

`lstm_any` is written once for every size (I inputs, H hidden units: the gate GEMM is I x 4H);
`rc.compile(lstm_any)` binds I and H from each call's arrays. `lstm` is it at I=16, H=32.
"""

import rnncomp as rc
from rnncomp import Param, Seq, State


@rc.cell(name="lstm")
def lstm_any(
    x: Seq["B", "I"],  # noqa: F821  ("B", "I", "4*H" are dims, not forward references)
    h: State["B", "H"],  # noqa: F821
    c: State["B", "H"],  # noqa: F821
    Wx: Param["I", "4*H"],  # noqa: F821
    Wh: Param["H", "4*H"],  # noqa: F821
    b: Param["4*H"],  # noqa: F821
):
    i, f, g, o = rc.split(x @ Wx + h @ Wh + b, 4)
    c_new = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
    h_new = rc.sigmoid(o) * rc.tanh(c_new)
    return {"h": h_new, "c": c_new, "y": h_new}


lstm = rc.with_dims(lstm_any, I=16, H=32)  # the sizes the tests, goldens and benchmarks use


if __name__ == "__main__":
    from _demo import demo

    demo(lstm)
