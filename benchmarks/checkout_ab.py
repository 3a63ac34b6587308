"""One config's forward in two checkouts side by side: interleaved fresh processes, one thread each.

    python benchmarks/checkout_ab.py /work/main /path/to/other [--config S] [--rounds 3] [--calls 300]

Each round runs every checkout once, in a process of its own (that checkout on PYTHONPATH, its own
cache directory under the system's temp folder), which times `--calls` calls of the LSTM forward
(unroll="loop", float32, NUMBA_NUM_THREADS=1) after 20 warm-up calls and prints the median wall and
thread-CPU time per call with /proc/loadavg. On a shared machine the CPU time is the steadier
figure (a preempted call's wall time includes the other process's slice).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

CHILD = """
import os, statistics, sys, time
import rnncomp as rc
from benchmarks.cells import lstm_arrays, lstm_cell
from benchmarks.lstm_cpu import CONFIGS
I, H, B, T = CONFIGS[sys.argv[1]]
arrays = lstm_arrays(I, H, B, T)
prog = rc.compile(lstm_cell(I, H), length="T", unroll="loop", backend="numba-cpu", dtype="float32")
for _ in range(20):
    prog(**arrays)
wall, cpu = [], []
for _ in range(int(sys.argv[2])):
    c0, t0 = time.thread_time(), time.perf_counter()
    prog(**arrays)
    wall.append(time.perf_counter() - t0)
    cpu.append(time.thread_time() - c0)
print(f"wall {1e6 * statistics.median(wall):8.1f} us  cpu {1e6 * statistics.median(cpu):8.1f} us", end="")
"""


def load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkouts", nargs="+")
    ap.add_argument("--config", default="S")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args(argv)
    for r in range(args.rounds):
        for path in args.checkouts:
            root = os.path.abspath(path)
            cache = os.path.join(tempfile.gettempdir(), "rnncomp-ab-" + root.strip("/").replace("/", "_"))
            env = dict(os.environ, PYTHONPATH=root, RNNCOMP_CACHE_DIR=cache, NUMBA_NUM_THREADS="1")
            cmd = [sys.executable, "-c", CHILD, args.config, str(args.calls)]
            out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{root}: {out.stderr.strip()[-2000:]}")
            print(f"round {r + 1}  {root:28s} {args.config} fwd  {out.stdout.strip()}  load {load()}", flush=True)


if __name__ == "__main__":
    main()
