"""Cold and warm compiles of two (or more) checkouts side by side: before/after a compile-time change.

    python benchmarks/compile_ab.py --examples lstm,gru --repeat 3 TREE_A TREE_B

Each TREE is a checkout of rnncomp (e.g. `git worktree add --detach /tmp/before <commit>`). Runs
`benchmarks/compile_time.py`'s child (one training build and first `value_and_grad`, float32, T=5, B=3)
from each tree in a fresh process, cold (empty program cache; each tree's own Numba cache of rnncomp's
helpers, filled first) and then warm from that cache, the trees interleaved and their order alternated
per round. Prints medians of cold wall, cold CPU and warm wall seconds, and `/proc/loadavg`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def _child_code(root: str) -> str:
    with open(os.path.join(root, "benchmarks", "compile_time.py")) as f:
        return f.read().split('CHILD = """')[1].split('"""')[0]


def _run(root: str, name: str, cache: str, numba_cache: str) -> dict[str, float]:
    env = {**os.environ, "RNNCOMP_CACHE_DIR": cache, "NUMBA_CACHE_DIR": numba_cache, "PYTHONPATH": root}
    code = f"NAME = {name!r}; BACKEND = 'numba-cpu'; ROOT = {root!r}\n" + _child_code(root)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=root, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def _loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+")
    ap.add_argument("--examples", default="lstm")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    names, roots = args.examples.split(","), [os.path.abspath(t) for t in args.trees]
    print(f"loadavg before: {_loadavg()}", flush=True)
    res = {(r, n): {"cold": [], "cpu": [], "warm": []} for r in roots for n in names}
    numba_caches = {r: tempfile.mkdtemp(prefix="rnncomp-ab-numba-") for r in roots}
    for r in roots:  # rnncomp's helpers into each tree's Numba cache
        for n in names:
            with tempfile.TemporaryDirectory() as c:
                _run(r, n, c, numba_caches[r])
    for i in range(args.repeat):
        for n in names:
            for r in roots if i % 2 == 0 else roots[::-1]:
                with tempfile.TemporaryDirectory() as c:
                    cold, warm = _run(r, n, c, numba_caches[r]), _run(r, n, c, numba_caches[r])
                res[r, n]["cold"].append(cold["build"])
                res[r, n]["cpu"].append(cold["cpu"])
                res[r, n]["warm"].append(warm["build"])
        print(f"round {i + 1} done, loadavg {_loadavg()}", flush=True)
    print(f"medians of {args.repeat}: cold wall / cold cpu / warm wall, s")
    print(f"{'example':>16} | " + " | ".join(f"{os.path.basename(r):>20}" for r in roots))
    for n in names:
        cells = []
        for r in roots:
            c, p, w = (statistics.median(res[r, n][k]) for k in ("cold", "cpu", "warm"))
            cells.append(f"{c:5.2f} {p:5.2f} {w:6.3f}")
        print(f"{n:>16} | " + " | ".join(f"{x:>20}" for x in cells))
    print(f"loadavg after: {_loadavg()}")


if __name__ == "__main__":
    main()
