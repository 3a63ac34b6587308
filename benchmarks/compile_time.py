"""Compile times: the pass pipeline versus T, or (--programs) whole cold and warm compiles per example.

    python benchmarks/compile_time.py [--T 25,100,400,1600] [--repeat 3]
    python benchmarks/compile_time.py --programs [--repeat 3] [--backend numba-cpu]

The default measures IR construction only (unroll + simplify + hoist + simplify; "fwd+bwd" also the
training forward and the backward program), not code generation: the median of the repeats and the
IR size (nodes, loop bodies included).

`--programs` times, each in a fresh process, the build and first `value_and_grad` of every example's
training program (float32, default unroll, T=5, B=3) and of the LSTM at I=128, H=256: "cold" with an
empty program cache (Numba's cache of rnncomp's own helpers already filled, as after the first use on
a machine; a first run fills it), "warm" from the cache that cold run left. Imports (numpy, rnncomp,
Numba's registries) are reported apart; "cold cpu" is the cold build's process CPU time, with that of
the children it forked (a backward compiled ahead), less noisy on a loaded machine. Medians of the
repeats, run interleaved across examples, and `/proc/loadavg`
before the first and after the last.
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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.cells import lstm_cell  # noqa: E402
from passes.pipeline import PassManager  # noqa: E402
from passes.retype import retype_cell  # noqa: E402

PIPELINE = "simplify,hoist,simplify"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = ["elman", "lstm", "gru", "three_node", "narx", "stacked_lstm", "layernorm_lstm", "lstm_128x256"]

# One compile in a fresh process: prints {"imports": s, "build": s} (build: rc.compile, passes, code
# generation, Numba's compile or cache load, and the first value_and_grad call).
CHILD = """
import json, os, sys, time
t0 = time.perf_counter()
import numpy as np
import rnncomp as rc
from rnncomp.backends.registry import preload
preload(BACKEND)
sys.path.insert(0, ROOT + "/examples")
from _demo import random_arguments
if NAME == "lstm_128x256":
    from benchmarks.cells import lstm_cell
    cell = lstm_cell(128, 256)
elif NAME == "layernorm_lstm":
    from layernorm_lstm import make_layernorm_lstm
    cell = make_layernorm_lstm(16, 32)
else:
    cell = getattr(__import__(NAME), NAME)
args = {k: v.astype(np.float32) for k, v in random_arguments(cell, T=5, B=3).items()}
loss = next(k for k in cell.outputs if k not in cell.states)
def cpu():  # this process's CPU time and its children's (a module compiled ahead: numba_cpu/ahead.py)
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
t1, c1 = time.perf_counter(), cpu()
p = rc.compile(cell, backend=BACKEND)
p.value_and_grad(loss, **args)
t2, c2 = time.perf_counter(), cpu()
print(json.dumps({"imports": t1 - t0, "build": t2 - t1, "cpu": c2 - c1}))
"""


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def child(name: str, backend: str, cache: str, numba_cache: str) -> dict[str, float]:
    """One fresh process compiling `name`'s training program with RNNCOMP_CACHE_DIR=`cache`."""
    env = {**os.environ, "RNNCOMP_CACHE_DIR": cache, "NUMBA_CACHE_DIR": numba_cache, "PYTHONPATH": ROOT}
    code = f"NAME = {name!r}; BACKEND = {backend!r}; ROOT = {ROOT!r}\n" + CHILD
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def programs(names: list[str], backend: str, repeat: int) -> None:
    """Cold and warm compiles of each example's training program (see the module's docstring)."""
    print(f"loadavg before: {loadavg()}")
    cold: dict[str, list[float]] = {n: [] for n in names}
    cold_cpu: dict[str, list[float]] = {n: [] for n in names}
    warm: dict[str, list[float]] = {n: [] for n in names}
    imports: list[float] = []
    with tempfile.TemporaryDirectory() as numba_cache:
        with tempfile.TemporaryDirectory() as first:
            child(names[0], backend, first, numba_cache)  # rnncomp's helpers into Numba's cache, once
        for _ in range(repeat):
            for n in names:
                with tempfile.TemporaryDirectory() as cache:
                    c = child(n, backend, cache, numba_cache)
                    w = child(n, backend, cache, numba_cache)
                cold[n].append(c["build"])
                cold_cpu[n].append(c["cpu"])
                warm[n].append(w["build"])
                imports += [c["imports"], w["imports"]]
    print(f"{backend}: training program build + first value_and_grad, s (median of {repeat})")
    print(f"{'example':>16} | {'cold':>6} | {'cold cpu':>8} | {'warm':>6}")
    for n in names:
        c, cc, w = (statistics.median(x[n]) for x in (cold, cold_cpu, warm))
        print(f"{n:>16} | {c:6.2f} | {cc:8.2f} | {w:6.3f}")
    total = sum(statistics.median(cold[n]) for n in names)
    print(f"{'all, cold':>16} | {total:6.2f} |")
    print(f"imports per process (median): {statistics.median(imports):.2f} s; loadavg after: {loadavg()}")


def build(cell, T: int, mode, kind: str):
    """One pipeline run (the grad plan derived in it, as a fresh compile does); returns the final program."""
    first = {"infer": "unroll", "train": "grad_forward", "grad": "grad"}[kind]
    spec = f"{first}{{length={T},mode={mode}}},{PIPELINE}"
    prog, _ = PassManager(spec, verify_each=False, print_after=None).run(cell)
    return prog


def measure(cell, T: int, mode, kinds, repeat: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        size = sum(build(cell, T, mode, k).size() for k in kinds)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), size


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", default="25,50,100,200,400,800,1600")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--programs", action="store_true", help="cold and warm compiles per example (fresh processes)")
    ap.add_argument("--examples", default=",".join(EXAMPLES))
    ap.add_argument("--backend", default="numba-cpu")
    args = ap.parse_args(argv)
    if args.programs:
        programs(args.examples.split(","), args.backend, args.repeat)
        return
    cell = retype_cell(lstm_cell(128, 256), "f32")
    Ts = [int(t) for t in args.T.split(",")]
    print(f"LSTM I=128 H=256; pass pipeline time (median of {args.repeat}), seconds [IR nodes]")
    heads = [
        ("full fwd", 16),
        ("full fwd+bwd", 18),
        ("k=8 fwd", 14),
        ("k=8 fwd+bwd", 16),
        ("loop fwd", 14),
        ("loop fwd+bwd", 16),
    ]
    print(f"{'T':>6} | " + " | ".join(h.rjust(w) for h, w in heads))
    for T in Ts:
        row = [f"{T:>6}"]
        for mode in ("full", 8, "loop"):
            for kinds, w in ((["infer"], 14), (["train", "grad"], 16)):
                t, n = measure(cell, T, mode, kinds, args.repeat)
                row.append(f"{t:8.3f} [{n:>6}]".rjust(w + (2 if mode == "full" else 0)))
        print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
