"""Per-row inputs: a GRU conditioned on one vector per sequence, with the vector as a `Static` (B, C)
against the form users wrote before statics, the vector copied across all T steps as a seq (T, B, C).

    python benchmarks/static.py [--configs M] [--repeat 9] [--threads 2] [--cond 64]

rnncomp numba-cpu, float32, unroll="loop", the configs of lstm_cpu.py (M: I=128, H=256, B=32, T=100) and a
conditioning width C (--cond). Inference forward and forward+backward (loss = sum of y; the copied form's
gradient of c summed over time, as a user must). Gradients of the two forms are checked against each
other first. Prints medians (ms, interleaved passes), copied/static (> 1: the static is faster) and the
bytes each form's backward keeps (prog.memory).
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.lstm_cpu import CONFIGS, _threads, interleaved_ms  # noqa: E402


def make_cell(I: int, H: int, C: int, static: bool):  # noqa: E741
    """The conditioned GRU of examples/conditioned_gru.py at these sizes; c a static or a seq."""
    import rnncomp as rc

    g = rc.Graph("cond_gru_static" if static else "cond_gru_copied")
    x = g.seq("x", ("B", I))
    c = g.static("c", ("B", C)) if static else g.seq("c", ("B", C))
    W_ih, W_hh, V = g.param("W_ih", (I, 3 * H)), g.param("W_hh", (H, 3 * H)), g.param("V", (C, 3 * H))
    b_ih, b_hh = g.param("b_ih", (3 * H,)), g.param("b_hh", (3 * H,))
    h = g.state("h", ("B", H))
    x_r, x_z, x_n = rc.split(x @ W_ih + c @ V + b_ih, 3)
    h_r, h_z, h_n = rc.split(h.prev(1) @ W_hh + b_hh, 3)
    r, z = rc.sigmoid(x_r + h_r), rc.sigmoid(x_z + h_z)
    h.define((1 - z) * rc.tanh(x_n + r * h_n) + z * h.prev(1))
    g.output("y", h)
    return g.build()


def run_config(tag: str, C: int, repeat: int) -> tuple[list, dict]:
    import numpy as np

    import rnncomp as rc

    I, H, B, T = CONFIGS[tag]  # noqa: E741
    rng = np.random.default_rng(0)
    s = 1.0 / np.sqrt(H)
    args = {
        "x": rng.standard_normal((T, B, I), dtype=np.float32),
        "c": rng.standard_normal((B, C), dtype=np.float32),
        "W_ih": rng.uniform(-s, s, (I, 3 * H)).astype(np.float32),
        "W_hh": rng.uniform(-s, s, (H, 3 * H)).astype(np.float32),
        "V": rng.uniform(-s, s, (C, 3 * H)).astype(np.float32),
        "b_ih": rng.uniform(-s, s, 3 * H).astype(np.float32),
        "b_hh": rng.uniform(-s, s, 3 * H).astype(np.float32),
    }
    static = rc.compile(make_cell(I, H, C, True), unroll="loop", backend="numba-cpu", dtype="float32")
    copied = rc.compile(make_cell(I, H, C, False), unroll="loop", backend="numba-cpu", dtype="float32")

    def copied_args():
        return {**args, "c": np.broadcast_to(args["c"], (T, B, C)).copy()}  # what a user had to build per batch

    def copied_grad():
        g = copied.value_and_grad("y", **copied_args())[1]
        return {**g, "c": g["c"].sum(axis=0)}

    impls = {
        "static": (lambda: static(**args), lambda: static.value_and_grad("y", **args)[1]),
        "copied across T": (lambda: copied(**copied_args()), copied_grad),
    }
    got, want = impls["static"][1](), impls["copied across T"][1]()
    for k in want:
        err = float(np.max(np.abs(got[k] - want[k])) / max(1e-6, float(np.max(np.abs(want[k])))))
        if err > 1e-4:
            raise SystemExit(f"{tag}: gradient {k!r} of the two forms differs by {err:.2e} (relative)")
    rows = [
        (tag, kind, interleaved_ms({n: f[i] for n, f in impls.items()}, repeat))
        for kind, i in (("fwd", 0), ("fwd+bwd", 1))
    ]
    kept = {"static": static.memory(T=T, B=B)["kept"], "copied across T": copied.memory(T=T, B=B)["kept"]}
    return rows, kept


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="M")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cond", type=int, default=64)
    args = ap.parse_args(argv)
    _threads(args.threads)
    with open("/proc/loadavg") as f:
        print(f"loadavg before: {f.read().strip()}; threads={args.threads}")
    for tag in args.configs.split(","):
        rows, kept = run_config(tag, args.cond, args.repeat)
        I, H, B, T = CONFIGS[tag]  # noqa: E741
        for _, kind, times in rows:
            print(f"\n{tag} (I={I}, H={H}, B={B}, T={T}, C={args.cond}) conditioned GRU {kind}:")
            for name, ms in times.items():
                ratio = "" if name == "static" else f"  copied/static = {ms / times['static']:.2f}"
                print(f"  {name:<16} {ms:9.2f} ms{ratio}")
        print("  kept for the backward: " + ", ".join(f"{k} {v / 2**20:.2f} MiB" for k, v in kept.items()))
    with open("/proc/loadavg") as f:
        print(f"\nloadavg after: {f.read().strip()}")


if __name__ == "__main__":
    main()
