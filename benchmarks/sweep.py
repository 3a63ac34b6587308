"""A shape sweep: rnncomp numba-cpu against PyTorch nn.LSTM / nn.GRU over H, B, T, threads.

    python benchmarks/sweep.py [--quick] [--cells lstm,gru] [--threads 1,2] [--max-call 0.6]
                               [--budget 1.5] [--out benchmarks/sweep.md] [--figures benchmarks/figures]
                               [--H 256,512] [--B 1,4] [--T 50,200]

float32, one layer, I = H. Grid: H in {32, 64, 128, 256, 512, 1024}, B in {1, 4, 16, 64}, T in {50, 200,
1000} (`--quick`: H in {32, 256, 1024}, B in {1, 16}, T in {50, 200}; `--H`, `--B`, `--T`: those values
instead); a combination whose forward+backward
would take more than `--max-call` s a call on one thread (estimated from its GEMM FLOPs and per-step
cost) is dropped and listed. For each kept shape, at each thread count (numba.set_num_threads and
torch.set_num_threads in this one process), forward (PyTorch under no_grad) and forward+backward (loss =
sum of the outputs; PyTorch's backward(), rnncomp's value_and_grad): rnncomp's default (`unroll="loop"`),
rnncomp `unroll=4`, and PyTorch, each a median of calls taken in 3 interleaved passes (each pass: a
warm-up call, then its calls back to back), about `--budget` s per implementation and pass kind at the
most. "best" is the faster of rnncomp's two modes. Numerics are checked against PyTorch once per cell and H.

Writes the full table (markdown) to `--out`, a heat map per cell of PyTorch's time over rnncomp's
default (> 1: rnncomp faster) to `--figures`/sweep_<cell>.png, and prints a summary: per cell, pass and
thread count, the median and smallest ratio and the shapes below 1.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.threads import loadavg  # noqa: E402

GRID = {"H": (32, 64, 128, 256, 512, 1024), "B": (1, 4, 16, 64), "T": (50, 200, 1000)}
QUICK = {"H": (32, 256, 1024), "B": (1, 16), "T": (50, 200)}
GATES = {"lstm": 4, "gru": 3}
RATE = 50e9  # float32 FLOP/s one thread is assumed to reach, for the estimate that drops shapes
STEP_COST = 4e-6  # s per step of forward+backward beside the GEMMs (loops, gates, calls), for the same


def estimate_s(cell: str, H: int, B: int, T: int) -> float:
    """A forward+backward's time on one thread, roughly: GEMM FLOPs at RATE plus a per-step cost."""
    flops = 3 * 2.0 * T * B * 2 * H * GATES[cell] * H  # forward x@Wx + h@Wh; backward twice that
    return flops / RATE + T * STEP_COST * (1 + B * H / 4096)


def weights(cell: str, H: int, np) -> dict:
    rng = np.random.default_rng(H)
    s = 1.0 / np.sqrt(H)
    g = GATES[cell]
    u = lambda *shape: rng.uniform(-s, s, shape).astype(np.float32)  # noqa: E731
    if cell == "lstm":
        return {"Wx": u(H, g * H), "Wh": u(H, g * H), "b": u(g * H)}
    return {"W_ih": u(H, g * H), "W_hh": u(H, g * H), "b_ih": u(g * H), "b_hh": u(g * H)}


def torch_module(cell: str, H: int, w: dict):
    import torch

    m = torch.nn.LSTM(H, H) if cell == "lstm" else torch.nn.GRU(H, H)
    with torch.no_grad():
        if cell == "lstm":
            m.weight_ih_l0.copy_(torch.from_numpy(w["Wx"].T.copy()))
            m.weight_hh_l0.copy_(torch.from_numpy(w["Wh"].T.copy()))
            m.bias_ih_l0.copy_(torch.from_numpy(w["b"]))
            m.bias_hh_l0.zero_()
        else:
            m.weight_ih_l0.copy_(torch.from_numpy(w["W_ih"].T.copy()))
            m.weight_hh_l0.copy_(torch.from_numpy(w["W_hh"].T.copy()))
            m.bias_ih_l0.copy_(torch.from_numpy(w["b_ih"]))
            m.bias_hh_l0.copy_(torch.from_numpy(w["b_hh"]))
    return m


def torch_calls(m, x):
    import torch

    xt = torch.from_numpy(x)

    def forward():
        with torch.no_grad():
            return m(xt)[0]

    def forward_backward():
        m.zero_grad()
        xg = xt.clone().requires_grad_(True)
        y = m(xg)[0]
        y.sum().backward()
        return xg.grad

    return forward, forward_backward


def check(progs: dict, m, w: dict, np) -> None:
    """rnncomp's outputs and input gradient against PyTorch's at a small shape (T=5, B=3)."""
    import torch

    H = next(iter(w.values())).shape[0]
    x = np.random.default_rng(1).standard_normal((5, 3, H), dtype=np.float32)
    xg = torch.from_numpy(x).requires_grad_(True)
    y = m(xg)[0]
    y.sum().backward()
    for name, prog in progs.items():
        out = prog(x=x, **w)
        _, grads = prog.value_and_grad("y", x=x, **w)
        for what, got, want in (("y", out["y"], y.detach().numpy()), ("dx", grads["x"], xg.grad.numpy())):
            err = float(abs(got - want).max() / max(1e-6, abs(want).max()))
            if err > 2e-3:
                raise SystemExit(f"numerics: {name} {what} differs from PyTorch's by {err:.2e} (relative to max)")


def timed(fns: dict, budget: float, passes: int = 3) -> dict[str, float]:
    """Median ms of each function: `passes` interleaved passes, each a warm-up call then its calls back
    to back (as many as fit in budget/passes s, at least 1, at most 5 a pass)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    per: dict[str, int] = {}
    for _ in range(passes):
        for name, f in fns.items():
            t0 = time.perf_counter()
            f()
            first = time.perf_counter() - t0
            n = per.setdefault(name, max(1, min(5, int(budget / passes / max(first, 1e-6)))))
            for _ in range(n):
                t0 = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def run(args) -> tuple[list[dict], list[tuple]]:
    import numba
    import numpy as np
    import torch

    import rnncomp as rc
    from benchmarks.cells import gru_cell, lstm_cell

    grid = dict(QUICK if args.quick else GRID)
    for k in grid:
        if getattr(args, k):
            grid[k] = tuple(int(v) for v in getattr(args, k).split(","))
    thread_counts = [int(t) for t in args.threads.split(",")]
    rows: list[dict] = []
    dropped: list[tuple] = []
    for cell in args.cells.split(","):
        for H in grid["H"]:
            w = weights(cell, H, np)
            rc_cell = lstm_cell(H, H) if cell == "lstm" else gru_cell(H, H)
            progs = {mode: rc.compile(rc_cell, length="T", unroll=mode, dtype="float32") for mode in ("loop", 4)}
            m = torch_module(cell, H, w)
            check(progs, m, w, np)
            for B, T in itertools.product(grid["B"], grid["T"]):
                est = estimate_s(cell, H, B, T)
                if est > args.max_call:
                    dropped.append((cell, H, B, T, est))
                    continue
                x = np.random.default_rng(T * B).standard_normal((T, B, H), dtype=np.float32)
                tf, tfb = torch_calls(m, x)
                fwd = {f"rc {k}": (lambda p=p, x=x, w=w: p(x=x, **w)) for k, p in progs.items()}
                fwb = {f"rc {k}": (lambda p=p, x=x, w=w: p.value_and_grad("y", x=x, **w)) for k, p in progs.items()}
                fwd["torch"], fwb["torch"] = tf, tfb
                for n in thread_counts:
                    numba.set_num_threads(n)
                    torch.set_num_threads(n)
                    for kind, fns in (("fwd", fwd), ("fwd+bwd", fwb)):
                        ms = timed(fns, args.budget)
                        best = min(("loop", ms["rc loop"]), ("4", ms["rc 4"]), key=lambda kv: kv[1])
                        row = dict(cell=cell, H=H, B=B, T=T, threads=n, kind=kind, torch=ms["torch"])
                        row.update(default=ms["rc loop"], best=best[1], best_mode=best[0])
                        rows.append(row)
                        print(
                            f"{cell} H={H:<4} B={B:<2} T={T:<4} {n}t {kind:<7} torch {ms['torch']:9.2f}  rc loop "
                            f"{ms['rc loop']:9.2f}  rc 4 {ms['rc 4']:9.2f} ms  "
                            f"torch/default {ms['torch'] / ms['rc loop']:5.2f}"
                            f"  [{loadavg()}]",
                            flush=True,
                        )
    return rows, dropped


def table(rows: list[dict]) -> str:
    lines = [
        "| cell | H | B | T | threads | pass | PyTorch ms | rnncomp default ms | rnncomp best ms (mode) | "
        "PyTorch / default | PyTorch / best |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['cell']} | {r['H']} | {r['B']} | {r['T']} | {r['threads']} | {r['kind']} | {r['torch']:.3g} | "
            f"{r['default']:.3g} | {r['best']:.3g} ({r['best_mode']}) | {r['torch'] / r['default']:.2f} | "
            f"{r['torch'] / r['best']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def summary(rows: list[dict]) -> str:
    lines = [
        "| cell | pass | threads | shapes | median PyTorch / default | min (shape) | below 1 | median PyTorch / best |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["cell"], r["kind"], r["threads"]) for r in rows})
    for cell, kind, n in keys:
        sel = [r for r in rows if (r["cell"], r["kind"], r["threads"]) == (cell, kind, n)]
        ratios = [r["torch"] / r["default"] for r in sel]
        worst = min(sel, key=lambda r: r["torch"] / r["default"])
        below = sum(q < 1 for q in ratios)
        best = statistics.median(r["torch"] / r["best"] for r in sel)
        lines.append(
            f"| {cell} | {kind} | {n} | {len(sel)} | {statistics.median(ratios):.2f} | {min(ratios):.2f} "
            f"(H={worst['H']} B={worst['B']} T={worst['T']}) | {below} | {best:.2f} |"
        )
    return "\n".join(lines) + "\n"


def heatmaps(rows: list[dict], folder: str) -> list[str]:
    """Per cell: a grid of panels (pass x threads), each H (rows) by (B, T) (columns), coloured by
    PyTorch / rnncomp default on a log scale centred on 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm

    paths = []
    for cell in sorted({r["cell"] for r in rows}):
        sel = [r for r in rows if r["cell"] == cell]
        Hs = sorted({r["H"] for r in sel})
        cols = sorted({(r["B"], r["T"]) for r in sel})
        kinds = [k for k in ("fwd", "fwd+bwd") if any(r["kind"] == k for r in sel)]
        threads = sorted({r["threads"] for r in sel})
        fig, axes = plt.subplots(
            len(kinds),
            len(threads),
            figsize=(1.0 + 0.55 * len(cols) * len(threads), 1.2 + 2.6 * len(kinds)),
            squeeze=False,
        )
        norm = LogNorm(vmin=1 / 4, vmax=4)
        for i, kind in enumerate(kinds):
            for j, n in enumerate(threads):
                grid = np.full((len(Hs), len(cols)), np.nan)
                for r in sel:
                    if r["kind"] == kind and r["threads"] == n:
                        grid[Hs.index(r["H"]), cols.index((r["B"], r["T"]))] = r["torch"] / r["default"]
                ax = axes[i][j]
                im = ax.imshow(grid, cmap="RdBu", norm=norm, aspect="auto")
                for (a, b), v in np.ndenumerate(grid):
                    if not np.isnan(v):
                        ax.text(b, a, f"{v:.1f}", ha="center", va="center", fontsize=6)
                ax.set_yticks(range(len(Hs)), [str(h) for h in Hs])
                ax.set_xticks(range(len(cols)), [f"{b}/{t}" for b, t in cols], rotation=90, fontsize=6)
                ax.set_title(f"{cell} {kind}, {n} thread{'s' if n > 1 else ''}", fontsize=9)
                ax.set_ylabel("H")
                ax.set_xlabel("B / T")
        fig.colorbar(im, ax=axes, shrink=0.8, label="PyTorch time / rnncomp default time (>1: rnncomp faster)")
        path = os.path.join(folder, f"sweep_{cell}.png")
        os.makedirs(folder, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cells", default="lstm,gru")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--max-call", type=float, default=0.6, help="drop shapes whose fwd+bwd is estimated above this (s)")
    ap.add_argument(
        "--budget", type=float, default=1.5, help="s of calls per implementation, pass kind and thread count"
    )
    for k in GRID:
        ap.add_argument(f"--{k}", default="", help=f"comma-separated values of {k} (default: the grid's)")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "sweep.md"))
    ap.add_argument("--figures", default=os.path.join(ROOT, "benchmarks", "figures"))
    args = ap.parse_args(argv)
    import torch  # noqa: F401  (before rnncomp: its own MKL first, benchmarks/peers.py)

    start, load0 = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), loadavg()
    t0 = time.perf_counter()
    rows, dropped = run(args)
    took = time.perf_counter() - t0
    head = (
        f"`python benchmarks/sweep.py {' '.join(argv if argv is not None else sys.argv[1:])}`: {start}, "
        f"{took / 60:.1f} min, loadavg {load0} before and {loadavg()} after.\n\n"
    )
    drop = "Dropped (forward+backward estimated above --max-call): " + (
        ", ".join(f"{c} H={h} B={b} T={t} ({e:.1f} s)" for c, h, b, t, e in dropped) or "none"
    )
    text = head + summary(rows) + "\n" + table(rows) + "\n" + drop + "\n"
    with open(args.out, "w") as f:
        f.write("# Shape sweep: rnncomp numba-cpu vs PyTorch (benchmarks/sweep.py)\n\n" + text)
    print("\n" + head + summary(rows))
    print(drop)
    for p in heatmaps(rows, args.figures):
        print("wrote", p)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
