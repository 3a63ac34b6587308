"""Gradients only where asked: `value_and_grad(..., wrt=...)` against the full backward.

    python benchmarks/wrt.py [--config M] [--repeat 21] [--threads 2]

The LSTM of benchmarks/lstm_cpu.py at its config M (I=128, H=256, B=32, T=100), float32, numba-cpu,
unroll="loop". Prints median ms (interleaved passes, benchmarks.lstm_cpu.interleaved_ms) of
value_and_grad with every gradient, with the params only (no dX = dZ Wx^T GEMM over T*B rows),
with the input only (no dW GEMMs), and the forward alone for scale.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.lstm_cpu import CONFIGS, _threads, interleaved_ms  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="M", choices=sorted(CONFIGS))
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    _threads(a.threads)

    import rnncomp as rc
    from benchmarks.cells import lstm_arrays, lstm_cell

    I, H, B, T = CONFIGS[a.config]  # noqa: E741
    args = lstm_arrays(I, H, B, T)
    prog = rc.compile(lstm_cell(I, H), length="T", unroll="loop", dtype="float32", backend="numba-cpu")
    runs = {
        "all gradients": lambda: prog.value_and_grad("y", **args),
        "wrt params": lambda: prog.value_and_grad("y", wrt=["Wx", "Wh", "b"], **args),
        "wrt x": lambda: prog.value_and_grad("y", wrt=["x"], **args),
        "forward": lambda: prog(**args),
    }
    for f in runs.values():  # compile every variant
        f()
    times = interleaved_ms(runs, a.repeat)
    print(f"config {a.config} (I={I}, H={H}, B={B}, T={T}), float32, numba-cpu, unroll='loop'")
    print(f"load: {open('/proc/loadavg').read().strip()}")
    for k, v in times.items():
        print(f"  {k:14s} {v:8.3f} ms  ({100 * v / times['all gradients']:.1f}% of all gradients)")


if __name__ == "__main__":
    main()
