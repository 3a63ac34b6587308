"""Per-row inputs (`rc.Static`) on the numba-cuda backend, in Numba's CUDA simulator (tiny sizes):
forward and gradients against the numpy backend in every unroll mode, with lengths, truncate,
checkpoint and reverse, persistent and per-step kernels, and device arrays.

`NUMBA_ENABLE_CUDASIM=1` is set here before numba.cuda is imported (set it to 0 yourself to run
these tests on a real GPU). A module of its own for that reason; the rest is in tests/test_static.py.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
if "numba" in sys.modules and "numba.cuda" not in sys.modules:
    sys.modules["numba"].core.config.reload_config()  # numba read its config before this module ran
cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
if not cuda.is_available():
    pytest.skip(
        "numba.cuda was imported without the simulator before this module ran, and there is no GPU: "
        "run with NUMBA_ENABLE_CUDASIM=1",
        allow_module_level=True,
    )

import rnncomp as rc  # noqa: E402
from rnncomp.reference import run  # noqa: E402
from tests.test_static import arrays, cond, worst  # noqa: E402

T, B = 3, 2
LENGTHS = np.array([T, 1])


@pytest.fixture(scope="module", autouse=True)
def _simulator_settings(tmp_path_factory):
    """A fresh cache folder; a short GIL switch interval (the simulator's threads meet at every barrier)."""
    old_dir, old_switch = os.environ.get("RNNCOMP_CACHE_DIR"), sys.getswitchinterval()
    os.environ["RNNCOMP_CACHE_DIR"] = str(tmp_path_factory.mktemp("rnncomp-static-cuda-cache"))
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(old_switch)
    if old_dir is None:
        del os.environ["RNNCOMP_CACHE_DIR"]
    else:
        os.environ["RNNCOMP_CACHE_DIR"] = old_dir


def agree(opts: dict, lengths, persistent=None) -> None:
    a = arrays(12, T=T, B=B)
    kw = {} if lengths is None else {"lengths": lengths}
    p = rc.compile(cond, dtype="float64", backend="numba-cuda", backend_options={"persistent": persistent}, **opts)
    q = rc.compile(cond, dtype="float64", backend="numpy", **opts)
    assert worst(p(**kw, **a), q(**kw, **a) if opts.get("reverse") else run(cond, **kw, **a)) <= 1e-10
    out, backward = p.vjp(**kw, **a)
    _, backward2 = q.vjp(**kw, **a)
    cot = {k: np.random.default_rng(13).standard_normal(v.shape) for k, v in out.items()}
    want = backward2(cot)
    assert worst(backward(cot), want) <= 1e-10
    assert worst(backward(cot, wrt=["c"]), {"c": want["c"]}) <= 1e-10


@pytest.mark.parametrize("mode", ["loop", 2, "full"])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["all", "lengths"])
def test_every_mode_agrees(mode, lengths):
    agree({"unroll": mode}, lengths)


def test_per_step_kernels_agree():
    agree({"unroll": 2}, LENGTHS, persistent=False)


@pytest.mark.parametrize("opts", [{"truncate": 2}, {"checkpoint": 1}, {"reverse": True}], ids=str)
def test_truncate_checkpoint_and_reverse_agree(opts):
    agree(opts, LENGTHS)


def test_device_arrays_stay_on_the_device():
    host = arrays(14, T=T, B=B)
    dev = {k: cuda.to_device(v) for k, v in host.items()}
    p = rc.compile(cond, dtype="float64", backend="numba-cuda")
    out, backward = p.vjp(**dev)
    assert all(getattr(v, "__cuda_ndarray__", False) for v in out.values())
    cot = {k: cuda.to_device(np.ones(v.shape)) for k, v in out.items()}
    grads = backward(cot)
    assert getattr(grads["c"], "__cuda_ndarray__", False)
    o, backward2 = rc.compile(cond, dtype="float64", backend="numpy").vjp(**host)
    want = backward2({k: np.ones(v.shape) for k, v in o.items()})
    assert worst({k: v.copy_to_host() for k, v in grads.items()}, want) <= 1e-10
