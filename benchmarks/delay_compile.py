"""Compile time against the delay d of `h[t-d]` (d carried values): IR passes, forward and backward.

    python benchmarks/delay_compile.py [--delays 125,250,500,1000] [--backend numpy]

Times, in a fresh program per d, the first `vjp` + backward on the numpy backend (so: every pass of
the forward and backward pipelines and no Numba compile); with `--backend numba-cpu` the Numba
compile too (about 0.3 s per carried value on a shared 2-core machine). Linear in d: the time per
carried value stays flat.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delays", default="125,250,500,1000")
    ap.add_argument("--backend", default="numpy")
    a = ap.parse_args()
    import numpy as np

    import rnncomp as rc
    from ir.parser import parse_cell

    print(f"load: {open('/proc/loadavg').read().strip()}  backend {a.backend}")
    for d in (int(s) for s in a.delays.split(",")):
        text = f"cell c{d} {{\n seq x : f64[B, 2]\n state h : f64[B, 2]\n h = tanh(add(x, h[t-{d}]))\n out y = h\n}}\n"
        prog = rc.compile(parse_cell(text), length="T", unroll="loop", dtype="float64", backend=a.backend)
        x = np.ones((3, 1, 2))
        t0 = time.perf_counter()
        out, backward = prog.vjp(x=x)
        backward({"y": x})
        took = time.perf_counter() - t0
        print(f"  d={d:6d}  {took:8.3f} s  {1e3 * took / d:7.3f} ms per carried value")


if __name__ == "__main__":
    main()
