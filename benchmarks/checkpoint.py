"""Training time against peak memory: plain BPTT, checkpoint=k, "sqrt" and byte budgets, beside PyTorch.

    python benchmarks/checkpoint.py [--T 1000,10000] [--repeat 5,3] [--threads 2]
        [--ks 10,50,200] [--budgets 1,2,5,10,25,50] [--plot benchmarks/figures/checkpoint.png]

LSTM config M of lstm_cpu.py (I=128, H=256, B=32), float32, forward+backward (loss = sum of the
outputs y; gradients of x, Wx, Wh, b). rnncomp numba-cpu: plain BPTT, `checkpoint=k` for each of
--ks, `"sqrt"`, and `checkpoint="<n>B"` budgets of each --budgets percent of plain BPTT's peak bytes.
PyTorch: an `nn.LSTMCell` loop, plain and with `torch.utils.checkpoint` (use_reentrant=True) over
segments of k steps for each of --ks and of ceil(sqrt T) steps.

Peak memory is measured on a real call: rnncomp's `backward.peak` (the bytes of the checkpoints and
residuals held at once, counted by array); PyTorch's, the bytes of the tensors autograd saves that
are alive at once (counted by storage through `saved_tensors_hooks`, also during the backward's
recomputation). Before timing, every gradient is checked against rnncomp plain BPTT's. Times are
medians over `--repeat` interleaved rounds (one call of every variant per round, the order rotating).
--repeat and --ks and --budgets take one value per T, or one for all (a list per T: `--ks 10,50;100`).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from benchmarks.lstm_cpu import CONFIGS, _threads  # noqa: E402

MiB = 2**20


def per_T(text: str, n: int, what: str) -> list[str]:
    """'a;b' -> one entry per T (the last repeated)."""
    parts = text.split(";")
    if len(parts) > n:
        raise SystemExit(f"{what}: {len(parts)} lists for {n} lengths")
    return parts + [parts[-1]] * (n - len(parts))


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


class SavedBytes:
    """Bytes of autograd's saved tensors alive at once (each storage once), and the most seen."""

    def __init__(self):
        self.live: dict[int, list] = {}  # storage pointer -> [bytes, holders]
        self.now = self.peak = 0

    def pack(self, t):
        return _Held(self, t)

    @staticmethod
    def unpack(held):
        return held.t


class _Held:
    __slots__ = ("meter", "t", "key")

    def __init__(self, meter: SavedBytes, t):
        self.meter, self.t = meter, t
        st = t.untyped_storage()
        self.key = st.data_ptr()
        got = meter.live.get(self.key)
        if got is None:
            meter.live[self.key] = [st.nbytes(), 1]
            meter.now += st.nbytes()
            meter.peak = max(meter.peak, meter.now)
        else:
            got[1] += 1

    def __del__(self):
        got = self.meter.live[self.key]
        got[1] -= 1
        if got[1] == 0:
            del self.meter.live[self.key]
            self.meter.now -= got[0]


def torch_variants(x, Wx, Wh, b, segments: dict[str, int | None], threads: int, ref: dict) -> dict:
    """name -> (train(), peak bytes of one counted call): an nn.LSTMCell loop, plain or checkpointed; each
    one's gradients checked against `ref` (rnncomp plain BPTT's) and dropped."""
    import torch
    from torch.utils.checkpoint import checkpoint

    torch.set_num_threads(threads)
    T, B, I = x.shape  # noqa: E741
    H = Wh.shape[0]
    cell = torch.nn.LSTMCell(I, H)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(Wx.T.copy()))
        cell.weight_hh.copy_(torch.from_numpy(Wh.T.copy()))
        cell.bias_ih.copy_(torch.from_numpy(b))
        cell.bias_hh.zero_()
    xt = torch.from_numpy(x)

    def run(xs, h, c):
        ys = []
        for t in range(xs.shape[0]):
            h, c = cell(xs[t], (h, c))
            ys.append(h)
        return torch.stack(ys), h, c

    def make(k: int | None):
        def train():
            cell.zero_grad()
            xg = xt.clone().requires_grad_(True)
            # reentrant checkpointing needs an input that requires grad in every segment, the first too
            h = torch.zeros(B, H, requires_grad=True)
            c = torch.zeros(B, H, requires_grad=True)
            if k is None:
                y, _, _ = run(xg, h, c)
            else:
                parts = []
                for s in range(0, T, k):
                    y, h, c = checkpoint(run, xg[s : s + k], h, c, use_reentrant=True)
                    parts.append(y)
                y = torch.cat(parts)
            y.sum().backward()
            return {
                "Wx": cell.weight_ih.grad.numpy().T,
                "Wh": cell.weight_hh.grad.numpy().T,
                "b": cell.bias_ih.grad.numpy(),
                "x": xg.grad.numpy(),
            }

        return train

    out = {}
    for name, k in segments.items():
        train = make(k)
        meter = SavedBytes()
        with torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack):
            grads = train()
        check(f"pytorch {name}", grads, ref, 2e-3)
        print(f"  checked pytorch {name}: peak {meter.peak / MiB:.2f} MiB", file=sys.stderr, flush=True)
        out[name] = (train, meter.peak)
        del grads
    return out


def rnncomp_variants(cell, arrays: dict, T: int, B: int, ks: list[int], budgets: list[int]) -> tuple[dict, dict]:
    """(name -> (train(), measured peak bytes, planned memory report), plain BPTT's gradients); each variant's
    gradients are checked against plain's as they come and then dropped (at T=10,000 a set is 0.2 GB)."""
    import rnncomp as rc

    plain = rc.compile(cell, length="T", dtype="float32")
    plain_peak = plain.memory(T, B=B)["peak"]
    checkpoints: dict[str, object] = {"plain BPTT": None}
    checkpoints.update({f"k={k}": k for k in ks})
    checkpoints["sqrt"] = "sqrt"
    checkpoints.update({f"{p}% budget": f"{plain_peak * p // 100}B" for p in budgets})
    out, ref = {}, None
    for name, ck in checkpoints.items():
        prog = plain if ck is None else rc.compile(cell, length="T", dtype="float32", checkpoint=ck)
        res, backward = prog.vjp(**arrays)
        grads = backward({"y": np.ones_like(res["y"])})
        ref = grads if ref is None else ref
        check(f"rnncomp {name}", grads, ref, 1e-4)
        print(f"  checked rnncomp {name}: peak {backward.peak / MiB:.2f} MiB", file=sys.stderr, flush=True)
        out[name] = (lambda p=prog: p.value_and_grad("y", **arrays)[1], backward.peak, prog.memory(T, B=B), prog)
        del res, backward, grads
    return out, ref


def check(name: str, got: dict, want: dict, rtol: float) -> None:
    for k in ("Wx", "Wh", "b", "x"):
        err = float(abs(got[k] - want[k]).max() / max(1e-6, abs(want[k]).max()))
        if err > rtol:
            raise SystemExit(f"numerics: {name} gradient {k} differs from rnncomp plain BPTT's by {err:.2e}")


def rounds(fns: dict, repeat: int, settle: float = 0.3, progress=None, before=None) -> dict[str, float]:
    """Median seconds of each function over `repeat` rounds, one call of each per round, the order rotating,
    each after `settle` s of quiet: the runtimes' thread pools (OpenMP, Numba's) spin for a while after
    work and would slow whoever runs next (as in lstm_cpu.interleaved_ms). `before[n]()`, where given,
    runs untimed before each call of n."""
    names, times = list(fns), {n: [] for n in fns}
    for r in range(repeat):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            if before and n in before:
                before[n]()
            time.sleep(settle)
            t0 = time.perf_counter()
            fns[n]()
            times[n].append(time.perf_counter() - t0)
            if progress:
                progress()
    return {n: statistics.median(ts) for n, ts in times.items()}


def hold_one(progs: dict, fns: dict) -> dict:
    """Untimed steps before each rnncomp call: every other program's buffers freed, then one call of its own
    (a training loop calls one program again and again, so the timed call finds its buffers pooled)."""

    def prepare(name):
        def run():
            for other, p in progs.items():
                if other != name:
                    p.free_buffers()
            fns[("rnncomp", name)]()

        return run

    return {("rnncomp", n): prepare(n) for n in progs}


def plot(results: list[tuple[int, list[tuple]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 5), squeeze=False)
    for ax, (T, rows) in zip(axes[0], results):
        base = next(r for r in rows if r[0] == "rnncomp" and r[1] == "plain BPTT")
        groups = {
            ("rnncomp", "budget"): ("o-", "rnncomp checkpoint=<bytes>"),
            ("rnncomp", "k"): ("s", "rnncomp checkpoint=k / sqrt"),
            ("rnncomp", "plain"): ("*", "rnncomp plain BPTT"),
            ("pytorch", "k"): ("^", "PyTorch checkpoint, k-step segments / sqrt"),
            ("pytorch", "plain"): ("P", "PyTorch plain"),
        }
        for (who, kind), (marker, label) in groups.items():
            pts = sorted((r[2] / MiB, r[3] / base[3], r[1]) for r in rows if r[0] == who and _kind(r[1]) == kind)
            if not pts:
                continue
            line = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker, label=label)[0]
            for mem, rel, name in pts:
                ax.annotate(name.replace(" budget", ""), (mem, rel), fontsize=7, color=line.get_color(),
                            xytext=(3, 3), textcoords="offset points")  # fmt: skip
        ax.axvline(0.05 * base[2] / MiB, color="grey", lw=0.6, ls=":")
        ax.axhline(1.35, color="grey", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("peak bytes held for the backward (MiB, measured; log)")
        ax.set_ylabel("time / rnncomp plain BPTT time")
        ax.set_title(f"LSTM M (I=128, H=256, B=32), T={T:,}; rnncomp plain = {base[3] * 1e3:.0f} ms")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _kind(name: str) -> str:
    return "budget" if name.endswith("budget") else "plain" if "plain" in name else "k"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", default="1000,10000")
    ap.add_argument("--repeat", default="5;3")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ks", default="10,50,200")
    ap.add_argument("--budgets", default="1,2,5,10,25,50")
    ap.add_argument("--torch-ks", default="", help="PyTorch's segment lengths (default: --ks)")
    ap.add_argument("--plot", default="", metavar="PNG")
    ap.add_argument(
        "--hold-one-from", type=int, default=5000, metavar="T",
        help="from this T on, only the rnncomp program being timed keeps its buffers between calls: the others'"
        " are freed (prog.free_buffers()) and one untimed call refills its own, so the pools of a dozen programs"
        " (GBs each at T=10,000) are never resident at once",
    )  # fmt: skip
    args = ap.parse_args(argv)
    _threads(args.threads)
    import torch  # noqa: F401  (before rnncomp's first GEMM: both then use MKL, see README)

    from benchmarks.cells import lstm_arrays, lstm_cell

    I, H, B, _ = CONFIGS["M"]  # noqa: E741
    Ts = ints(args.T)
    repeats = [int(r) for r in per_T(args.repeat, len(Ts), "--repeat")]
    ks_per = per_T(args.ks, len(Ts), "--ks")
    budgets_per = per_T(args.budgets, len(Ts), "--budgets")
    torch_ks_per = per_T(args.torch_ks or args.ks, len(Ts), "--torch-ks")
    with open("/proc/loadavg") as f:
        load0 = f.read().split()[:3]
    print(f"LSTM M I={I} H={H} B={B} float32, forward+backward; threads={args.threads}; loadavg {' '.join(load0)}")
    cell = lstm_cell(I, H)
    results = []
    for T, repeat, ks, budgets, tks in zip(Ts, repeats, ks_per, budgets_per, torch_ks_per):
        arrays = lstm_arrays(I, H, B, T)
        ours, ref = rnncomp_variants(cell, arrays, T, B, ints(ks), ints(budgets))
        segs = {"plain": None, **{f"k={k}": k for k in ints(tks)}, "sqrt": math.isqrt(T - 1) + 1}
        theirs = torch_variants(arrays["x"], arrays["Wx"], arrays["Wh"], arrays["b"], segs, args.threads, ref)
        del ref
        fns = {("rnncomp", n): v[0] for n, v in ours.items()} | {("pytorch", n): v[0] for n, v in theirs.items()}
        t0 = time.perf_counter()
        from tqdm import tqdm

        before = hold_one({n: v[3] for n, v in ours.items()}, fns) if T >= args.hold_one_from else None
        with tqdm(total=repeat * len(fns), desc=f"T={T} rounds", unit="call", file=sys.stderr) as bar:
            times = rounds(fns, repeat, progress=bar.update, before=before)
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        rows = [("rnncomp", n, v[1], times[("rnncomp", n)], v[2]) for n, v in ours.items()]
        rows += [("pytorch", n, v[1], times[("pytorch", n)], None) for n, v in theirs.items()]
        results.append((T, rows))
        base = rows[0]
        took = time.perf_counter() - t0
        print(f"\nT={T}: medians of {repeat} interleaved rounds ({took:.0f} s); loadavg {' '.join(load)}")
        print("| who | variant | peak MiB (measured) | % of plain | recompute | ms | x plain time |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for who, name, peak, sec, mem in rows:
            rec = f"{mem['recompute']:.3f}" if mem else ""
            print(
                f"| {who} | {name} | {peak / MiB:.2f} | {peak / base[2]:.1%} | {rec} | {sec * 1e3:.0f} | "
                f"{sec / base[3]:.2f} |",
                flush=True,
            )
    if args.plot:
        plot(results, args.plot)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
