"""The trade-offs of compiling an RNN, measured and drawn: memory, unrolling, variable lengths, truncation.

    python benchmarks/tradeoffs.py [--only memory,unroll,compile,lengths,truncate] [--quick]
                                   [--repeat 9] [--out benchmarks/figures] [--results benchmarks/RESULTS.md]

One-layer LSTM (benchmarks/cells.py), float32, numba-cpu, 2 threads for rnncomp and PyTorch alike.
Each part writes a PNG figure into --out and a table; the tables, captions and the command go into
their own section of --results (between the `tradeoffs` markers; the rest of the file is kept).

- memory: bytes kept for the backward pass vs T, plain BPTT, checkpoint=k, "sqrt"; the model's
  (`prog.memory`) beside the measured rise of the process's peak resident memory in one vjp + backward.
- unroll: time per call vs unroll mode (loop, 2, 4, 8, 16, full), forward and forward+backward, configs S, M.
- compile: pass pipeline and source generation time vs T for full, k=8 and loop (training programs).
- lengths: time vs the padding fraction (mean/max length 1.0 .. 0.1): rnncomp lengths=, rnncomp on the
  padded batch, nn.LSTM on a PackedSequence, nn.LSTM on the padded batch.
- truncate: time and the gradient's cosine similarity with full BPTT vs truncate=k.

Each part runs in a process of its own (its peak memory is its own; nothing one part loaded is left
for the next). `--quick` runs every part at tiny sizes (a smoke test: the figures and the section are written, the
numbers mean nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np

from benchmarks.tradeoff_report import Part, write_section

MiB = 2**20
PARTS = ("memory", "unroll", "compile", "lengths", "truncate")


def _threads(n: int) -> None:
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, str(n))


def median_ms(fns: dict, repeat: int, rounds: int = 3) -> dict[str, float]:
    """Median ms of each function, `repeat` calls taken in `rounds` interleaved rounds after a warm-up call."""
    for f in fns.values():
        f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for n in [repeat // rounds + (i < repeat % rounds) for i in range(rounds)]:
        for k, f in fns.items():
            for _ in range(n):
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * float(np.median(v)) for k, v in times.items()}


# ---------------------------------------------------------------- (a) memory


def _status_mib(field: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def measured_peak_mib(fn) -> float:
    """The rise of the process's peak resident memory while `fn()` runs (VmHWM, reset first)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
        f.write("5")
    before = _status_mib("VmRSS")
    fn()
    return _status_mib("VmHWM") - before


def part_memory(a, backend: str) -> Part:
    import rnncomp as rc
    from benchmarks.cells import lstm_arrays, lstm_cell

    I, H, B = (8, 16, 4) if a.quick else (128, 256, 32)  # noqa: E741
    Ts = [10, 100] if a.quick else [10, 30, 100, 300, 1000, 3000, 10000]
    measure = set(Ts) if a.quick else {10, 100, 1000, 10000}
    ks = [4] if a.quick else [10, 100]
    configs = [("plain BPTT", None)] + [(f"checkpoint={k}", k) for k in ks] + [('checkpoint="sqrt"', "sqrt")]
    cell = lstm_cell(I, H)
    model: dict[str, list[float]] = {name: [] for name, _ in configs}
    meas: dict[str, dict[int, float]] = {name: {} for name, _ in configs}
    io_mib = {T: (2 * T * B * I + T * B * H + 2 * B * H + (I + H + 1) * 4 * H) * 4 / MiB for T in Ts}
    for name, ck in configs:
        for T in Ts:
            prog = rc.compile(cell, dtype="float32", backend=backend, checkpoint=ck)
            model[name].append(prog.memory(T, B=B)["peak"] / MiB)
            if T in measure:
                arrays = lstm_arrays(I, H, B, T)
                prog.value_and_grad("y", **lstm_arrays(I, H, B, 2))  # compiled before the measurement

                def run(p=prog, arrays=arrays):
                    out, backward = p.vjp(**arrays)
                    grads = backward({"y": np.ones_like(out["y"])})
                    del out, grads, backward

                meas[name][T] = measured_peak_mib(run)
                del arrays
            del prog
            print(f"  memory: {name} T={T} done", flush=True)
    heads = ["T"] + [f"{n} model / measured" for n, _ in configs] + ["inputs+outputs+grads"]
    rows = []
    for i, T in enumerate(Ts):
        cells = [str(T)]
        for name, _ in configs:
            m = meas[name].get(T)
            cells.append(f"{model[name][i]:.2f} / {m:.1f}" if m is not None else f"{model[name][i]:.2f} / -")
        cells.append(f"{io_mib[T]:.1f}")
        rows.append(cells)
    path = a.out / "tradeoffs_memory.png"
    from benchmarks.tradeoff_report import plot_memory

    plot_memory(path, Ts, model, meas, io_mib, f"LSTM I={I} H={H} B={B} float32")
    caption = (
        f"Memory for training vs sequence length T (LSTM I={I}, H={H}, B={B}, float32, {backend}). Lines: the "
        "model's peak for the backward pass, `prog.memory(T, B)['peak']` (the residuals kept from the forward; "
        "with checkpointing the states kept every k steps plus one recomputed segment). Markers: the measured "
        "rise of the process's peak resident memory (VmHWM, reset before the call) during one `vjp` + backward; "
        "it also holds what the model does not count: the inputs' copies, the outputs y, the gradients "
        "(dashed grey: their sum, 'inputs+outputs+grads') and the backward's workspace. MiB."
    )
    return Part("memory", "Memory kept for the backward pass vs T", caption, heads, rows, [path])


# ---------------------------------------------------------------- (b) unroll and compile time


def part_unroll(a, backend: str) -> Part:
    from benchmarks.cells import lstm_cell
    from benchmarks.tradeoff_report import plot_unroll
    from rnncomp.bench import bench

    configs = {"S": (32, 32, 1, 1000), "M": (128, 256, 32, 100)}
    if a.quick:
        configs = {"S": (4, 8, 1, 12), "M": (8, 16, 4, 6)}
    modes: list = ["loop", 2, 4, 8, 16, "full"]
    results = {}
    saved = os.environ.get("RNNCOMP_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cold:  # every build from an empty program cache
        os.environ["RNNCOMP_CACHE_DIR"] = cold
        try:
            bench(lstm_cell(3, 5), 2, 1, {}, ["loop"], 1, backend=backend)  # load rnncomp's helpers first
            for tag, (I, H, B, T) in configs.items():  # noqa: E741
                print(f"  unroll: config {tag} (the full unroll's build takes a while at T={T})", flush=True)
                results[tag] = bench(lstm_cell(I, H), T, B, {}, modes, a.repeat, backend=backend)
        finally:
            if saved is None:
                os.environ.pop("RNNCOMP_CACHE_DIR")
            else:
                os.environ["RNNCOMP_CACHE_DIR"] = saved
    heads = ["config", "unroll", "fwd ms", "fwd+bwd ms", "build s (cold cache)"]
    rows = []
    for tag, r in results.items():
        I, H, B, T = configs[tag]  # noqa: E741
        for m in modes:
            rows.append(
                [f"{tag} (I={I} H={H} B={B} T={T})", str(m), f"{r.ms[m, 'fwd']:.3f}", f"{r.ms[m, 'fwd+bwd']:.3f}"]
                + [f"{r.build_s[m]:.2f}"]
            )
    path = a.out / "tradeoffs_unroll.png"
    plot_unroll(path, configs, results, modes)
    caption = (
        f"Time per call vs unroll mode, forward (`prog(...)`) and forward+backward (`value_and_grad`), medians of "
        f"{a.repeat} calls in interleaved rounds; configs S (I=32, H=32, B=1, T=1000) and M (I=128, H=256, B=32, "
        "T=100), float32. 'build' is the compile and the first forward and forward+backward calls, from a cold "
        "cache: the price of a static unroll, which grows with T (full: one straight-line program per length)."
    )
    return Part("unroll", "Time per call vs unroll mode", caption, heads, rows, [path])


def part_compile(a, backend: str) -> Part:
    from benchmarks.cells import lstm_cell
    from benchmarks.compile_time import build
    from benchmarks.tradeoff_report import plot_compile
    from ir.dtypes import DType
    from passes.retype import retype_cell
    from rnncomp.backends.numba_cpu import generate_source

    Ts = [5, 10] if a.quick else [10, 30, 100, 300, 1000]
    cell = retype_cell(lstm_cell(128, 256), "f32")
    modes: list = ["full", 8, "loop"]
    passes_s: dict = {m: [] for m in modes}
    codegen_s: dict = {m: [] for m in modes}
    sizes: dict = {m: [] for m in modes}
    for m in modes:
        for T in Ts:
            t0 = time.perf_counter()
            progs = [build(cell, T, m, k) for k in ("train", "grad")]
            t1 = time.perf_counter()
            for p in progs:
                generate_source(p, DType.f32)
            t2 = time.perf_counter()
            passes_s[m].append(t1 - t0)
            codegen_s[m].append(t2 - t1)
            sizes[m].append(sum(p.size() for p in progs))
        print(f"  compile: unroll={m} done", flush=True)
    heads = ["T"] + [f"unroll={m}: passes / codegen s [IR nodes]" for m in modes]
    rows = [
        [str(T)] + [f"{passes_s[m][i]:.3f} / {codegen_s[m][i]:.3f} [{sizes[m][i]}]" for m in modes]
        for i, T in enumerate(Ts)
    ]
    path = a.out / "tradeoffs_compile.png"
    plot_compile(path, Ts, modes, passes_s, codegen_s)
    caption = (
        "Compile time of the training programs (the forward that keeps residuals, and the backward) vs T, LSTM "
        "I=128 H=256: the pass pipeline (unroll or grad, simplify, hoist, simplify) and the numba-cpu source "
        "generation; Numba's own compile of that source comes on top (the 'build' column of the unroll table). "
        "A full unroll grows linearly in T; k=8 and loop build one body whatever T is."
    )
    return Part("compile", "Pass pipeline and code generation time vs T", caption, heads, rows, [path])


# ---------------------------------------------------------------- (c) variable lengths


def spread_lengths(T: int, B: int, fraction: float) -> np.ndarray:
    """B lengths with max T and mean about fraction*T: T*(b/(B-1))^p, p = 1/fraction - 1, at least 1."""
    p = 1.0 / fraction - 1.0
    u = np.arange(B) / max(B - 1, 1)
    return np.maximum(1, np.round(T * u**p)).astype(np.int64)


def torch_lstm(arrays, threads: int = 2):
    import torch

    torch.set_num_threads(threads)
    I, H4 = arrays["Wx"].shape  # noqa: E741
    lstm = torch.nn.LSTM(I, H4 // 4)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(arrays["Wx"].T.copy()))
        lstm.weight_hh_l0.copy_(torch.from_numpy(arrays["Wh"].T.copy()))
        lstm.bias_ih_l0.copy_(torch.from_numpy(arrays["b"]))
        lstm.bias_hh_l0.zero_()
    return lstm


def part_lengths(a, backend: str) -> Part:
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    import rnncomp as rc
    from benchmarks.cells import lstm_arrays, lstm_cell
    from benchmarks.tradeoff_report import plot_lengths

    I, H, B, T = (8, 16, 8, 20) if a.quick else (128, 256, 32, 100)  # noqa: E741
    fractions = [1.0, 0.5, 0.1] if a.quick else [1.0, 0.8, 0.6, 0.4, 0.2, 0.1]
    arrays = lstm_arrays(I, H, B, T)
    prog = rc.compile(lstm_cell(I, H), dtype="float32", backend=backend)
    lstm = torch_lstm(arrays)
    xt = torch.from_numpy(arrays["x"])
    impls = ["rnncomp lengths=", "rnncomp padded", "nn.LSTM packed", "nn.LSTM padded"]
    times: dict = {(k, i): [] for k in ("fwd", "fwd+bwd") for i in impls}
    actual = []
    for f in fractions:
        L = spread_lengths(T, B, f)
        actual.append(float(L.mean() / L.max()))
        Lt = torch.from_numpy(L)
        # the same numbers first: rnncomp's final h with lengths= is nn.LSTM's h_n on the packed batch
        want = lstm(pack_padded_sequence(xt, Lt, enforce_sorted=False))[1][0][0].detach().numpy()
        err = float(np.abs(prog(lengths=L, **arrays)["h"] - want).max())
        assert err < 1e-4, f"lengths: rnncomp's final h differs from nn.LSTM's packed h_n by {err:.2e}"

        def packed_fwd(Lt=Lt):
            with torch.no_grad():
                return lstm(pack_padded_sequence(xt, Lt, enforce_sorted=False))

        def packed_both(Lt=Lt):
            lstm.zero_grad()
            x = xt.clone().requires_grad_(True)
            out, _ = lstm(pack_padded_sequence(x, Lt, enforce_sorted=False))
            out.data.sum().backward()

        def padded_fwd():
            with torch.no_grad():
                return lstm(xt)

        def padded_both():
            lstm.zero_grad()
            x = xt.clone().requires_grad_(True)
            lstm(x)[0].sum().backward()

        fns = {
            ("fwd", impls[0]): lambda L=L: prog(lengths=L, **arrays),
            ("fwd", impls[1]): lambda: prog(**arrays),
            ("fwd", impls[2]): packed_fwd,
            ("fwd", impls[3]): padded_fwd,
            ("fwd+bwd", impls[0]): lambda L=L: prog.value_and_grad("y", lengths=L, **arrays),
            ("fwd+bwd", impls[1]): lambda: prog.value_and_grad("y", **arrays),
            ("fwd+bwd", impls[2]): packed_both,
            ("fwd+bwd", impls[3]): padded_both,
        }
        for k, ms in median_ms(fns, a.repeat).items():
            times[k].append(ms)
        print(f"  lengths: mean/max {actual[-1]:.2f} done", flush=True)
    heads = ["mean/max length"] + [f"{i} {k} ms" for k in ("fwd", "fwd+bwd") for i in impls]
    rows = [
        [f"{r:.2f}"] + [f"{times[k, i][j]:.2f}" for k in ("fwd", "fwd+bwd") for i in impls]
        for j, r in enumerate(actual)
    ]
    path = a.out / "tradeoffs_lengths.png"
    plot_lengths(path, actual, impls, times, f"LSTM I={I} H={H} B={B}, max length T={T}")
    caption = (
        f"Variable lengths: time vs mean/max length (LSTM I={I}, H={H}, B={B}, the longest row T={T} steps, the "
        "others spread as T·u^p), forward and forward+backward (loss: sum of the outputs), medians of "
        f"{a.repeat}. 'rnncomp lengths=' runs to max(lengths) with per-row masking (dynamic_rnn's rule); "
        "'padded' runs every row for T steps; nn.LSTM packed shrinks the batch at each step "
        "(`pack_padded_sequence(..., enforce_sorted=False)`, packing timed). rnncomp's final h with lengths= "
        "is checked against nn.LSTM's packed h_n first."
    )
    return Part("lengths", "Variable lengths: time vs padding", caption, heads, rows, [path])


# ---------------------------------------------------------------- (d) truncated BPTT


def part_truncate(a, backend: str) -> Part:
    import rnncomp as rc
    from benchmarks.cells import lstm_arrays, lstm_cell
    from benchmarks.tradeoff_report import plot_truncate

    I, H, B, T = (8, 16, 4, 20) if a.quick else (128, 256, 32, 200)  # noqa: E741
    ks = [1, 5, 20] if a.quick else [1, 2, 5, 10, 20, 50, 100, 200]
    arrays = lstm_arrays(I, H, B, T)
    cell = lstm_cell(I, H)
    r = np.random.default_rng(1).standard_normal((B, H)).astype(np.float32)
    flat = lambda g: np.concatenate([g[k].ravel() for k in ("Wx", "Wh", "b")]).astype(np.float64)
    progs = {None: rc.compile(cell, dtype="float32", backend=backend)}
    progs.update({k: rc.compile(cell, dtype="float32", backend=backend, truncate=k) for k in ks})

    def step(p):
        out, backward = p.vjp(**arrays)
        return backward({"h": r})

    full = flat(step(progs[None]))
    cos = {}
    for k in ks:
        g = flat(step(progs[k]))
        cos[k] = float(g @ full / (np.linalg.norm(g) * np.linalg.norm(full)))
    ms = median_ms({k: (lambda p=p: step(p)) for k, p in progs.items()}, a.repeat)
    heads = ["truncate=k", "fwd+bwd ms", "cosine with full BPTT (dWx, dWh, db)"]
    rows = [[str(k), f"{ms[k]:.2f}", f"{cos[k]:.6f}"] for k in ks] + [["none (full)", f"{ms[None]:.2f}", "1"]]
    path = a.out / "tradeoffs_truncate.png"
    plot_truncate(path, ks, ms, cos, f"LSTM I={I} H={H} B={B} T={T}")
    caption = (
        f"Truncated BPTT (`truncate=k`, Theano's truncate_gradient): LSTM I={I}, H={H}, B={B}, T={T}, a loss on "
        "the final state (sum(h_T * r), r fixed random: the classifier case), PyTorch's default init. Time of "
        "one vjp + backward (median) and the cosine similarity of the weight gradient with full BPTT's, vs k."
    )
    return Part("truncate", "Truncated BPTT: time and gradient vs k", caption, heads, rows, [path])


# ---------------------------------------------------------------- driver

RUNNERS = {
    "memory": part_memory,
    "unroll": part_unroll,
    "compile": part_compile,
    "lengths": part_lengths,
    "truncate": part_truncate,
}


def run_part(p: str, argv: list[str]) -> Part:
    """Part `p` in a process of its own: a part's peak resident memory is its own, and nothing one part
    compiled or loaded (thread pools, BLAS, large programs) is still in the process when the next runs."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "part.json"
        child = [sys.executable, __file__, *argv, "--only", p, "--part-json", str(out)]
        done = subprocess.run(child, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"tradeoffs.py: part {p!r} failed (exit status {done.returncode}); rerun it alone: "
                             f"python benchmarks/tradeoffs.py --only {p}")  # fmt: skip
        d = json.loads(out.read_text())
    return Part(**{**d, "figures": [Path(f) for f in d["figures"]]})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(PARTS), help="comma list of parts: " + ", ".join(PARTS))
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of every part")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backend", default="numba-cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "figures")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    ap.add_argument("--part-json", type=Path, help=argparse.SUPPRESS)  # internal: one part, its result as JSON
    a = ap.parse_args(argv)
    parts = [p.strip() for p in a.only.split(",")]
    unknown = [p for p in parts if p not in RUNNERS]
    if unknown:
        ap.error(f"--only: unknown part(s) {', '.join(unknown)}; parts are {', '.join(PARTS)}")
    _threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    if a.part_json is not None:  # the child: run the one part, hand its result back
        t = time.perf_counter()
        part = RUNNERS[parts[0]](a, a.backend)
        part.seconds = time.perf_counter() - t
        a.part_json.write_text(json.dumps({**dataclasses.asdict(part), "figures": [str(f) for f in part.figures]}))
        return
    passed = ["--repeat", str(a.repeat), "--threads", str(a.threads), "--backend", a.backend, "--out", str(a.out)]
    passed += ["--quick"] if a.quick else []
    load_before = open("/proc/loadavg").read().split()[:3]
    t0 = time.perf_counter()
    done = []
    for p in parts:
        print(f"{p} ...", flush=True)
        part = run_part(p, passed)
        done.append(part)
        print(part.text_table(), flush=True)
    load_after = open("/proc/loadavg").read().split()[:3]
    command = "python benchmarks/tradeoffs.py" + (f" --only {a.only}" if a.only != ",".join(PARTS) else "")
    command += " --quick" if a.quick else ""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    write_section(a.results, done, command, stamp, load_before, load_after, time.perf_counter() - t0, a.out, a.threads)
    print(f"figures in {a.out}; section written to {a.results} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
