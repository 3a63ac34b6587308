"""How much work a thread must get before sharing it pays: a GEMM split across 2 threads vs 1.

    python benchmarks/parallel_work.py [--calls 200] [--loads idle,busy] [--gap-ms 2]

numba-cpu's split GEMM (gemm.py `_blas`, one single-threaded BLAS call per part) at m x 128 @ 128 x 512
for m from 4 to 512 (0.26M to 33.6M multiply-adds), on 1 part and on 2, float32. Each call follows
`--gap-ms` of sleep, as a call of a program does after the caller's own work: Numba's threads have
gone to sleep (OMP_WAIT_POLICY=passive, set by rnncomp: numba_cpu/openmp.py) and must be woken.
"busy" runs another process that keeps one core busy. Printed: p50 and p90 per call (us) and the
ratio of 1 part's p90 to 2 parts' (above 1: splitting pays at the 90th percentile). The smallest
work from which 2 parts win at p90 under both loads, per part, is what gemm.SPLIT_WORK and
launch.ROW_WORK should be at least (a row-parallel loop pays the same one fork-join).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.threads import BUSY, loadavg  # noqa: E402

K, N = 128, 512
ROWS = (4, 8, 16, 32, 64, 128, 256, 512)


def measure(rows: int, calls: int, gap: float) -> dict[int, tuple[float, float]]:
    """(p50, p90) in us per part count, calls of both interleaved."""
    import numpy as np

    import rnncomp.backends.numba_cpu  # noqa: F401  (OMP_WAIT_POLICY before libgomp loads)
    from rnncomp.backends.numba_cpu import blas
    from rnncomp.backends.numba_cpu import gemm as G

    r = np.random.default_rng(rows)
    a = r.standard_normal((rows, K), dtype=np.float32)
    b = r.standard_normal((K, N), dtype=np.float32)
    out = np.empty((rows, N), np.float32)
    nt = blas.NO_TRANS
    args = (nt, nt, rows, N, K, a.ctypes.data, K, b.ctypes.data, N, out.ctypes.data, N, 4)
    times: dict[int, list[float]] = {1: [], 2: []}
    for parts in (1, 2):
        G._blas(*args, parts, blas.MODE)  # compile / warm up
    for _ in range(calls):
        for parts in (1, 2):
            time.sleep(gap)
            t0 = time.perf_counter()
            G._blas(*args, parts, blas.MODE)
            times[parts].append(time.perf_counter() - t0)
    assert np.allclose(out, a @ b, rtol=1e-3, atol=1e-3)
    return {p: (1e6 * float(np.percentile(v, 50)), 1e6 * float(np.percentile(v, 90))) for p, v in times.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--loads", default="idle,busy")
    ap.add_argument("--gap-ms", type=float, default=2.0)
    args = ap.parse_args(argv)
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset: rnncomp sets PASSIVE)')}")
    for load in args.loads.split(","):
        busy = subprocess.Popen([sys.executable, "-c", BUSY]) if load == "busy" else None
        try:
            time.sleep(0.5 if busy else 0)
            before = loadavg()
            print(f"\n{load} (loadavg {before}), {args.calls} calls each after {args.gap_ms} ms of sleep")
            print(
                f"  {'m x 128 @ 128 x 512':<22} {'MACs':>8} {'1 part p50/p90 us':>20} "
                f"{'2 parts p50/p90 us':>20} {'p90 1/2':>8}"
            )
            for m in ROWS:
                res = measure(m, args.calls, args.gap_ms / 1e3)
                (a50, a90), (b50, b90) = res[1], res[2]
                work = f"{m * K * N / 1e6:.2f}M"
                print(
                    f"  {m:<22} {work:>8} {a50:9.1f} / {a90:8.1f} {b50:9.1f} / {b90:8.1f} {a90 / b90:8.2f}", flush=True
                )
            print(f"  (loadavg after: {loadavg()})")
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()


if __name__ == "__main__":
    main()
