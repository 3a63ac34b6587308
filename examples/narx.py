"""A NARX-style cell: delay 2 and two states.

    s[t] = tanh(y[t-1] @ Ws + s[t-1] @ Us)                         (a slow summary of y)
    y[t] = tanh(x[t] @ Wx0 + x[t-1] @ Wx1 + y[t-1] @ Wy1 + y[t-2] @ Wy2 + s[t] @ Vs + b)
In `@rc.cell` a state argument is its value one step back: `y` is y[t-1], `y.prev(2)` is y[t-2].
"""

import rnncomp as rc
from rnncomp import Param, Seq, State


@rc.cell
def narx(
    x: Seq["B", 4],  # noqa: F821  ("B" is a dim symbol, not a forward reference)
    y: State["B", 8],  # noqa: F821
    s: State["B", 8],  # noqa: F821
    Wx0: Param[4, 8],
    Wx1: Param[4, 8],
    Wy1: Param[8, 8],
    Wy2: Param[8, 8],
    Ws: Param[8, 8],
    Us: Param[8, 8],
    Vs: Param[8, 8],
    b: Param[8],
):
    s_new = rc.tanh(y @ Ws + s @ Us)
    y_new = rc.tanh(x @ Wx0 + x.prev() @ Wx1 + y @ Wy1 + y.prev(2) @ Wy2 + s_new @ Vs + b)
    return {"y": y_new, "s": s_new, "out": y_new}


if __name__ == "__main__":
    from _demo import demo

    demo(narx)
