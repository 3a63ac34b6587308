"""LayerNorm LSTM (examples/layernorm_lstm.py) on the CPU: rnncomp numba-cpu vs the same network in
PyTorch with F.layer_norm (a Python loop over steps: PyTorch has no fused layer-normalised LSTM).

    python benchmarks/layernorm.py [--configs M] [--repeat 7] [--threads 2]

float32, the configs of lstm_cpu.py (M: I=128, H=256, B=32, T=100); inference forward and
forward+backward (loss = sum of y). Gradients are checked against PyTorch's first. Prints medians
(ms, interleaved passes) and PyTorch/rnncomp (> 1: rnncomp is faster).
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples"))

from benchmarks.lstm_cpu import CONFIGS, _threads, check, interleaved_ms  # noqa: E402


def make_torch(args: dict, threads: int):
    import torch
    from layernorm_lstm import torch_layernorm_lstm

    torch.set_num_threads(threads)
    params = {k: torch.from_numpy(v) for k, v in args.items() if k != "x"}
    x = torch.from_numpy(args["x"])

    def forward():
        with torch.no_grad():
            return torch_layernorm_lstm(x, params)[0].numpy()

    def forward_backward():
        ps = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        xg = x.clone().requires_grad_(True)
        y, _ = torch_layernorm_lstm(xg, ps)
        y.sum().backward()
        return {"x": xg.grad.numpy(), **{k: v.grad.numpy() for k, v in ps.items()}}

    return forward, forward_backward


def run_config(tag: str, repeat: int, threads: int) -> list:
    import numpy as np
    from layernorm_lstm import make_layernorm_lstm

    import rnncomp as rc

    I, H, B, T = CONFIGS[tag]  # noqa: E741
    rng = np.random.default_rng(0)
    s = 1.0 / np.sqrt(H)
    args = {
        "x": rng.standard_normal((T, B, I), dtype=np.float32),
        "Wx": rng.uniform(-s, s, (I, 4 * H)).astype(np.float32),
        "Wh": rng.uniform(-s, s, (H, 4 * H)).astype(np.float32),
        "b": rng.uniform(-s, s, 4 * H).astype(np.float32),
    }
    for k, n in (("gx", 4 * H), ("gh", 4 * H), ("gc", H)):
        args[k] = (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)
    for k, n in (("bx", 4 * H), ("bh", 4 * H), ("bc", H)):
        args[k] = (0.1 * rng.standard_normal(n)).astype(np.float32)
    cell = make_layernorm_lstm(I, H)
    impls = {}
    for m in ("loop", 4):
        prog = rc.compile(cell, length="T", unroll=m, backend="numba-cpu", dtype="float32")
        impls[f"rnncomp {m}"] = (lambda p=prog: p(**args), lambda p=prog: p.value_and_grad("y", **args)[1])
    impls["pytorch F.layer_norm"] = make_torch(args, threads)
    ref = impls["pytorch F.layer_norm"][1]()
    for name, (_, fb) in impls.items():
        if name.startswith("rnncomp"):
            check(name, fb(), ref, rtol=5e-3)
    rows = []
    for kind, idx in (("fwd", 0), ("fwd+bwd", 1)):
        rows.append((tag, kind, interleaved_ms({name: f[idx] for name, f in impls.items()}, repeat)))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="M")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    _threads(args.threads)
    with open("/proc/loadavg") as f:
        print(f"loadavg before: {f.read().strip()}; threads={args.threads}")
    rows = []
    for tag in args.configs.split(","):
        rows += run_config(tag, args.repeat, args.threads)
    for tag, kind, times in rows:
        I, H, B, T = CONFIGS[tag]  # noqa: E741
        best = min(v for k, v in times.items() if k.startswith("rnncomp"))
        print(f"\n{tag} (I={I}, H={H}, B={B}, T={T}) LayerNorm LSTM {kind}:")
        for name, ms in sorted(times.items(), key=lambda kv: kv[1]):
            ratio = "" if name.startswith("rnncomp") else f"  pytorch/rnncomp = {ms / best:.2f}"
            print(f"  {name:<22} {ms:9.2f} ms{ratio}")
    with open("/proc/loadavg") as f:
        print(f"\nloadavg after: {f.read().strip()}")


if __name__ == "__main__":
    main()
