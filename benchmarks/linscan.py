"""minGRU with its linear recurrence scanned (issue 19) against the same cell with the pass off, a
PyTorch loop and JAX (lax.scan; lax.associative_scan), forward and forward+backward.

    python benchmarks/linscan.py [--T 1000,10000] [--repeat 5,3] [--threads 2] [--H 256] [--B 8]
        [--torch-T N]  (the PyTorch loop only for T <= N: on a loaded machine its backward is slow)

minGRU of examples/mingru.py with I = H, float32. rnncomp numba-cpu: the default pipeline (the
`linear_scan` pass: coefficients over the whole sequence, then the chunked scan of
backends/numba_cpu/scan.py) and `passes="simplify,hoist,simplify"` (the pass off: a loop over steps).
PyTorch: a loop over steps of the cell (autograd for the backward). JAX (where installed, jit):
`lax.scan` over steps of the cell, and `lax.associative_scan` over (a, b) pairs with the combine
(a1, b1), (a2, b2) -> (a1 a2, a2 b1 + b2); gradients by `jax.grad`. Forward+backward is
loss = sum of the outputs y (every h) and the gradients of x and the four params. Before timing, the
outputs and gradients of every variant are checked against rnncomp's with the pass off. Times are
medians over --repeat interleaved rounds (one call of every variant per round, the order rotating).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples"))

import numpy as np  # noqa: E402

from benchmarks.lstm_cpu import _threads  # noqa: E402

NAMES = ("W_z", "b_z", "W_h", "b_h")


def arrays(T: int, B: int, H: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    s = 1 / np.sqrt(H)
    a = {"x": rng.standard_normal((T, B, H)), "h": np.zeros((B, H))}
    a.update(W_z=rng.uniform(-s, s, (H, H)), b_z=rng.uniform(-s, s, H), W_h=rng.uniform(-s, s, (H, H)))
    a["b_h"] = rng.uniform(-s, s, H)
    return {k: v.astype(np.float32) for k, v in a.items()}


def rnncomp_variants(H: int, args: dict) -> dict:
    from mingru import make_mingru

    import rnncomp as rc

    cell = make_mingru(H, H)
    out = {}
    for name, passes in (("rnncomp scanned", None), ("rnncomp pass off", "simplify,hoist,simplify")):
        kw = {} if passes is None else {"passes": passes}
        prog = rc.compile(cell, backend="numba-cpu", dtype="float32", **kw)
        out[name] = (
            lambda p=prog: p(**args)["y"],
            lambda p=prog: (lambda v, g: (v, [g[k] for k in ("x",) + NAMES]))(*p.value_and_grad("y", **args)),
        )
    return out


def torch_variant(args: dict, threads: int):
    import torch

    torch.set_num_threads(threads)
    t = {k: torch.from_numpy(v) for k, v in args.items()}

    def forward(p, x):
        h, ys = t["h"], []
        for s in range(x.shape[0]):
            z = torch.sigmoid(x[s] @ p["W_z"] + p["b_z"])
            h = (1 - z) * h + z * (x[s] @ p["W_h"] + p["b_h"])
            ys.append(h)
        return torch.stack(ys)

    def fwd():
        with torch.no_grad():
            return forward(t, t["x"]).numpy()

    def fwd_bwd():
        p = {k: t[k].clone().requires_grad_() for k in NAMES}
        x = t["x"].clone().requires_grad_()
        loss = forward(p, x).sum()
        loss.backward()
        return loss.item(), [x.grad.numpy()] + [p[k].grad.numpy() for k in NAMES]

    return fwd, fwd_bwd


def jax_variants(args: dict) -> dict:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return {}
    j = {k: jnp.asarray(v) for k, v in args.items()}

    def coefficients(p, x):
        z = jax.nn.sigmoid(x @ p[0] + p[1])
        return 1 - z, z * (x @ p[2] + p[3])

    def by_scan(p, x):
        def step(h, xt):
            z = jax.nn.sigmoid(xt @ p[0] + p[1])
            h = (1 - z) * h + z * (xt @ p[2] + p[3])
            return h, h

        return jax.lax.scan(step, j["h"], x)[1]

    def by_associative(p, x):
        a, b = coefficients(p, x)
        b = b.at[0].add(a[0] * j["h"])

        def combine(e1, e2):
            return e1[0] * e2[0], e2[0] * e1[1] + e2[1]

        return jax.lax.associative_scan(combine, (a, b))[1]

    out = {}
    params = tuple(j[k] for k in NAMES)
    for name, f in (("JAX lax.scan", by_scan), ("JAX associative_scan", by_associative)):
        fj = jax.jit(f)
        gj = jax.jit(jax.value_and_grad(lambda p, x, f=f: f(p, x).sum(), argnums=(0, 1)))

        def fwd(fj=fj):
            return np.asarray(fj(params, j["x"]).block_until_ready())

        def fwd_bwd(gj=gj):
            v, (gp, gx) = gj(params, j["x"])
            return float(v), [np.asarray(gx)] + [np.asarray(g) for g in gp]

        out[name] = (fwd, fwd_bwd)
    return out


def check(name: str, got, want, what: str) -> float:
    """Largest difference relative to the largest reference value, over the arrays."""
    got, want = (got if isinstance(got, list) else [got]), (want if isinstance(want, list) else [want])
    err = max(float(np.abs(g - w).max() / max(1e-30, np.abs(w).max())) for g, w in zip(got, want))
    if err > 1e-3:
        raise SystemExit(f"{name} {what}: relative difference {err:.2e} from rnncomp pass off")
    return err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--T", default="1000,10000")
    ap.add_argument("--repeat", default="5,3", help="rounds per T (one value per T, or one for all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--H", type=int, default=256)
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--torch-T", type=int, default=None, help="run the PyTorch loop only up to this T")
    opts = ap.parse_args()
    _threads(opts.threads)
    Ts = [int(v) for v in opts.T.split(",")]
    reps = [int(v) for v in opts.repeat.split(",")]
    reps += [reps[-1]] * (len(Ts) - len(reps))
    print(
        f"minGRU H={opts.H} B={opts.B} float32, threads {opts.threads}, loadavg {open('/proc/loadavg').read().strip()}"
    )
    for T, repeat in zip(Ts, reps):
        args = arrays(T, opts.B, opts.H)
        variants = rnncomp_variants(opts.H, args)
        if opts.torch_T is None or T <= opts.torch_T:
            variants["PyTorch loop"] = torch_variant(args, opts.threads)
        variants.update(jax_variants(args))
        ref_f, ref_g = variants["rnncomp pass off"][0](), variants["rnncomp pass off"][1]()[1]
        errs = {}
        for name, (f, g) in variants.items():
            f(), g()  # warm-up (compiles)
            errs[name] = (check(name, f(), ref_f, "forward"), check(name, g()[1], ref_g, "gradients"))
        names = list(variants)
        times: dict[tuple[str, int], list[float]] = {(n, k): [] for n in names for k in (0, 1)}
        for r in range(repeat):
            order = names[r % len(names) :] + names[: r % len(names)]
            for k in (0, 1):
                for n in order:
                    t0 = time.perf_counter()
                    variants[n][k]()
                    times[(n, k)].append(time.perf_counter() - t0)
        base = [statistics.median(times[("rnncomp pass off", k)]) for k in (0, 1)]
        print(f"\nT={T} ({repeat} rounds)")
        print(f"{'variant':24s} {'fwd ms':>10s} {'x off':>6s} {'fwd+bwd ms':>11s} {'x off':>6s}  rel. diff fwd / grads")
        for n in names:
            m = [statistics.median(times[(n, k)]) for k in (0, 1)]
            print(
                f"{n:24s} {1e3 * m[0]:10.1f} {base[0] / m[0]:6.2f} {1e3 * m[1]:11.1f} {base[1] / m[1]:6.2f}"
                f"  {errs[n][0]:.1e} / {errs[n][1]:.1e}"
            )
    print(f"\nloadavg after: {open('/proc/loadavg').read().strip()}")


if __name__ == "__main__":
    main()
