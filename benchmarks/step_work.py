"""When a recurrent step's GEMM pays for a fork-join per step: stepgemm.gemm_step on 1 slice vs 2.

    python benchmarks/step_work.py [--calls 300] [--loads idle,busy]

The step product of an LSTM, m x H @ H x 4H (float32, the weight as the loop sees it: not packed
at m <= 3), for m in {1, 2, 4} and H in {128, 256, 384, 512, 1024}, called back to back as a loop's
steps are (the worker goes to sleep between them: OMP_WAIT_POLICY=passive, numba_cpu/openmp.py),
1 slice and 2 interleaved. "busy" runs another process that keeps one core busy. Printed: p50 and
p90 per call (us) and 1 slice's p50 over 2 slices' (above 1: splitting pays). The smallest work per
slice from which 2 slices win is what launch.STEP_WORK should be at least.
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

SHAPES = [(m, h) for h in (128, 256, 384, 512, 1024) for m in (1, 2, 4)]


def measure(m: int, H: int, calls: int) -> dict[int, tuple[float, float]]:
    """(p50, p90) in us per slice count, calls of both interleaved."""
    import numpy as np

    import rnncomp.backends.numba_cpu  # noqa: F401  (OMP_WAIT_POLICY before libgomp loads)
    from rnncomp.backends.numba_cpu import blas, gemm, stepgemm

    r = np.random.default_rng(H + m)
    a = r.standard_normal((m, H), dtype=np.float32)
    w = r.standard_normal((H, 4 * H), dtype=np.float32)
    out = np.empty((m, 4 * H), np.float32)
    packed = gemm.pack_b(w, False, m, blas.MODE)
    times: dict[int, list[float]] = {1: [], 2: []}
    for parts in (1, 2):
        stepgemm.gemm_step(a, packed, w, out, False, parts, blas.MODE)  # compile / warm up
    for _ in range(calls):
        for parts in (1, 2):
            t0 = time.perf_counter()
            stepgemm.gemm_step(a, packed, w, out, False, parts, blas.MODE)
            times[parts].append(time.perf_counter() - t0)
    assert np.allclose(out, a @ w, rtol=1e-3, atol=1e-3)
    return {p: (1e6 * float(np.percentile(v, 50)), 1e6 * float(np.percentile(v, 90))) for p, v in times.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--loads", default="idle,busy")
    args = ap.parse_args(argv)
    for load in args.loads.split(","):
        busy = subprocess.Popen([sys.executable, "-c", BUSY]) if load == "busy" else None
        try:
            time.sleep(0.5 if busy else 0)
            print(f"\n{load} (loadavg {loadavg()}), {args.calls} calls of each, back to back")
            head = f"  {'m x H @ H x 4H':<22} {'MACs/slice':>10} {'1 slice p50/p90 us':>20} {'2 slices p50/p90':>18}"
            print(head + f" {'1/2':>6}")
            for m, H in SHAPES:
                (a50, a90), (b50, b90) = measure(m, H, args.calls).values()
                shape, work = f"{m} x {H} @ {H} x {4 * H}", m * H * 2 * H / 1e6
                print(f"  {shape:<22} {work:9.2f}M {a50:9.1f} / {a90:8.1f} {b50:8.1f} / {b90:7.1f} {a50 / b50:6.2f}")
            print(f"  (loadavg after: {loadavg()})", flush=True)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()


if __name__ == "__main__":
    main()
