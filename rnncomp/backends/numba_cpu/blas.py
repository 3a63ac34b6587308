"""The BLAS that generated code calls, chosen once at import and bound to fixed symbol names.

In order of preference: Intel MKL (the `mkl` package's `libmkl_rt`), NumPy's bundled OpenBLAS,
else Numba's `np.dot` (SciPy's BLAS). `RNNCOMP_BLAS=mkl|openblas|numba` picks one; a pick that is
not available is an error naming what is missing. Measured on 2 Sapphire Rapids cores (float32, one
thread): 32x256 @ 256x1024 in 139 us (MKL) vs 232 (OpenBLAS), 3200x128 @ 128x1024 in 6.4 ms vs
8.3; with MKL's packed-B API (gemm.pack_b: a recurrent weight packed once per call) the step GEMM
takes 120 us.

Threads: one pool, Numba's. MKL runs on GNU OpenMP, the same libgomp as Numba's `omp` threading
layer (which rnncomp asks Numba to prefer), and threads a large GEMM itself: 2 threads reached
206-237 GFLOP/s on an LSTM's weight-gradient shapes where two single-threaded halves reached 144-165.
Inside a row block (already on a worker thread) every call is limited to one thread. Where MKL
cannot run on GNU OpenMP, it runs sequentially and gemm.py splits large products itself, as it
does for OpenBLAS (whose own threads would otherwise spin beside Numba's).

PyTorch: its wheel links its own MKL statically and exports those symbols, while libmkl_rt opens MKL's
libraries RTLD_GLOBAL on the first GEMM. torch loaded after that binds its thousands of MKL references
(at import: RTLD_NOW) to ours, another version with the ILP64 interface set, and segfaults in its own
GEMMs (nn.LSTM on a PackedSequence). Loaded before, it binds its own and both run. So the automatic
choice takes MKL only where torch is not installed or already imported, else OpenBLAS; with an explicit
RNNCOMP_BLAS=mkl, `import torch` after MKL's first GEMM is a BlasError saying so, never a crash.

Compiled code is the same whichever BLAS is chosen, so Numba may cache it on disk: every library
is called with 64-bit sizes (MKL through its ILP64 interface) under the same symbol names
(`rnncomp_sgemm`, ...), registered with LLVM by name on import, and what a provider lacks (the
pack API outside MKL) is bound to a stand-in that is never called. Which BLAS runs is `MODE`, an
argument of the GEMM helpers that generated code passes (generated modules are keyed by `BLAS`).
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys

import llvmlite.binding as llvm
import numpy as np
from numba import types

ENV = "RNNCOMP_BLAS"
NUMBA, OPENBLAS, MKL, MKL_OMP = 0, 1, 2, 3  # MODE: what the helpers call (MKL_OMP threads itself)
_ILP64, _SEQUENTIAL, _GNU = 1, 1, 3  # MKL_INTERFACE_ILP64, MKL_THREADING_SEQUENTIAL, MKL_THREADING_GNU
SYMBOLS = ("sgemm", "dgemm", "sgemm_pack_get_size", "dgemm_pack_get_size", "sgemm_pack", "dgemm_pack")
SYMBOLS += ("sgemm_compute", "dgemm_compute")


class BlasError(RuntimeError):
    """The BLAS asked for with RNNCOMP_BLAS cannot be loaded."""


def _mkl_paths() -> list[str]:
    """libmkl_rt from the `mkl` wheel (installed under the environment's lib/), else the loader's."""
    found = []
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        found += sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")), reverse=True)
    return found + ["libmkl_rt.so.2", "libmkl_rt.so"]


def _gnu_openmp() -> bool:
    """Make libgomp's symbols global (MKL's GNU threading layer needs them) and ask Numba to
    prefer its `omp` layer, on the same libgomp, unless the user chose a layer."""
    try:
        ctypes.CDLL("libgomp.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return False
    import numba

    if numba.config.THREADING_LAYER == "default" and "NUMBA_THREADING_LAYER_PRIORITY" not in os.environ:
        numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]
    return numba.config.THREADING_LAYER in ("default", "omp")


def _load_mkl() -> tuple[int, str, dict] | None:
    for path in _mkl_paths():
        try:
            lib = ctypes.CDLL(path)
            fns = {s: getattr(lib, f"cblas_{s}") for s in SYMBOLS}
        except (OSError, AttributeError):
            continue
        if lib.MKL_Set_Interface_Layer(_ILP64) != _ILP64:
            continue  # another library set MKL up with 32-bit ints first
        layer = lib.MKL_Set_Threading_Layer(_GNU if _gnu_openmp() else _SEQUENTIAL)
        fns["threads_local"] = lib.MKL_Set_Num_Threads_Local  # each call says how many threads it may use
        where = os.path.realpath(path) if os.path.exists(path) else path
        return (MKL_OMP if layer == _GNU else MKL), where, fns
    return None


def _torch_pending() -> bool:
    """True where torch is installed but not imported yet (then MKL must not come first: see above)."""
    if "torch" in sys.modules:
        return False
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def _mkl_mapped(where: str) -> bool:
    """Whether MKL's libraries (opened by libmkl_rt beside `where` on the first GEMM) are in the process."""
    core = os.path.join(os.path.dirname(where), "libmkl_core.so")
    try:
        with open("/proc/self/maps") as maps:
            return any(core in line for line in maps)
    except OSError:
        return True  # cannot tell: assume the worst


class _LateTorchGuard:
    """A meta path finder that refuses `import torch` once this MKL is in the process."""

    def __init__(self, where: str):
        self.where = where

    def find_spec(self, name, path=None, target=None):
        if name == "torch" and _mkl_mapped(self.where):
            raise BlasError(
                f"import torch after rnncomp ran a GEMM on MKL ({ENV}=mkl, {self.where}): torch's own MKL "
                "would bind to this one and crash; import torch before rnncomp's first call, or set "
                f"{ENV}=openblas (the automatic choice where torch is installed)"
            )
        return None


def _load_openblas() -> tuple[int, str, dict] | None:
    """NumPy's bundled OpenBLAS (ILP64), with its per-thread thread count setter (>= 0.3.27)."""
    here = os.path.dirname(np.__file__)
    pattern = {"linux": "../numpy.libs/libscipy_openblas64_*.so", "darwin": ".dylibs/libscipy_openblas64_*.dylib"}
    for path in sorted(glob.glob(os.path.join(here, pattern.get(sys.platform, "-")))):
        try:
            lib = ctypes.CDLL(path)
            fns = {"sgemm": lib.scipy_cblas_sgemm64_, "dgemm": lib.scipy_cblas_dgemm64_}
            fns["threads_local"] = lib.openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        return OPENBLAS, os.path.realpath(path), fns
    return None


def _choose() -> tuple[int, str, dict]:
    want = os.environ.get(ENV, "").strip().lower() or "auto"
    loaders = {"mkl": _load_mkl, "openblas": _load_openblas}
    if want not in ("auto", "numba", *loaders):
        raise BlasError(f"{ENV}={want!r}: expected one of auto, mkl, openblas, numba")
    pending = _torch_pending()
    auto = ("openblas",) if pending else ("mkl", "openblas")
    for name in auto if want == "auto" else (want,) if want != "numba" else ():
        got = loaders[name]()
        if got is not None:
            if name == "mkl" and pending:
                sys.meta_path.insert(0, _LateTorchGuard(got[1]))
            return got
        if want != "auto":
            hint = "pip install mkl" if name == "mkl" else "NumPy >= 2 bundles OpenBLAS >= 0.3.27"
            raise BlasError(f"{ENV}={want}: {name} could not be loaded ({hint})")
    return NUMBA, "", {}


MODE, _PATH, _FNS = _choose()
BLAS = f"{['numba', 'openblas', 'mkl', 'mkl-gnu-openmp'][MODE]}:{_PATH}"  # in the cache key


def _never_called(*args):  # pragma: no cover - a stand-in for a function this BLAS lacks
    raise SystemExit(f"rnncomp internal error: a BLAS function that {BLAS} lacks was called")


_STAND_IN = ctypes.CFUNCTYPE(None)(_never_called)
_ADDRESS = {name: ctypes.cast(fn, ctypes.c_void_p).value for name, fn in _FNS.items()}
_ADDRESS.setdefault("threads_local", ctypes.cast(ctypes.CDLL(None).abs, ctypes.c_void_p).value)  # int(int)
for _name in SYMBOLS + ("threads_local",):
    llvm.add_symbol(f"rnncomp_{_name}", _ADDRESS.get(_name) or ctypes.cast(_STAND_IN, ctypes.c_void_p).value)

_n, _i, _p, _f, _d = types.int64, types.int32, types.intp, types.float32, types.float64
ROW_MAJOR, NO_TRANS, TRANS, PACKED_B, B_MATRIX = 101, 111, 112, 151, 162
sgemm = types.ExternalFunction("rnncomp_sgemm", types.void(_i, _i, _i, _n, _n, _n, _f, _p, _n, _p, _n, _f, _p, _n))
dgemm = types.ExternalFunction("rnncomp_dgemm", types.void(_i, _i, _i, _n, _n, _n, _d, _p, _n, _p, _n, _d, _p, _n))
threads_local = types.ExternalFunction("rnncomp_threads_local", types.int32(types.int32))
spack_size = types.ExternalFunction("rnncomp_sgemm_pack_get_size", types.uintp(_i, _n, _n, _n))
dpack_size = types.ExternalFunction("rnncomp_dgemm_pack_get_size", types.uintp(_i, _n, _n, _n))
spack = types.ExternalFunction("rnncomp_sgemm_pack", types.void(_i, _i, _i, _n, _n, _n, _f, _p, _n, _p))
dpack = types.ExternalFunction("rnncomp_dgemm_pack", types.void(_i, _i, _i, _n, _n, _n, _d, _p, _n, _p))
scompute = types.ExternalFunction(
    "rnncomp_sgemm_compute", types.void(_i, _i, _i, _n, _n, _n, _p, _n, _p, _n, _f, _p, _n)
)
dcompute = types.ExternalFunction(
    "rnncomp_dgemm_compute", types.void(_i, _i, _i, _n, _n, _n, _p, _n, _p, _n, _d, _p, _n)
)
