"""The subnormal-float policy of each backend: `rc.compile(..., denormals="flush" | "keep")`.

"flush" runs a call with subnormal results and inputs taken as zero (x86-64 FTZ|DAZ on every
thread of the call, the caller's state restored after); "keep" is IEEE gradual underflow. Only
values below 1.2e-38 (float32) / 2.2e-308 (float64) differ, where float32 holds fewer than 24
significant bits anyway, while subnormal arithmetic is 20-100x slower on x86: a gradient decaying
through a long sequence makes a backward pass 20x slower. So numba-cpu flushes by default, as
XLA/JAX on CPU do (PyTorch keeps unless `torch.set_flush_denormal(True)`). The numpy backend is
the IEEE reference and keeps; numba-cuda keeps: Numba's CUDA target flushes float32 only under
fastmath=True, which also drops NaN/Inf checks and precise division (and GPUs do subnormal FMA at
full speed). `RNNCOMP_DENORMALS=flush|keep` changes numba-cpu's default.
"""

from __future__ import annotations

import os
import platform

from ir import ArgumentError

ENV = "RNNCOMP_DENORMALS"
MODES = ("flush", "keep")
X86_64 = platform.machine().lower() in ("x86_64", "amd64")  # MXCSR's FTZ and DAZ bits
_WHY = {
    "numpy": "the numpy backend is the IEEE reference interpreter",
    "numba-cuda": (
        "Numba's CUDA target flushes float32 subnormals only with fastmath=True, which also drops "
        "NaN/Inf checks and precise division (GPUs compute with subnormals at full speed)"
    ),
}


def accepted(backend: str) -> tuple[str, ...]:
    """The modes `backend` can run on this machine."""
    return MODES if backend == "numba-cpu" and X86_64 else ("keep",)


def default(backend: str) -> str:
    """`backend`'s mode when compile() is given none: numba-cpu flushes (or $RNNCOMP_DENORMALS)."""
    if backend != "numba-cpu":
        return "keep"
    name = os.environ.get(ENV, "").strip()
    if not name:
        return "flush" if X86_64 else "keep"
    if name not in MODES:
        raise ArgumentError(f"environment variable {ENV}: expected 'flush' or 'keep', got {name!r}")
    return resolve(backend, name, f"environment variable {ENV}")


def resolve(backend: str, asked: str | None, where: str = "argument 'denormals'") -> str:
    """The mode a program of `backend` runs under: `asked` checked, or the backend's default."""
    if asked is None:
        return default(backend)
    if asked not in MODES:
        raise ArgumentError(f"{where}: expected 'flush' or 'keep' (or None: the backend's default), got {asked!r}")
    if asked not in accepted(backend):
        why = _WHY.get(backend) or f"flushing needs an x86-64 CPU (MXCSR); this one is {platform.machine()!r}"
        raise ArgumentError(f"{where}: {backend} cannot flush subnormals ({why}); use denormals='keep'")
    return asked
