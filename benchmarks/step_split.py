"""Before/after for column-split steps (numba_cpu/stepgemm.py) against PyTorch, in one run.

    python benchmarks/step_split.py [--cells lstm,gru] [--threads 2] [--shapes H,B,T;...] [--budget 0.6]

For each shape (default: shortfall class 1 of the shape sweep, H in {256, 512, 1024} x B in {1, 4} x
T in {50, 200}, and outside it H in {32, 128} x B in {1, 16, 64} at T = 200), cell and thread count,
forward and forward+backward: rnncomp's default (`unroll="loop"`) with column splits disabled
("before": RNNCOMP_STEP_WORK set beyond any step's work, so every loop plans as it did without
them) and enabled ("after": launch.STEP_WORK), and PyTorch nn.LSTM / nn.GRU, each a median of calls in
3 interleaved passes (benchmarks/sweep.py `timed`). Prints PyTorch / rnncomp for both, the plan the
"after" program chose (column slices, row blocks) and the load average.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.sweep import timed, torch_calls, torch_module, weights  # noqa: E402
from benchmarks.threads import loadavg  # noqa: E402

CLASS_1 = [(h, b, t) for h in (256, 512, 1024) for b in (1, 4) for t in (50, 200)]
OUTSIDE = [(h, b, 200) for h in (32, 128) for b in (1, 16, 64)]
NEVER = str(1 << 62)  # RNNCOMP_STEP_WORK that no step reaches: no column splits


def programs(cell: str, H: int, w: dict, after: str | None = None) -> dict:
    """rnncomp's default program, generated without column splits and with them."""
    import numpy as np

    import rnncomp as rc
    from benchmarks.cells import gru_cell, lstm_cell
    from rnncomp.backends.numba_cpu import launch

    out = {}
    for name, work in (("before", NEVER), ("after", after)):
        if work is None:
            os.environ.pop(launch.STEP_WORK_ENV, None)
        else:
            os.environ[launch.STEP_WORK_ENV] = work
        try:
            prog = rc.compile(lstm_cell(H, H) if cell == "lstm" else gru_cell(H, H), length="T", dtype="float32")
            x = np.zeros((2, 1, H), np.float32)
            prog(x=x, **w), prog.value_and_grad("y", x=x, **w)  # each program generated now, under this setting
        finally:
            os.environ.pop(launch.STEP_WORK_ENV, None)
        out[name] = prog
    return out


def chosen(prog, B: int, threads: int) -> str:
    """The forward loop's plan at batch B: column slices x row blocks (its generated expressions)."""
    from rnncomp.backends.numba_cpu import launch

    src = prog.source()
    m = re.search(r"(st\d+) = (step_parts\(.*\))\n\s*np\d+ = (blocks_for\(.*\))", src)
    if m is None:
        return "-"
    work = int(re.search(r"STEP_WORK = (\d+)", src).group(1))  # type: ignore[union-attr]
    env = {"n_threads": threads, "d_B": B, "n0": 1, "STEP_WORK": work, "ROW_WORK": launch.row_work()}
    env.update(step_parts=launch.step_parts, blocks_for=launch.blocks_for)
    env[m.group(1)] = eval(m.group(2), env)  # noqa: S307 - the generator's own expression
    return f"{env[m.group(1)]}x{eval(m.group(3), env)}"  # noqa: S307


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="lstm,gru")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--shapes", default="", help="H,B,T;H,B,T;... (default: class 1 and the shapes outside it)")
    ap.add_argument("--step-work", default=None, help="RNNCOMP_STEP_WORK for 'after' (default: launch.STEP_WORK)")
    ap.add_argument("--budget", type=float, default=0.6, help="s of calls per implementation and pass kind")
    args = ap.parse_args(argv)
    import torch  # noqa: I001  (before rnncomp: its own MKL first, benchmarks/peers.py)
    import numba
    import numpy as np

    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes.split(";") if s] or CLASS_1 + OUTSIDE
    print(f"loadavg {loadavg()} at the start")
    ratios: dict[str, list[float]] = {"before": [], "after": []}
    for cell in args.cells.split(","):
        for H in sorted({s[0] for s in shapes}):
            w = weights(cell, H, np)
            progs = programs(cell, H, w, args.step_work)
            m = torch_module(cell, H, w)
            for _, B, T in [s for s in shapes if s[0] == H]:
                x = np.random.default_rng(T * B).standard_normal((T, B, H), dtype=np.float32)
                tf, tfb = torch_calls(m, x)
                fwd = {k: (lambda p=p, x=x, w=w: p(x=x, **w)) for k, p in progs.items()}
                fwb = {k: (lambda p=p, x=x, w=w: p.value_and_grad("y", x=x, **w)) for k, p in progs.items()}
                fwd["torch"], fwb["torch"] = tf, tfb
                y0 = progs["before"](x=x, **w)["y"]
                for n in [int(t) for t in args.threads.split(",")]:
                    numba.set_num_threads(n)
                    torch.set_num_threads(n)
                    np.testing.assert_allclose(progs["after"](x=x, **w)["y"], y0, rtol=1e-4, atol=1e-5)
                    for kind, fns in (("fwd", fwd), ("fwd+bwd", fwb)):
                        ms = timed(fns, args.budget)
                        for k in ratios:
                            ratios[k].append(ms["torch"] / ms[k])
                        print(
                            f"{cell} H={H:<4} B={B:<2} T={T:<4} {n}t {kind:<7} plan {chosen(progs['after'], B, n):<4} "
                            f"torch {ms['torch']:8.2f}  before {ms['before']:8.2f}  after {ms['after']:8.2f} ms  "
                            f"torch/before {ms['torch'] / ms['before']:5.2f}  "
                            f"torch/after {ms['torch'] / ms['after']:5.2f}  [{loadavg()}]",
                            flush=True,
                        )
    for k, v in ratios.items():
        print(f"median PyTorch / rnncomp {k}: {statistics.median(v):.2f} over {len(v)} figures")
    print(f"loadavg {loadavg()} at the end")


if __name__ == "__main__":
    main()
