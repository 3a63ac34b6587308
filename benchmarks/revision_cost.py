"""The LSTM's run time at another revision beside this tree's, process against process (what changes
with generated code or its compile flags cannot run side by side in one process).

    python benchmarks/revision_cost.py --before REV [--configs S,M] [--rounds 4] [--repeat 41] [--threads 1]

Exports REV with `git archive` into a temporary folder, then alternates worker processes of REV and of
this tree, `--rounds` times each, each timing float32 `unroll="loop"` forward and forward+backward
(value_and_grad) medians over `--repeat` calls after warm-up; prints the median over rounds and the
ratio before/after (> 1: this tree is faster). Each tree compiles into a cache of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"S": (32, 32, 1, 1000), "M": (128, 256, 32, 100), "L": (512, 1024, 64, 50)}


def worker(configs: str, repeat: int) -> None:
    import numpy as np

    import rnncomp as rc
    from benchmarks.cells import lstm_cell

    res = {}
    for tag in configs.split(","):
        I, H, B, T = CONFIGS[tag]  # noqa: E741
        rng = np.random.default_rng(0)
        s = 1 / np.sqrt(H)
        a = {
            "x": rng.standard_normal((T, B, I), dtype=np.float32),
            "Wx": rng.uniform(-s, s, (I, 4 * H)).astype(np.float32),
            "Wh": rng.uniform(-s, s, (H, 4 * H)).astype(np.float32),
            "b": rng.uniform(-s, s, 4 * H).astype(np.float32),
        }
        p = rc.compile(lstm_cell(I, H), length="T", unroll="loop", dtype="float32")
        calls = {"fwd": lambda p=p, a=a: p(**a), "fwd+bwd": lambda p=p, a=a: p.value_and_grad("y", **a)}
        for kind, f in calls.items():
            f()
            f()
            ts = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t0)
            res[f"{tag} {kind}"] = 1e3 * statistics.median(ts)
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="a git revision to compare this tree against")
    ap.add_argument("--configs", default="S,M")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=41)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        before = os.path.join(tmp, "before")
        os.mkdir(before)
        archive = subprocess.run(["git", "-C", ROOT, "archive", args.before], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", before], input=archive.stdout, check=True)
        trees = {f"before ({args.before})": before, "after (this tree)": ROOT}
        runs: dict[str, list[dict]] = {k: [] for k in trees}
        n = str(args.threads)
        for _ in range(args.rounds):
            for label, root in trees.items():
                env = dict(
                    os.environ, PYTHONPATH=root, RNNCOMP_CACHE_DIR=os.path.join(tmp, "cache-" + label.split()[0])
                )
                for var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
                    env[var] = n
                code = f"from benchmarks.revision_cost import worker; worker({args.configs!r}, {args.repeat})"
                out = subprocess.run(
                    [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True
                )
                runs[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"threads {args.threads}, {args.rounds} rounds x {args.repeat} calls, load {' '.join(load)} (ms, median)")
    med = {label: {m: statistics.median(r[m] for r in rs) for m in rs[0]} for label, rs in runs.items()}
    (b, bm), (a, am) = med.items()
    for m in bm:
        print(f"{m:12s} {b}: {bm[m]:8.3f}   {a}: {am[m]:8.3f}   before/after {bm[m] / am[m]:.2f}")


if __name__ == "__main__":
    main()
