"""The numba-cuda backend on device arrays, in Numba's CUDA simulator: outputs and gradients stay on
the device and agree with the numpy backend on host arrays; a device array of another GPU or dtype,
or where a host array is needed, is named; benchmarks/lstm_gpu.py's rnncomp side runs. The cells,
the simulator set-up and the comparison are tests/test_numba_cuda.py's."""

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
from ir import ArgumentError  # noqa: E402
from tests.support import random_args, random_lengths  # noqa: E402
from tests.test_numba_cuda import CELLS, B, T, _close, _simulator_settings, elman, lstm  # noqa: E402, F401


def test_device_arrays_stay_on_the_device():
    prog = rc.compile(lstm, length="T", backend="numba-cuda", dtype="float64")
    host = random_args(lstm, T, B, inits=True)
    dev = {k: cuda.to_device(v) for k, v in host.items()}
    L = random_lengths(T, B)
    L[0] = T - 1  # so the output is cut at T-1 steps and padded back on the device
    out = prog(lengths=L, **dev)
    assert all(getattr(v, "__cuda_ndarray__", False) for v in out.values())
    want = rc.compile(lstm, length="T", backend="numpy", dtype="float64")(lengths=L, **host)
    _close({k: v.copy_to_host() for k, v in out.items()}, want, "float64")
    for k, v in host.items():  # the inputs are left as they were
        np.testing.assert_array_equal(dev[k].copy_to_host(), v)
    assert all(isinstance(v, np.ndarray) for v in prog(**host).values())  # host arrays in, host arrays out


class _ForeignDeviceArray:
    """A stand-in for a CuPy array or a PyTorch tensor on GPU 1: the CUDA array interface and `.device`."""

    def __init__(self, a: np.ndarray, device: int):
        self.shape, self.dtype = a.shape, a.dtype
        self.device = type("Device", (), {"id": device})()
        self.__cuda_array_interface__ = {"shape": a.shape, "typestr": a.dtype.str, "data": (0, False), "version": 3}


def test_a_device_array_on_another_gpu_is_named():
    prog = rc.compile(elman, length="T", backend="numba-cuda", dtype="float64")
    args = random_args(elman, T, B)
    args["U"] = _ForeignDeviceArray(args["U"], device=1)
    with pytest.raises(ArgumentError, match=r"argument 'U': a device array on GPU 1, but the program runs on GPU 0"):
        prog(**args)


def test_a_device_array_of_another_dtype_is_named():
    prog = rc.compile(elman, length="T", backend="numba-cuda", dtype="float64")
    args = random_args(elman, T, B)
    args["x"] = cuda.to_device(args["x"].astype(np.float32))
    with pytest.raises(
        ArgumentError,
        match=r"argument 'x' \(seq\): a device array of dtype float32, but the program computes in float64",
    ):
        prog(**args)


def _on_device(value) -> bool:
    return bool(getattr(value, "__cuda_ndarray__", False))


@pytest.mark.parametrize(
    "options",
    [{}, {"checkpoint": 2}, {"truncate": 2}, {"checkpoint": "sqrt", "reverse": True}],
    ids=["plain", "checkpoint", "truncate", "sqrt-reverse"],
)
def test_training_on_device_arrays_stays_on_the_device(options):
    """vjp / value_and_grad on device arrays: outputs, gradients and the glue between segments
    (joins, sums, masks, zeros) on the device, equal to the numpy backend's on host arrays; with
    lengths, missing inits (zeros) and a device cotangent."""
    cell = CELLS["lstm"]
    host = random_args(cell, T, B, inits=True)
    host.pop("c")  # a missing init: zeros, made on the device
    dev = {k: cuda.to_device(v) for k, v in host.items()}
    L = random_lengths(T, B)
    cu = rc.compile(cell, length="T", backend="numba-cuda", dtype="float64", **options)
    ref = rc.compile(cell, length="T", backend="numpy", dtype="float64", **options)
    loss, grads = cu.value_and_grad("y", lengths=L, **dev)
    want_loss, want = ref.value_and_grad("y", lengths=L, **host)
    assert isinstance(loss, np.float64)
    _close({"loss": np.asarray(loss)}, {"loss": np.asarray(want_loss)}, "float64")
    assert all(_on_device(g) for g in grads.values()), {k: type(g).__name__ for k, g in grads.items()}
    _close({k: g.copy_to_host() for k, g in grads.items()}, want, "float64")
    out, backward = cu.vjp(lengths=L, **dev)
    assert all(_on_device(v) for v in out.values())
    cot = np.random.default_rng(1).standard_normal(out["h"].shape)
    got = backward({"h": cuda.to_device(cot)})
    _, want_back = ref.vjp(lengths=L, **host)
    _close({k: g.copy_to_host() for k, g in got.items()}, want_back({"h": cot}), "float64")
    for k, v in host.items():  # the inputs are left as they were
        np.testing.assert_array_equal(dev[k].copy_to_host(), v)


def test_device_training_errors_are_named():
    args = random_args(elman, T, B)
    dev = {k: cuda.to_device(v) for k, v in args.items()}
    cu = rc.compile(elman, length="T", backend="numba-cuda", dtype="float64")
    out, backward = cu.vjp(**dev)
    with pytest.raises(
        ArgumentError, match=r"cotangent 'y': a device array of dtype float32, but the program computes in float64"
    ):
        backward({"y": cuda.to_device(np.ones(out["y"].shape, np.float32))})
    with pytest.raises(ArgumentError, match=r"cotangent 'y': expected shape \(3, 2, 4\)"):
        backward({"y": cuda.to_device(np.ones((1, 2, 3)))})
    _, host_backward = cu.vjp(**args)
    with pytest.raises(
        ArgumentError, match=r"cotangent 'y': a device \(GPU\) array, but the forward ran on host arrays"
    ):
        host_backward({"y": cuda.to_device(np.ones(out["y"].shape))})


def test_device_arrays_where_host_arrays_are_needed_are_named():
    args = random_args(elman, T, B)
    dev = dict(args, W=cuda.to_device(args["W"]))
    cu = rc.compile(elman, length="T", backend="numba-cuda", dtype="float64")
    with pytest.raises(
        ArgumentError, match=r"argument 'W': a device \(GPU\) array, but backend 'numpy' runs on host arrays"
    ):
        rc.compile(elman, length="T", backend="numpy", dtype="float64")(**dev)
    with pytest.raises(
        ArgumentError, match=r"argument 'W': a device \(GPU\) array, but backend 'numba-cpu' runs on host arrays"
    ):
        rc.compile(elman, length="T", backend="numba-cpu", dtype="float64").value_and_grad("y", **dev)
    with pytest.raises(ArgumentError, match=r"argument 'lengths': pass lengths as a host \(NumPy\) array"):
        cu(lengths=cuda.to_device(np.array([1, 2])), **args)


@pytest.mark.parametrize("persistent", [False, True], ids=["per-step", "persistent"])
def test_the_gpu_benchmark_runs_its_rnncomp_side(persistent):
    """benchmarks/lstm_gpu.py's rnncomp implementation, at a tiny size in the simulator: it builds,
    its device path agrees with its host path (the script checks), and its results come back."""
    from benchmarks.lstm_gpu import GRADS, make_rnncomp

    r = np.random.default_rng(0)
    x, Wx, Wh, b = (r.standard_normal(s).astype(np.float32) * 0.3 for s in ((T, B, 3), (3, 16), (4, 16), (16,)))
    impl = make_rnncomp(x, Wx, Wh, b, persistent=persistent)
    got = impl.results()
    assert sorted(got) == sorted(("y",) + GRADS) and got["y"].shape == (T, B, 4)
