"""Three nodes in a ring, built with the `rc.Graph` builder: A reads C one step back.

A[t] = tanh(concat(x[t], C[t-1]) @ M_A)    Bv[t] = tanh(A[t] @ M_B)
C[t] = tanh(Bv[t] @ M_C)                   y[t] = C[t] @ M_o
"""

import rnncomp as rc


def build() -> rc.Cell:
    """The three-node cell: a state C defined after it is read."""
    g = rc.Graph("three_node")
    x = g.seq("x", ("B", 8))
    C = g.state("C", ("B", 16))
    M_A = g.param("M_A", (8 + 16, 16))
    M_B = g.param("M_B", (16, 16))
    M_C = g.param("M_C", (16, 16))
    M_o = g.param("M_o", (16, 4))
    A = rc.tanh(rc.concat([x, C.prev()]) @ M_A)
    Bv = rc.tanh(A @ M_B)
    C.define(rc.tanh(Bv @ M_C))
    g.output("y", C @ M_o)
    return g.build()


three_node = build()

if __name__ == "__main__":
    from _demo import demo

    demo(three_node)
