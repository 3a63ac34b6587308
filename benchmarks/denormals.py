"""Subnormal floats in BPTT: an LSTM's backward from a loss on the final state only.

The gradient decays through time; past some T it reaches subnormal floats, which x86 computes with
20-100x slower. Measured side by side: rnncomp numba-cpu with denormals="keep" (IEEE) and "flush"
(the default), PyTorch's nn.LSTM as it comes (IEEE) and under torch.set_flush_denormal(True).
Only the backward is timed (the forward runs before each one); the medians of interleaved rounds.

    PYTHONPATH=. python benchmarks/denormals.py [--T 150 200 400] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import rnncomp as rc
from benchmarks.cells import lstm_arrays, lstm_cell

I, H, B = 128, 256, 32  # noqa: E741
TINY = np.finfo(np.float32).tiny


def subnormals(v: np.ndarray) -> int:
    return int(((v != 0) & (np.abs(v) < TINY)).sum())


def rnncomp_backward(a: dict, r: np.ndarray, mode: str):
    prog = rc.compile(lstm_cell(I, H), dtype="float32", backend="numba-cpu", denormals=mode)

    def run():
        _, back = prog.vjp(**a)
        t = time.perf_counter()
        g = back({"h": r})
        return time.perf_counter() - t, subnormals(g["x"])

    return run


def torch_backward(a: dict, r: np.ndarray, flush: bool):
    import torch

    lstm = torch.nn.LSTM(I, H)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(a["Wx"].T.copy()))
        lstm.weight_hh_l0.copy_(torch.from_numpy(a["Wh"].T.copy()))
        lstm.bias_ih_l0.copy_(torch.from_numpy(a["b"]))
        lstm.bias_hh_l0.zero_()
    x, dh = torch.from_numpy(a["x"]), torch.from_numpy(r)

    def run():
        xg = x.clone().requires_grad_()
        _, (h, _) = lstm(xg)
        torch.set_flush_denormal(flush)
        try:
            t = time.perf_counter()
            h[0].backward(dh)
            spent = time.perf_counter() - t
        finally:
            torch.set_flush_denormal(False)
        return spent, subnormals(xg.grad.numpy())

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, nargs="+", default=[150, 200, 400])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import torch

    print(f"LSTM I={I} H={H} B={B} float32, loss on the final h; backward ms (median of {args.repeat}), ")
    threads = os.environ.get("NUMBA_NUM_THREADS", "all")
    print(f"subnormal entries in dx; threads: numba {threads}, torch {torch.get_num_threads()}")
    print(f"loadavg before: {open('/proc/loadavg').read().strip()}")
    print("| T | rnncomp keep | rnncomp flush (default) | keep / flush | nn.LSTM | nn.LSTM + set_flush_denormal |")
    print("|---|---|---|---|---|---|")
    for T in args.T:
        a = lstm_arrays(I, H, B, T)
        r = np.random.default_rng(1).standard_normal((B, H)).astype(np.float32)
        fns = {
            "keep": rnncomp_backward(a, r, "keep"),
            "flush": rnncomp_backward(a, r, "flush"),
            "torch": torch_backward(a, r, False),
            "torch_flush": torch_backward(a, r, True),
        }
        for f in fns.values():
            f()  # compile, warm the buffers
        times: dict[str, list[float]] = {k: [] for k in fns}
        subs: dict[str, int] = {}
        for _ in range(args.repeat):
            for k, f in fns.items():
                dt, subs[k] = f()
                times[k].append(1e3 * dt)
        ms = {k: float(np.median(v)) for k, v in times.items()}
        col = {k: f"{ms[k]:.0f} ({subs[k]})" for k in ms}
        ratio = ms["keep"] / ms["flush"]
        print(f"| {T} | {col['keep']} | {col['flush']} | {ratio:.1f}x | {col['torch']} | {col['torch_flush']} |")
    print(f"loadavg after: {open('/proc/loadavg').read().strip()}")


if __name__ == "__main__":
    main()
