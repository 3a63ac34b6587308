"""One-layer LSTM on a GPU: rnncomp numba-cuda (per-step, persistent) vs PyTorch nn.LSTM (cuDNN) vs JAX lax.scan.

    python benchmarks/lstm_gpu.py [--configs S,M,L,P] [--repeat 20]

float32; configs S (I=32, H=32, B=1, T=1000), M (I=128, H=256, B=32, T=100), L (I=512, H=1024,
B=64, T=50), P (I=512, H=512, B=4, T=1000). For each: the forward, and forward+backward (loss =
sum of outputs; gradients of the weights and the input). Every implementation works on arrays
already on the GPU and waits for the device before its clock stops. rnncomp runs on device
arrays: the forward is `prog(**arrays)`, forward+backward `prog.value_and_grad("y", **arrays)`
(outputs and gradients stay on the device). "rnncomp per-step" launches the loop body's kernels at
every step (persistent=False); "rnncomp persistent" runs each loop in one launch with the recurrent
weights in shared memory (persistent=True): one block where they fit one (config S), else a
cooperative grid of a block per SM (reported as not applicable where they do not fit);
`prog.resources()` prints the per-step estimate (syncs, FLOPs, bytes) these times check. Before
timing, every implementation's outputs and gradients are checked against PyTorch's (TF32 is off in
PyTorch and JAX, so all compute in float32). Prints median times (ms) and ratios peer/rnncomp
(> 1: rnncomp is faster); a missing peer is reported as missing.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.lstm_cpu import median_ms  # wall time of fn() (every fn here waits for the device)

CONFIGS = {"S": (32, 32, 1, 1000), "M": (128, 256, 32, 100), "L": (512, 1024, 64, 50), "P": (512, 512, 4, 1000)}
GRADS = ("Wx", "Wh", "b", "x")


def require_gpu() -> None:
    """Exit with a clear message where no CUDA GPU can be timed (the simulator does not count)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        raise SystemExit("lstm_gpu: NUMBA_ENABLE_CUDASIM is set; this benchmark times a real GPU: unset it")
    try:
        from numba import cuda
    except ImportError as e:
        raise SystemExit(f"lstm_gpu: numba-cuda is not installed ({e}): pip install -e .[cuda]") from None
    if not cuda.is_available():
        raise SystemExit(
            "lstm_gpu: no CUDA GPU here (numba.cuda.is_available() is False); run it on a machine with an NVIDIA GPU"
        )


class Impl:
    """An implementation under test: `forward()` and `forward_backward()` run on the device and wait
    for it; `results()` gives y and the gradients as NumPy arrays (for the numerics check)."""

    def __init__(self, forward, forward_backward, results):
        self.forward, self.forward_backward, self.results = forward, forward_backward, results


def make_rnncomp(x, Wx, Wh, b, persistent: bool) -> Impl:
    import numpy as np
    from numba import cuda

    import rnncomp as rc
    from benchmarks.cells import lstm_cell

    I, H = Wx.shape[0], Wh.shape[0]  # noqa: E741
    prog = rc.compile(
        lstm_cell(I, H), length="T", backend="numba-cuda", dtype="float32", backend_options={"persistent": persistent}
    )
    host = {"x": x, "Wx": Wx, "Wh": Wh, "b": b}
    dev = {k: cuda.to_device(v) for k, v in host.items()}

    def forward():
        out = prog(**dev)
        cuda.synchronize()
        return out

    def forward_backward():  # on device arrays, everything stays on the device (the loss comes back)
        loss, g = prog.value_and_grad("y", **dev)
        cuda.synchronize()
        return g

    def results():
        y = forward()["y"].copy_to_host()
        g = forward_backward()
        return {"y": y, **{k: g[k].copy_to_host() for k in GRADS}}

    loss, want = prog.value_and_grad("y", **host)  # host arrays in and out must agree with device arrays
    got = results()
    for k in GRADS:
        err = float(np.abs(got[k] - want[k]).max() / max(1e-6, np.abs(want[k]).max()))
        if err > 1e-4:
            raise SystemExit(
                f"numerics: rnncomp's value_and_grad on device and on host arrays differ on {k} ({err:.2e})"
            )
    return Impl(forward, forward_backward, results)


def make_torch(x, Wx, Wh, b) -> Impl:
    from benchmarks.peers import Missing

    try:
        import torch
    except ImportError as e:
        raise Missing(f"PyTorch ({e})") from None
    if not torch.cuda.is_available():
        raise Missing(f"PyTorch with CUDA (torch {torch.__version__}: torch.cuda.is_available() is False)")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    T, B, I = x.shape  # noqa: E741
    H = Wh.shape[0]
    lstm = torch.nn.LSTM(I, H).cuda()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(Wx.T.copy()))
        lstm.weight_hh_l0.copy_(torch.from_numpy(Wh.T.copy()))
        lstm.bias_ih_l0.copy_(torch.from_numpy(b))
        lstm.bias_hh_l0.zero_()
    xt = torch.from_numpy(x).cuda()

    def forward():
        with torch.no_grad():
            y, _ = lstm(xt)
        torch.cuda.synchronize()
        return y

    def forward_backward():
        lstm.zero_grad()
        xg = xt.clone().requires_grad_(True)
        y, _ = lstm(xg)
        y.sum().backward()
        torch.cuda.synchronize()
        return y, xg

    def results():
        y, xg = forward_backward()
        p = {n: t.grad.cpu().numpy() for n, t in (("Wx", lstm.weight_ih_l0), ("Wh", lstm.weight_hh_l0))}
        return {
            "y": y.detach().cpu().numpy(),
            "Wx": p["Wx"].T,
            "Wh": p["Wh"].T,
            "b": lstm.bias_ih_l0.grad.cpu().numpy(),
            "x": xg.grad.cpu().numpy(),
        }

    return Impl(forward, forward_backward, results)


def make_jax(x, Wx, Wh, b) -> Impl:
    import numpy as np

    from benchmarks.peers import Missing

    try:
        import jax
        import jax.numpy as jnp
    except ImportError as e:
        raise Missing(f"JAX ({e})") from None
    try:
        gpu = jax.devices("gpu")[0]
    except RuntimeError as e:
        raise Missing(f"JAX with a GPU backend ({e})") from None
    jax.config.update("jax_default_matmul_precision", "highest")
    H = Wh.shape[0]

    def run(params, xs):
        Wx_, Wh_, b_ = params

        def step(carry, xt):
            h, c = carry
            i, f, g, o = jnp.split(xt @ Wx_ + h @ Wh_ + b_, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((xs.shape[1], H), xs.dtype)
        return jax.lax.scan(step, (zeros, zeros), xs)[1]

    fwd = jax.jit(run)
    grad = jax.jit(jax.value_and_grad(lambda p, xs: run(p, xs).sum(), argnums=(0, 1)))
    params = tuple(jax.device_put(a, gpu) for a in (Wx, Wh, b))
    xj = jax.device_put(x, gpu)

    def forward():
        return fwd(params, xj).block_until_ready()

    def forward_backward():
        _, (gp, gx) = grad(params, xj)
        return jax.block_until_ready((gp, gx))

    def results():
        gp, gx = forward_backward()
        return {
            "y": np.asarray(forward()),
            "Wx": np.asarray(gp[0]),
            "Wh": np.asarray(gp[1]),
            "b": np.asarray(gp[2]),
            "x": np.asarray(gx),
        }

    return Impl(forward, forward_backward, results)


def check(name: str, got: dict, want: dict, rtol: float = 2e-3) -> None:
    """Outputs and gradients within `rtol` of PyTorch's, relative to each array's largest magnitude."""
    for k, w in want.items():
        err = float(abs(got[k] - w).max() / max(1e-6, abs(w).max()))
        if err > rtol:
            raise SystemExit(f"numerics: {name} {k} differs from PyTorch's by {err:.2e} (relative to its max)")


def run_config(tag: str, repeat: int) -> list[tuple[str, dict[str, float], list[str]]]:
    import numpy as np

    from benchmarks.peers import Missing
    from rnncomp.backends.numba_cuda import CudaBackendError

    I, H, B, T = CONFIGS[tag]  # noqa: E741
    rng = np.random.default_rng(0)
    s = 1.0 / np.sqrt(H)
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    Wx, Wh, b = (rng.uniform(-s, s, shape).astype(np.float32) for shape in ((I, 4 * H), (H, 4 * H), (4 * H,)))
    makers = {
        "rnncomp per-step": lambda: make_rnncomp(x, Wx, Wh, b, persistent=False),
        "rnncomp persistent": lambda: make_rnncomp(x, Wx, Wh, b, persistent=True),
        "pytorch cudnn": lambda: make_torch(x, Wx, Wh, b),
        "jax scan": lambda: make_jax(x, Wx, Wh, b),
    }
    impls: dict[str, Impl] = {}
    notes: list[str] = []
    for name, make in makers.items():
        try:
            impls[name] = make()
        except Missing as e:
            notes.append(f"{name}: missing {e}")
        except CudaBackendError as e:
            notes.append(f"{name}: not applicable ({e})")
    if "pytorch cudnn" in impls:
        want = impls["pytorch cudnn"].results()
        for name, impl in impls.items():
            if name != "pytorch cudnn":
                check(name, impl.results(), want)
    else:
        notes.append("numerics not checked: PyTorch with CUDA is missing")
    rows = []
    for kind in ("fwd", "fwd+bwd"):
        times = {n: median_ms(i.forward if kind == "fwd" else i.forward_backward, repeat) for n, i in impls.items()}
        rows.append((kind, times, notes))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="S,M,L,P")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    require_gpu()
    from numba import cuda

    print(f"device: {cuda.get_current_device().name}; median of {args.repeat} runs; float32, TF32 off")
    for tag in args.configs.split(","):
        I, H, B, T = CONFIGS[tag]  # noqa: E741
        for kind, times, notes in run_config(tag, args.repeat):
            ours = [v for k, v in times.items() if k.startswith("rnncomp")]
            best = min(ours) if ours else None
            print(f"\n{tag} (I={I}, H={H}, B={B}, T={T}) {kind}")
            for name, ms in sorted(times.items(), key=lambda kv: kv[1]):
                ratio = "" if name.startswith("rnncomp") or best is None else f"  peer/rnncomp = {ms / best:.2f}"
                print(f"  {name:<20} {ms:9.2f} ms{ratio}")
            for note in notes if kind == "fwd" else []:
                print(f"  {note}")


if __name__ == "__main__":
    main()
