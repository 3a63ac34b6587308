"""rnncomp inside PyTorch: one training step of rct vs nn.LSTM, the bridge's own overhead, variable lengths.

    python benchmarks/torch_bridge.py [--configs S,M,L] [--threads 1,2] [--repeat 6] [--rounds N] [--no-varlen]

float32, configs S, M, L of benchmarks/lstm_cpu.py (I, H, B, T). For each, and each thread count:
  * step: forward, backward of loss = sum(output), Adam.step, for `rct.from_torch(nn.LSTM)` and the
    nn.LSTM it was imported from (the same weights); medians of `--repeat` interleaved calls
    (benchmarks.lstm_cpu.interleaved_ms);
  * overhead: the bridge's forward+backward (`layer.zero_grad(set_to_none=True)`, then
    `layer(x)["y"].sum().backward()` on the rct.Recurrent layer, no optimiser) against
    `prog.value_and_grad("y", ...)` on the same compiled program with NumPy arrays (the same work: the
    forward keeping residuals, the sum, the backward from a ones cotangent, fresh gradients). Both are
    called in `--rounds` rounds, in alternating order (AB, BA, ...); the overhead is the median over
    rounds of (bridge - value_and_grad), beside the medians of each, in wall-clock time and in the
    calling thread's CPU time (time.thread_time: not inflated when a loaded machine preempts the
    process; with 2 threads it leaves out the runtimes' worker threads); "glue" is the CPU time of
    each again with the program's runs replaced by their cached results (what a call costs besides them);
and once (config M's sizes, B=64, T=400, long-tailed lengths: most rows 8-40 steps, 4 rows 400) a
training step of rct with lengths= vs nn.LSTM on a PackedSequence vs nn.LSTM on the padded batch.
Each thread count in a process of its own (OMP/MKL/OpenBLAS/Numba thread counts set before start);
`cat /proc/loadavg` is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.lstm_cpu import CONFIGS, interleaved_ms  # noqa: E402


def _threads(n: int) -> None:
    """Every runtime's thread count, set before it starts (a process per count: see main)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)
    import torch

    torch.set_num_threads(n)


def _pair(I, H):  # noqa: E741
    import torch
    from torch import nn

    import rnncomp.torch as rct

    torch.manual_seed(0)
    ref = nn.LSTM(I, H)
    net = rct.from_torch(ref)
    return ref, net


def _step(model, opt, run):
    def f():
        opt.zero_grad(set_to_none=True)
        run(model).sum().backward()
        opt.step()

    return f


def step_rows(tag: str, threads: list[int], repeat: int) -> list[str]:
    import torch

    I, H, B, T = CONFIGS[tag]  # noqa: E741
    ref, net = _pair(I, H)
    x = torch.randn(T, B, I)
    fns = {
        "nn.LSTM step": _step(ref, torch.optim.Adam(ref.parameters()), lambda m: m(x)[0]),
        "rct step": _step(net, torch.optim.Adam(net.parameters()), lambda m: m(x)[0]),
    }
    # same numerics before timing
    with torch.no_grad():
        y1, y2 = ref(x)[0], net(x)[0]
    assert float((y1 - y2).abs().max()) < 1e-4, "rct and nn.LSTM disagree"
    rows = []
    for n in threads:
        t = interleaved_ms(fns, repeat)
        rows.append(
            f"| {tag} (I={I}, H={H}, B={B}, T={T}) | {n} | {t['nn.LSTM step']:.2f} | {t['rct step']:.2f} | "
            f"{t['nn.LSTM step'] / t['rct step']:.2f}x |"
        )
        print(rows[-1], flush=True)
    return rows


def overhead_fns(tag: str) -> tuple[dict, object, dict]:
    """The bridge's forward+backward and `prog.value_and_grad` on the same program and inputs."""
    import numpy as np
    import torch

    I, H, B, T = CONFIGS[tag]  # noqa: E741
    _, net = _pair(I, H)
    layer = net.stack.layers[0]
    prog = layer.program()
    x = torch.randn(T, B, I)
    arrays = {"x": x.numpy(), **{p: getattr(layer, p).detach().numpy() for p in layer.sig.params}}

    def bridge():
        layer.zero_grad(set_to_none=True)
        layer(x)["y"].sum().backward()

    fns = {"rct fwd+bwd": bridge, "value_and_grad": lambda: prog.value_and_grad("y", **arrays)}
    bridge()  # same gradients before timing
    _, want = prog.value_and_grad("y", **arrays)
    for p in layer.sig.params:
        np.testing.assert_allclose(getattr(layer, p).grad.numpy(), want[p], rtol=1e-5, atol=1e-5)
    return fns, prog, arrays


def _stub(prog, arrays) -> None:
    """Replace the program's runs by their cached results: what is left of a call is its glue."""
    import numpy as np

    out, backward = prog.vjp(**arrays)
    grads = backward({"y": np.ones_like(out["y"])})

    def vjp(lengths, kw, copy=True):
        def back(cot):
            return dict(grads)

        back.ops = backward.ops
        return dict(out), back

    prog._vjp = vjp


def _rounds(fns: dict, rounds: int) -> dict[str, float]:
    """Medians (s) of value_and_grad and the bridge, and of their difference within a round (AB, BA, ...),
    in wall-clock time and in the calling thread's CPU time (which preemption on a loaded machine
    does not inflate; with 2 threads it leaves out the runtimes' other threads)."""
    names = list(fns)
    for f in fns.values():
        for _ in range(3):
            f()
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        for k in names if r % 2 == 0 else names[::-1]:
            t0, c0 = time.perf_counter(), time.thread_time()
            fns[k]()
            cpu[k].append(time.thread_time() - c0)
            wall[k].append(time.perf_counter() - t0)
    out = {}
    for tag, ts in (("", wall), ("cpu ", cpu)):
        out[tag + "vag"] = statistics.median(ts["value_and_grad"])
        out[tag + "rct"] = statistics.median(ts["rct fwd+bwd"])
        out[tag + "diff"] = statistics.median(a - b for a, b in zip(ts["rct fwd+bwd"], ts["value_and_grad"]))
    return out


def overhead_rows(tag: str, threads: list[int], rounds: int) -> list[str]:
    I, H, B, T = CONFIGS[tag]  # noqa: E741
    fns, prog, arrays = overhead_fns(tag)
    rows = []
    for n in threads:
        t = _rounds(fns, rounds)
        _stub(prog, arrays)
        glue = _rounds(fns, max(rounds, 300))
        del prog._vjp

        def over(d, base):
            return f"{1e6 * d:+.0f} us ({100 * d / base:+.1f}%)"

        rows.append(
            f"| {tag} (I={I}, H={H}, B={B}, T={T}) | {n} | {rounds} | {1e3 * t['vag']:.3f} | {1e3 * t['rct']:.3f} | "
            f"{over(t['diff'], t['vag'])} | {1e3 * t['cpu vag']:.3f} | {over(t['cpu diff'], t['cpu vag'])} | "
            f"{1e6 * glue['cpu vag']:.0f} / {1e6 * glue['cpu rct']:.0f} us |"
        )
        print(rows[-1], flush=True)
    return rows


def varlen_rows(threads: list[int], repeat: int) -> list[str]:
    import numpy as np
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    I, H, B, T = CONFIGS["M"][0], CONFIGS["M"][1], 64, 400  # noqa: E741
    rng = np.random.default_rng(0)
    lengths = rng.integers(8, 41, size=B)
    lengths[:4] = T  # the long tail: a few full-length rows
    lengths_t = torch.as_tensor(lengths)
    ref, net = _pair(I, H)
    x = torch.randn(T, B, I)
    mask = (torch.arange(T)[:, None] < lengths_t[None, :]).float()[..., None]

    def packed(m):
        out, _ = m(pack_padded_sequence(x, lengths_t, enforce_sorted=False))
        return out.data

    fns = {
        "rct lengths=": _step(net, torch.optim.Adam(net.parameters()), lambda m: m(x, lengths=lengths_t)[0]),
        "nn.LSTM packed": _step(ref, torch.optim.Adam(ref.parameters()), packed),
        "nn.LSTM padded": _step(ref, torch.optim.Adam(ref.parameters()), lambda m: m(x)[0] * mask),
    }
    rows = []
    for n in threads:
        t = interleaved_ms(fns, repeat)
        rows.append(
            f"| {n} | {t['rct lengths=']:.1f} | {t['nn.LSTM packed']:.1f} | {t['nn.LSTM padded']:.1f} | "
            f"{t['nn.LSTM packed'] / t['rct lengths=']:.2f}x | {t['nn.LSTM padded'] / t['rct lengths=']:.2f}x |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="S,M,L")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=6, help="calls of each in the step and varlen tables")
    ap.add_argument("--rounds", type=int, help="rounds of the overhead table (default: 300 at S, 40 at M, 6 at L)")
    ap.add_argument("--no-step", action="store_true")
    ap.add_argument("--no-overhead", action="store_true")
    ap.add_argument("--no-varlen", action="store_true")
    ap.add_argument("--part", help=argparse.SUPPRESS)  # internal: one table part, in a process of its own
    args = ap.parse_args()
    if args.part:
        kind, tag, n = args.part.split(":")
        _threads(int(n))
        if kind == "varlen":
            varlen_rows([int(n)], args.repeat)
        elif kind == "overhead":
            overhead_rows(tag, [int(n)], args.rounds or {"S": 300, "M": 40}.get(tag, 6))
        else:
            step_rows(tag, [int(n)], args.repeat)
        return
    threads = [int(n) for n in args.threads.split(",")]
    configs = args.configs.split(",")

    def part(spec: str) -> None:
        extra = ["--rounds", str(args.rounds)] if args.rounds else []
        subprocess.run([sys.executable, __file__, "--repeat", str(args.repeat), *extra, "--part", spec], check=True)

    print("loadavg before:", open("/proc/loadavg").read().strip(), flush=True)
    if not args.no_step:
        print("| config | threads | nn.LSTM step ms | rct step ms | nn.LSTM / rct |")
        print("|---|---|---|---|---|", flush=True)
        for tag in configs:
            for n in threads:
                part(f"step:{tag}:{n}")
    if not args.no_overhead:
        print(
            "| config | threads | rounds | value_and_grad ms | rct fwd+bwd ms | bridge overhead (wall) "
            "| value_and_grad CPU ms | bridge overhead (CPU) | glue CPU: value_and_grad / rct |"
        )
        print("|---|---|---|---|---|---|---|---|---|", flush=True)
        for tag in configs:
            for n in threads:
                part(f"overhead:{tag}:{n}")
    if not args.no_varlen:
        print("| threads | rct lengths= ms | nn.LSTM packed ms | nn.LSTM padded ms | packed / rct | padded / rct |")
        print("|---|---|---|---|---|---|", flush=True)
        for n in threads:
            part(f"varlen:-:{n}")
    print("loadavg after:", open("/proc/loadavg").read().strip(), flush=True)


if __name__ == "__main__":
    main()
