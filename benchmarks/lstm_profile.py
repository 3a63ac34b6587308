"""Where an LSTM's time goes in rnncomp numba-cpu: each generated program, and its GEMMs alone.

    python benchmarks/lstm_profile.py [--configs S,M,L] [--repeat 9] [--threads 2]

For each config of lstm_cpu.py (float32, unroll="loop"): the median time of `prog(...)` (inference),
of the training forward and the backward program run alone (what `value_and_grad` runs, without its
Python glue), and of `value_and_grad` itself; then the GEMMs those programs run, timed alone through
the same helpers at the same shapes and thread counts: the input projection and the weight-gradient
GEMMs on every thread, and one row block's recurrent step GEMM (MKL-packed weight where MKL is the
BLAS) on one thread, times T (the blocks run side by side). What is left is elementwise work
(the fused loops), copies, reductions and per-call overhead.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.lstm_cpu import CONFIGS, _threads, median_ms  # noqa: E402


def gemm_times(I: int, H: int, B: int, T: int, repeat: int) -> dict[str, tuple[float, str]]:  # noqa: E741
    """ms of each GEMM the programs run, alone, and which program runs it."""
    import numba
    import numpy as np

    from rnncomp.backends.numba_cpu import blas
    from rnncomp.backends.numba_cpu import gemm as G

    th, mode = numba.get_num_threads(), blas.MODE
    blocks = max(1, min(th, B))
    rows = (B + blocks - 1) // blocks
    r = np.random.default_rng(0)

    def arr(*shape):
        return r.standard_normal(shape, dtype=np.float32)

    x, Wx, Wh, zs, hs = arr(T * B, I), arr(I, 4 * H), arr(H, 4 * H), arr(T * B, 4 * H), arr(T * B, H)
    h, z, dh = arr(rows, H), arr(rows, 4 * H), np.empty((rows, H), np.float32)
    fwd_pack, bwd_pack = G.pack_b(Wh, False, rows, mode), G.pack_b(Wh, True, rows, mode)
    return {
        "x @ Wx (all steps)": (median_ms(lambda: G.gemm(x, Wx, zs, th, mode), repeat), "forward"),
        "h @ Wh (T steps, a block)": (
            T * median_ms(lambda: G.gemm_packed(h, fwd_pack, Wh, z, False, 1, mode), repeat),
            "forward",
        ),
        "dz @ Wh^T (T steps, a block)": (
            T * median_ms(lambda: G.gemm_packed(z, bwd_pack, Wh, dh, True, 1, mode), repeat),
            "backward",
        ),
        "dx = dZ @ Wx^T": (
            median_ms(lambda: G.gemm_nt(zs, Wx, np.empty((T * B, I), np.float32), th, mode), repeat),
            "backward",
        ),
        "dWx = x^T dZ": (
            median_ms(lambda: G.gemm_tn(x, zs, np.empty((I, 4 * H), np.float32), th, mode), repeat),
            "backward",
        ),
        "dWh = h^T dZ": (
            median_ms(lambda: G.gemm_tn(hs, zs, np.empty((H, 4 * H), np.float32), th, mode), repeat),
            "backward",
        ),
    }


def program_times(I: int, H: int, B: int, T: int, repeat: int) -> dict[str, float]:  # noqa: E741
    import numpy as np

    import rnncomp as rc
    from benchmarks.cells import lstm_cell

    r = np.random.default_rng(0)
    a = {
        "x": r.standard_normal((T, B, I), dtype=np.float32),
        "Wx": r.uniform(-0.1, 0.1, (I, 4 * H)).astype(np.float32),
        "Wh": r.uniform(-0.1, 0.1, (H, 4 * H)).astype(np.float32),
        "b": r.uniform(-0.1, 0.1, 4 * H).astype(np.float32),
    }
    p = rc.compile(lstm_cell(I, H), backend="numba-cpu")
    out, backward = p.vjp(**a)
    dy = {"y": np.ones_like(out["y"])}
    return {
        "inference": median_ms(lambda: p(**a), repeat),
        "training forward (vjp)": median_ms(lambda: p.vjp(**a), repeat),
        "backward": median_ms(lambda: backward(dy), repeat),
        "value_and_grad": median_ms(lambda: p.value_and_grad("y", **a), repeat),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="S,M,L")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    _threads(args.threads)
    from rnncomp.backends.numba_cpu import blas

    print(f"BLAS: {blas.BLAS}; threads={args.threads}")
    for tag in args.configs.split(","):
        I, H, B, T = CONFIGS[tag]  # noqa: E741
        progs = program_times(I, H, B, T, args.repeat)
        gemms = gemm_times(I, H, B, T, args.repeat)
        print(f"\n{tag} (I={I}, H={H}, B={B}, T={T}), ms (medians of {args.repeat}):")
        for k, v in progs.items():
            print(f"  {k:<30} {v:8.2f}")
        for k, (v, where) in gemms.items():
            print(f"  GEMM {k:<30} {v:8.2f}  ({where})")
        for where, total in (("forward", progs["training forward (vjp)"]), ("backward", progs["backward"])):
            g = sum(v for v, w in gemms.values() if w == where)
            print(f"  {where}: GEMMs {g:.2f} of {total:.2f} ({g / total:.0%}); the rest {total - g:.2f}")
        glue = progs["value_and_grad"] - progs["training forward (vjp)"] - progs["backward"]
        print(f"  value_and_grad beyond its two programs: {glue:.2f}")


if __name__ == "__main__":
    main()
