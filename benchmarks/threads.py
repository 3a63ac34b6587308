"""Threads on a shared machine: the 90th percentile per call, rnncomp's default vs one thread vs PyTorch.

    python benchmarks/threads.py [--configs S,M] [--calls 60] [--passes 3] [--loads idle,busy]

LSTM configs of lstm_cpu.py, float32, forward and forward+backward. Each implementation is timed
per call: rnncomp numba-cpu with Numba's default thread count and with `numba.set_num_threads(1)`,
PyTorch nn.LSTM with its default thread count and with one thread. "busy" runs a second process
that keeps one core busy (a Python loop) for the duration, as another user of the machine would;
"idle" does not (the machine may still be shared: the load average is printed beside).

Each call is followed by the caller's own next work: a fixed, single-threaded NumPy task. Its time
after the call, against its time alone, shows threads left spinning (or waking) after a call
slowing whoever runs next. Calls are taken in `--passes` interleaved passes over the implementations.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.lstm_cpu import CONFIGS  # noqa: E402

BUSY = "while True:\n    pass\n"


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def next_work(np, buf):
    """The caller's next work: about 0.1 ms of single-threaded NumPy."""

    def work():
        for _ in range(8):
            np.tanh(buf, out=buf)

    return work


def implementations(tag: str):
    import numba
    import numpy as np
    import torch

    import rnncomp as rc
    from benchmarks.cells import lstm_cell
    from benchmarks.peers import make_torch

    I, H, B, T = CONFIGS[tag]  # noqa: E741
    rng = np.random.default_rng(0)
    s = 1.0 / np.sqrt(H)
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    Wx = rng.uniform(-s, s, (I, 4 * H)).astype(np.float32)
    Wh = rng.uniform(-s, s, (H, 4 * H)).astype(np.float32)
    b = rng.uniform(-s, s, 4 * H).astype(np.float32)
    arrays = {"x": x, "Wx": Wx, "Wh": Wh, "b": b}
    prog = rc.compile(lstm_cell(I, H), length="T", unroll="loop", backend="numba-cpu", dtype="float32")
    numba_default = numba.config.NUMBA_NUM_THREADS
    torch_default = torch.get_num_threads()
    tf, tfb = make_torch(x, Wx, Wh, b, torch_default)

    def rnncomp_with(n):
        def setup():
            numba.set_num_threads(n)

        return setup, (lambda: prog(**arrays)), (lambda: prog.value_and_grad("y", **arrays))

    def torch_with(n):
        return (lambda: torch.set_num_threads(n)), tf, tfb

    return {
        f"rnncomp default ({numba_default} threads)": rnncomp_with(numba_default),
        "rnncomp 1 thread": rnncomp_with(1),
        f"pytorch default ({torch_default} threads)": torch_with(torch_default),
        "pytorch 1 thread": torch_with(1),
    }


def measure(impls: dict, kind: int, calls: int, passes: int, np) -> dict[str, tuple]:
    """Per implementation: (p50, p90 of the call, p90 of the next work after it) in ms, and the next
    work's p90 alone."""
    work = next_work(np, np.random.default_rng(1).standard_normal(20_000))
    times = {name: ([], []) for name in impls}
    alone: list[float] = []
    for _ in range(passes):
        for _ in range(calls):
            t0 = time.perf_counter()
            work()
            alone.append(time.perf_counter() - t0)
        for name, entry in impls.items():
            setup, fn = entry[0], entry[1 + kind]
            setup()
            fn()  # warm-up
            for _ in range(calls):
                t0 = time.perf_counter()
                fn()
                t1 = time.perf_counter()
                work()
                t2 = time.perf_counter()
                times[name][0].append(t1 - t0)
                times[name][1].append(t2 - t1)
    out = {}
    for name, (call, after) in times.items():
        out[name] = tuple(1e3 * float(np.percentile(v, p)) for v, p in ((call, 50), (call, 90), (after, 90)))
    out["(next work alone)"] = (None, None, 1e3 * float(np.percentile(alone, 90)))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="S,M")
    ap.add_argument("--calls", type=int, default=60)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--loads", default="idle,busy")
    args = ap.parse_args(argv)
    import numpy as np

    built = {tag: implementations(tag) for tag in args.configs.split(",")}
    for load in args.loads.split(","):
        busy = subprocess.Popen([sys.executable, "-c", BUSY]) if load == "busy" else None
        try:
            time.sleep(0.5 if busy else 0)
            before = loadavg()
            for tag, impls in built.items():
                I, H, B, T = CONFIGS[tag]  # noqa: E741
                for kind, label in ((0, "fwd"), (1, "fwd+bwd")):
                    res = measure(impls, kind, args.calls, args.passes, np)
                    print(f"\n{tag} (I={I}, H={H}, B={B}, T={T}) {label}, {load} (loadavg {before} -> {loadavg()})")
                    print(f"  {'':<32} {'p50 ms':>8} {'p90 ms':>8} {'next work p90 ms':>17}")
                    for name, (p50, p90, after) in res.items():
                        cells = f"{p50:8.2f} {p90:8.2f}" if p50 is not None else f"{'':>8} {'':>8}"
                        print(f"  {name:<32} {cells} {after:17.3f}", flush=True)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()


if __name__ == "__main__":
    main()
