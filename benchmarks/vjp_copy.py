"""What `vjp` pays so that the caller cannot change what its backward reads: copying the caller's
arrays on the way in, against detecting a change (a fingerprint of each array at `vjp` and again
at `backward`, which is the cheapest sound detection: NumPy arrays have no version counter).

    python benchmarks/vjp_copy.py [--config M] [--repeat 21] [--threads 2]

The LSTM of benchmarks/lstm_cpu.py at its config M (I=128, H=256, B=32, T=100), float32, numba-cpu.
Prints median ms (interleaved passes, benchmarks.lstm_cpu.interleaved_ms) of: value_and_grad as it
is (with the copy), the copy alone, and the two fingerprints alone (blake2b over the arrays' bytes).
"""

from __future__ import annotations

import argparse
import hashlib
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
    lstm = lstm_cell(I, H)
    args = lstm_arrays(I, H, B, T)
    prog = rc.compile(lstm, length="T", unroll="loop", dtype="float32", backend="numba-cpu")
    prog.value_and_grad("y", **args)  # compile

    def copy():
        return {k: v.copy() for k, v in args.items()}

    def fingerprints():  # one at vjp, one at backward
        for _ in range(2):
            for v in args.values():
                hashlib.blake2b(v.data, digest_size=16).digest()

    times = interleaved_ms(
        {"value_and_grad": lambda: prog.value_and_grad("y", **args), "copy": copy, "fingerprint x2": fingerprints},
        a.repeat,
    )
    nbytes = sum(v.nbytes for v in args.values())
    print(f"config {a.config} (I={I}, H={H}, B={B}, T={T}), float32, caller's arrays {nbytes / 1e6:.2f} MB")
    print(f"load: {open('/proc/loadavg').read().strip()}")
    for k, v in times.items():
        print(f"  {k:16s} {v:8.3f} ms  ({100 * v / times['value_and_grad']:.1f}% of value_and_grad)")


if __name__ == "__main__":
    main()
