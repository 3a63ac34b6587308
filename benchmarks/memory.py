"""Bytes kept for the backward pass versus T: inference, plain BPTT, checkpoint="sqrt".

    python benchmarks/memory.py [--T 100,1000,10000] [--measure 100,1000] [--backend numpy]

LSTM I=128, H=256, B=32, float32. `prog.memory(T, B=32)` gives the bytes by the IR's types; with
--measure the forward is also run and the arrays its backward holds are counted (they must agree).
The strict need of an LSTM's backward is the four gates, c and h per step: 6*B*H*4 bytes.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import rnncomp as rc  # noqa: E402
from benchmarks.cells import lstm_cell  # noqa: E402

I, H, B = 128, 256, 32  # noqa: E741  (the usual names of these sizes)
MiB = 2**20


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", default="100,1000,10000")
    ap.add_argument("--measure", default="", help="T values at which to also run vjp and count the arrays held")
    ap.add_argument("--backend", default="numpy")
    args = ap.parse_args(argv)
    cell = lstm_cell(I, H)
    plain = rc.compile(cell, dtype="float32", backend=args.backend)
    sqrt = rc.compile(cell, dtype="float32", backend=args.backend, checkpoint="sqrt")
    measure = {int(t) for t in args.measure.split(",") if t}
    strict = 6 * B * H * 4
    print(f"LSTM I={I} H={H} B={B} float32: bytes kept for the backward pass (MiB)")
    print("kept: held from forward to backward; peak: at most during the backward (sqrt: plus one segment)")
    heads = ["inference", "strict need", "plain BPTT", "sqrt kept", "sqrt peak", "peak/strict"]
    print(f"{'T':>6} | " + " | ".join(f"{h:>9}" for h in heads) + " | measured kept: plain / sqrt")
    for T in (int(t) for t in args.T.split(",")):
        p, s = plain.memory(T, B=B), sqrt.memory(T, B=B)
        row = (
            f"{T:>6} | {0:>9.2f} | {strict * T / MiB:>11.2f} | {p['kept'] / MiB:>10.2f} | {s['kept'] / MiB:>9.2f} | "
            f"{s['peak'] / MiB:>9.2f} | {s['peak'] / (strict * T):>11.2%}"
        )
        if T in measure:
            rng = np.random.default_rng(0)
            arrays = {
                "x": rng.standard_normal((T, B, I), dtype=np.float32),
                "Wx": rng.standard_normal((I, 4 * H), dtype=np.float32) * 0.05,
                "Wh": rng.standard_normal((H, 4 * H), dtype=np.float32) * 0.05,
                "b": np.zeros(4 * H, np.float32),
            }
            got = [prog.vjp(**arrays)[1].nbytes / MiB for prog in (plain, sqrt)]
            row += f" | {got[0]:.2f} / {got[1]:.2f}"
            assert abs(got[0] - p["kept"] / MiB) < 1e-9 and abs(got[1] - s["kept"] / MiB) < 1e-9, "measured != IR"
        print(row, flush=True)


if __name__ == "__main__":
    main()
