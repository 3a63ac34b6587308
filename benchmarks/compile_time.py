"""Time of the whole pass pipeline versus T, for full, k=8 and loop unrolling of the LSTM.

    python benchmarks/compile_time.py [--T 25,100,400,1600] [--repeat 3]

Measures IR construction only (unroll + simplify + hoist + simplify; with --grad also the training
forward and the backward program), not code generation. Prints the median of the repeats and the
IR size (nodes, loop bodies included).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.cells import lstm_cell  # noqa: E402
from passes.pipeline import PassManager  # noqa: E402
from passes.retype import retype_cell  # noqa: E402

PIPELINE = "simplify,hoist,simplify"


def build(cell, T: int, mode, kind: str):
    """One pipeline run (the grad plan derived in it, as a fresh compile does); returns the final program."""
    first = {"infer": "unroll", "train": "grad_forward", "grad": "grad"}[kind]
    spec = f"{first}{{length={T},mode={mode}}},{PIPELINE}"
    prog, _ = PassManager(spec, verify_each=False, print_after=None).run(cell)
    return prog


def measure(cell, T: int, mode, kinds, repeat: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        size = sum(build(cell, T, mode, k).size() for k in kinds)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), size


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", default="25,50,100,200,400,800,1600")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    cell = retype_cell(lstm_cell(128, 256), "f32")
    Ts = [int(t) for t in args.T.split(",")]
    print(f"LSTM I=128 H=256; pass pipeline time (median of {args.repeat}), seconds [IR nodes]")
    heads = [
        ("full fwd", 16),
        ("full fwd+bwd", 18),
        ("k=8 fwd", 14),
        ("k=8 fwd+bwd", 16),
        ("loop fwd", 14),
        ("loop fwd+bwd", 16),
    ]
    print(f"{'T':>6} | " + " | ".join(h.rjust(w) for h, w in heads))
    for T in Ts:
        row = [f"{T:>6}"]
        for mode in ("full", 8, "loop"):
            for kinds, w in ((["infer"], 14), (["train", "grad"], 16)):
                t, n = measure(cell, T, mode, kinds, args.repeat)
                row.append(f"{t:8.3f} [{n:>6}]".rjust(w + (2 if mode == "full" else 0)))
        print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
