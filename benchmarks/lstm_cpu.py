"""One-layer LSTM on the CPU: rnncomp numba-cpu vs PyTorch nn.LSTM vs JAX lax.scan vs plain NumPy.

    python benchmarks/lstm_cpu.py [--configs S,M,L] [--repeat 7] [--threads 2] [--compile]

float32; configs S (I=32, H=32, B=1, T=1000), M (I=128, H=256, B=32, T=100), L (I=512, H=1024,
B=64, T=50). For each: inference forward and forward+backward (loss = sum of outputs). Before timing
it checks that rnncomp's outputs and gradients match PyTorch's with the same weights. Prints median
times (ms; `--repeat` calls each, in three passes over all implementations) and ratios peer/rnncomp
(> 1: rnncomp is faster), the machine's float32 GEMM rate and
each config's roofline time (its GEMM FLOPs over that rate). `--compile` also times a cold compile
of the training program and a warm start from the on-disk cache, each in a fresh process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CONFIGS = {"S": (32, 32, 1, 1000), "M": (128, 256, 32, 100), "L": (512, 1024, 64, 50)}


def _threads(n: int) -> None:
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    os.environ.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={n}")


def median_ms(fn, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def interleaved_ms(fns: dict, repeat: int, passes: int = 3, settle: float = 0.25) -> dict[str, float]:
    """Median ms of each function over `repeat` calls, taken in `passes` passes over all of them
    (so a slow spell of a shared machine falls on every implementation alike), each pass's calls
    of one function back to back after `settle` s of quiet and a warm-up call: the runtimes'
    thread pools (OpenMP, Eigen) spin for a while after work, and would slow whoever runs next."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    per = [repeat // passes + (i < repeat % passes) for i in range(passes)]
    for n in per:
        for name, f in fns.items():
            time.sleep(settle)
            f()
            for _ in range(n):
                t0 = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(ts) for name, ts in times.items()}


def gemm_rate(np, repeat: int) -> float:
    """float32 GFLOP/s of the best BLAS at hand (NumPy's; PyTorch's if installed), square n=1024."""
    n = 1024
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    best = 2 * n**3 / (median_ms(lambda: a @ a, repeat) / 1e3)
    try:
        import torch

        t = torch.from_numpy(a)
        best = max(best, 2 * n**3 / (median_ms(lambda: t @ t, repeat) / 1e3))
    except ImportError:
        pass
    return best / 1e9


def lstm_flops(I: int, H: int, B: int, T: int) -> tuple[float, float]:  # noqa: E741
    """GEMM FLOPs of the forward, and of forward+backward (the backward does two GEMMs per forward GEMM)."""
    fwd = 2.0 * T * B * (I + H) * 4 * H
    return fwd, 3 * fwd


def check(name: str, got: dict, want: dict, rtol: float = 2e-3) -> None:
    for k, w in want.items():
        g = got[k]
        err = float(abs(g - w).max() / max(1e-6, abs(w).max()))
        if err > rtol:
            raise SystemExit(f"numerics: {name} gradient {k} differs from PyTorch's by {err:.2e} (relative to max)")


def run_config(tag: str, repeat: int, backend: str, rows: list) -> None:

    import rnncomp as rc
    from benchmarks.cells import lstm_arrays, lstm_cell
    from benchmarks.peers import Missing, make_jax, make_numpy, make_torch

    I, H, B, T = CONFIGS[tag]  # noqa: E741
    arrays = lstm_arrays(I, H, B, T)
    x, Wx, Wh, b = (arrays[k] for k in ("x", "Wx", "Wh", "b"))
    cell = lstm_cell(I, H)
    impls: dict[str, tuple] = {}
    modes = ["loop", 4] + (["full"] if tag == "M" else [])
    for m in modes:
        prog = rc.compile(cell, length="T", unroll=m, backend=backend, dtype="float32")
        impls[f"rnncomp {m}"] = (lambda p=prog: p(**arrays), lambda p=prog: p.value_and_grad("y", **arrays)[1])
    peers = {
        "pytorch": lambda: make_torch(x, Wx, Wh, b),
        "jax scan": lambda: make_jax(x, Wx, Wh, b, 1),
        "jax scan unroll=8": lambda: make_jax(x, Wx, Wh, b, 8),
        "numpy": lambda: make_numpy(x, Wx, Wh, b),
    }
    missing = []
    for name, make in peers.items():
        try:
            impls[name] = make()
        except Missing as e:
            missing.append(f"{name}: missing {e}")
    if "pytorch" in impls:
        ref = impls["pytorch"][1]()
        for name, (_, fb) in impls.items():
            if name != "pytorch":
                check(name, fb(), {k: v for k, v in ref.items() if k != "y"})
    for kind, idx in (("fwd", 0), ("fwd+bwd", 1)):
        times = interleaved_ms({name: f[idx] for name, f in impls.items()}, repeat)
        rows.append((tag, kind, times, missing))


def compile_times(backend: str) -> str:
    """Compiles of the LSTM training program (forward with residuals + backward), each in a fresh
    process: "first use" with every cache empty (rnncomp's helpers are compiled too, once per
    machine), "cold" with an empty program cache (a program never seen before), "warm" from the
    cache. "imports" is numpy, rnncomp and Numba with its typing registries (what `import jax` is
    to JAX); "build" is rc.compile, the passes, code generation, Numba's compile (or cache load)
    and the first value_and_grad call."""
    code = (
        "import time; t0 = time.perf_counter(); import numpy as np, rnncomp as rc;"
        "from rnncomp.backends.registry import preload; preload(rc.backends.registry.default_backend()"
        f" if {backend!r} is None else {backend!r});"
        "from benchmarks.cells import lstm_cell; t1 = time.perf_counter();"
        f"p = rc.compile(lstm_cell(128, 256), backend={backend!r});"
        "a = dict(x=np.ones((5, 2, 128), np.float32), Wx=np.ones((128, 1024), np.float32),"
        " Wh=np.ones((256, 1024), np.float32), b=np.ones(1024, np.float32));"
        "p.value_and_grad('y', **a); t2 = time.perf_counter();"
        "print(f'{t1 - t0:.3f} {t2 - t1:.3f} {t2 - t0:.3f}')"
    )
    out = []
    with tempfile.TemporaryDirectory() as numba_cache, tempfile.TemporaryDirectory() as first:
        with tempfile.TemporaryDirectory() as cache:
            for label, folder in (("first use", first), ("cold", cache), ("warm", cache)):
                env = {**os.environ, "RNNCOMP_CACHE_DIR": folder, "NUMBA_CACHE_DIR": numba_cache, "PYTHONPATH": ROOT}
                r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
                imports, build, total = r.stdout.split()
                out.append(f"{label}: build+first call {build} s (imports {imports} s, process total {total} s)")
    return "; ".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="S,M,L")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backend", default="numba-cpu")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args(argv)
    _threads(args.threads)
    import numpy as np

    rate = gemm_rate(np, args.repeat)
    print(f"float32 GEMM rate (best of NumPy/PyTorch BLAS, n=1024): {rate:.1f} GFLOP/s; threads={args.threads}")
    rows: list = []
    for tag in args.configs.split(","):
        run_config(tag, args.repeat, args.backend, rows)
    for tag, kind, times, missing in rows:
        I, H, B, T = CONFIGS[tag]  # noqa: E741
        flops = lstm_flops(I, H, B, T)[0 if kind == "fwd" else 1]
        best = min(v for k, v in times.items() if k.startswith("rnncomp"))
        print(
            f"\n{tag} (I={I}, H={H}, B={B}, T={T}) {kind}: roofline {flops / rate / 1e6:.2f} ms "
            f"(rnncomp best at {flops / rate / 1e6 / best:.0%} of it)"
        )
        for name, ms in sorted(times.items(), key=lambda kv: kv[1]):
            ratio = "" if name.startswith("rnncomp") else f"  peer/rnncomp = {ms / best:.2f}"
            print(f"  {name:<20} {ms:9.2f} ms{ratio}")
        for m in missing:
            print(f"  {m}")
    if args.compile:
        print("\ncompile (LSTM I=128 H=256 training program):", compile_times(args.backend))


if __name__ == "__main__":
    main()
