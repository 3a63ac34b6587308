"""Where the CUDA compiler for real GPUs lies on this machine: NVVM and NVRTC (loaded by numba-cuda)
and ptxas, from NVIDIA's pip wheels (`pip install rnncomp[cuda-check]`) or a CUDA toolkit. None of it
needs a GPU or a driver; a missing piece is an error naming the package that brings it."""

from __future__ import annotations

from functools import cache

from .errors import CudaBackendError

# what is looked for -> the pip package that brings it (CUDA 13 builds, as numba-cuda's cu13 extra)
PACKAGES = {"nvvm": "nvidia-nvvm", "nvrtc": "nvidia-cuda-nvrtc", "ptxas": "nvidia-cuda-nvcc"}


class CudaToolchainError(CudaBackendError):
    """A part of the CUDA compiler (NVVM, NVRTC, ptxas) is not installed."""


def _missing(what: str, why: str) -> CudaToolchainError:
    return CudaToolchainError(
        f"compiling kernels for a real GPU needs {what}, which is not installed ({why}): "
        f"`pip install {PACKAGES[what]}` (all of them: `pip install 'rnncomp[cuda-check]'`); "
        "running kernels (on a GPU or in the simulator) does not need it"
    )


def find_library(name: str) -> None:
    """Raise the error naming the package when the shared library `name` ("nvvm", "nvrtc") cannot be loaded."""
    try:
        from cuda import pathfinder
    except ImportError as e:
        raise CudaBackendError(
            "compiling kernels for a real GPU needs numba-cuda (and its cuda-pathfinder): "
            "`pip install 'rnncomp[cuda-check]'`"
        ) from e
    try:
        pathfinder.load_nvidia_dynamic_lib(name)
    except Exception as e:  # noqa: BLE001  (DynamicLibNotFoundError, or a library that fails to load)
        raise _missing(name, f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}") from e


def find_ptxas() -> str:
    """The path of ptxas (the wheel's, a toolkit's under CUDA_HOME, or on PATH)."""
    path = None
    try:
        from cuda import pathfinder

        path = pathfinder.find_nvidia_binary_utility("ptxas")
    except Exception:  # noqa: BLE001  (no pathfinder, or one that cannot look)
        import shutil

        path = shutil.which("ptxas")
    if not path:
        raise _missing("ptxas", "no ptxas in the nvidia-cuda-nvcc wheel, under CUDA_HOME or on PATH")
    return str(path)


@cache
def versions() -> str:
    """The compiler's versions (a cache key: a new NVVM or ptxas compiles anew)."""
    from importlib import metadata

    out = []
    for dist in ("numba-cuda", *PACKAGES.values()):
        try:
            out.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            out.append(f"{dist}=none")
    return " ".join(out)


def check() -> str:
    """ptxas's path, after making sure NVVM and NVRTC load (each missing piece: its package named)."""
    for name in ("nvvm", "nvrtc"):
        find_library(name)
    return find_ptxas()


__all__ = ["PACKAGES", "CudaToolchainError", "check", "find_library", "find_ptxas", "versions"]
