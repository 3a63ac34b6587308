"""The op-table rows of the newer ops (sqrt ... gelu: see NEW) on the compiled backends, and their
numerics on every backend: forward against the NumPy oracle and gradients against finite differences
in float64, float32 within 1e-5; NaN, inf and the edges (rsqrt and pow at 0, gelu's tails) as NumPy.

One cell carries every row (a Numba compile costs seconds, the CUDA simulator more), so a wrong op
shows in its output. numba-cuda runs in Numba's CUDA simulator, at tiny sizes.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
if "numba" in sys.modules and "numba.cuda" not in sys.modules:
    sys.modules["numba"].core.config.reload_config()  # numba read its config before this module ran
pytest.importorskip("numba")

import rnncomp as rc  # noqa: E402
from rnncomp import Param, Seq, State  # noqa: E402
from rnncomp.reference import run as oracle  # noqa: E402
from tests.gradcheck import check_vjp  # noqa: E402
from tests.support import max_err, random_args  # noqa: E402
from tests.test_ops import KINKS, USES  # noqa: E402

NEW = [
    "sqrt",
    "rsqrt",
    "abs",
    "pow",
    "erf",
    "gelu",
    "minimum",
    "maximum",
    "less",
    "greater",
    "less_equal",
    "greater_equal",
    "equal",
    "not_equal",
]


def _cuda_ready() -> bool:
    try:
        from numba import cuda
    except ImportError:
        return False
    return cuda.is_available()


BACKENDS = [
    "numpy",
    "numba-cpu",
    pytest.param("numba-cuda", marks=pytest.mark.skipif(not _cuda_ready(), reason="no CUDA")),
]


@pytest.fixture(scope="module", autouse=True)
def _settings(tmp_path_factory):
    """A fresh compile cache; a short GIL switch interval for the simulator's threads (see test_numba_cuda)."""
    old_dir, old_switch = os.environ.get("RNNCOMP_CACHE_DIR"), sys.getswitchinterval()
    os.environ["RNNCOMP_CACHE_DIR"] = str(tmp_path_factory.mktemp("rnncomp-ops-cache"))
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(old_switch)
    if old_dir is None:
        del os.environ["RNNCOMP_CACHE_DIR"]
    else:
        os.environ["RNNCOMP_CACHE_DIR"] = old_dir


@rc.cell
def rows(x: Seq["B", 6], h: State["B", 6], W: Param[6, 6]):
    """Every NEW op's test_ops row, summed into one recurrence."""
    total = None
    for op in NEW:
        term = USES[op](x, h, W)
        total = term if total is None else total + term
    h = rc.tanh(total * 0.1)
    return {"h": h, "y": h * 1.5}


def test_the_cell_holds_every_new_op():
    assert {n.op for n in rows.nodes()} >= set(NEW)
    assert set(NEW) <= set(USES)


def _args(dtype: str) -> dict:
    args = random_args(rows, 3, 2, seed=3, inits=True)
    args["x"] = np.where(np.abs(args["x"]) < 0.2, 0.5, args["x"])  # away from the kinks at 0 (KINKS)
    assert {"abs", "less", "minimum"} <= set(KINKS)
    return {k: v.astype(dtype) for k, v in args.items()}


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_float64_against_the_oracle_and_finite_differences(backend):
    prog = rc.compile(rows, length="T", unroll="loop", dtype="float64", backend=backend)
    args = _args("float64")
    assert max_err(prog(**args), oracle(rows, **args, strict=True)) <= 1e-10
    assert check_vjp(prog, args, seed=2) <= 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_float32_within_1e_5(backend):
    args32 = _args("float32")
    want = oracle(rows, **{k: v.astype(np.float64) for k, v in args32.items()}, strict=True)
    prog = rc.compile(rows, length="T", unroll="loop", dtype="float32", backend=backend)
    got = prog(**args32)
    for k, w in want.items():
        assert np.asarray(got[k]).dtype == np.float32
        assert float(np.max(np.abs(np.asarray(got[k], np.float64) - w))) <= 1e-5 * max(1.0, float(np.max(np.abs(w)))), k
    # gradients in float32 against the float64 ones
    g64 = rc.compile(rows, length="T", unroll="loop", dtype="float64", backend="numpy")
    _, want_g = g64.value_and_grad("y", **{k: v.astype(np.float64) for k, v in args32.items()})
    _, got_g = prog.value_and_grad("y", **args32)
    for k, w in want_g.items():
        err = float(np.max(np.abs(np.asarray(got_g[k], np.float64) - w)))
        assert err <= 1e-5 * max(1.0, float(np.max(np.abs(w)))), (k, err)


# ---------------------------------------------------------------- numerics at the edges


@rc.cell
def edges(x: Seq["B", 8], h: State["B", 8]):
    """Each op straight on the input, one output each, so a NaN stays where NumPy puts it."""
    return {
        "h": h,
        "sqrt": rc.sqrt(x),
        "rsqrt": rc.rsqrt(x),
        "abs": abs(x),
        "pow_half": x**0.5,
        "pow_neg": x**-1.0,
        "pow_zero": x**0.0,
        "pow_three": x**3,
        "erf": rc.erf(x),
        "gelu": rc.gelu(x),
        "gelu_tanh": rc.gelu(x, approximate="tanh"),
        "minimum": rc.minimum(x, h),
        "maximum": rc.maximum(h, x),
        "less": x < h,
        "greater_equal": x >= h,
        "equal": rc.equal(x, h),
        "not_equal": rc.not_equal(x, h),
    }


SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -2.0, 1e-30, -12.0])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_edges_as_numpy(backend, dtype):
    x = np.stack([np.stack([SPECIAL, np.linspace(-3, 3, 8)])] * 2).astype(dtype)  # (T=2, B=2, 8)
    h0 = np.stack([np.zeros(8), SPECIAL[::-1]]).astype(dtype)
    with np.errstate(all="ignore"):
        want = rc.compile(edges, backend="numpy", dtype=dtype)(x=x, h=h0)
        got = rc.compile(edges, backend=backend, dtype=dtype)(x=x, h=h0)
    for k, w in want.items():
        g = np.asarray(got[k])
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=k)
        np.testing.assert_array_equal(np.isposinf(g), np.isposinf(w), err_msg=k)
        np.testing.assert_array_equal(np.isneginf(g), np.isneginf(w), err_msg=k)
        ok = np.isfinite(w)
        np.testing.assert_allclose(g[ok], w[ok], rtol=1e-5 if dtype == "float32" else 1e-12, atol=0, err_msg=k)


def test_edge_values_are_the_documented_ones():
    with np.errstate(all="ignore"):
        out = rc.compile(edges, backend="numpy", dtype="float64")(
            x=np.array([[[0.0, -1.0, 4.0, np.nan, -30.0, 40.0, -np.inf, 2.0]]]), h=np.full((1, 8), 2.0)
        )
    o = {k: v[0, 0] for k, v in out.items()}
    assert o["rsqrt"][0] == np.inf and np.isnan(o["rsqrt"][1]) and o["rsqrt"][2] == 0.5
    assert o["pow_neg"][0] == np.inf and o["pow_zero"][0] == 1.0 and o["pow_zero"][3] == 1.0  # 0**0, nan**0
    assert np.isnan(o["pow_half"][1]) and o["pow_three"][1] == -1.0
    assert np.isnan(o["minimum"][3]) and np.isnan(o["maximum"][3])  # NaN propagates, as np.minimum
    assert o["less"][3] == 0.0 and o["not_equal"][3] == 1.0 and o["equal"][7] == 1.0  # NaN compares false
    assert o["gelu"][5] == 40.0 and 0.0 > o["gelu"][4] > -1e-190  # erfc: the tail -30 Phi(-30) ~ -1.5e-196 survives
    assert np.isnan(o["gelu"][6])  # -inf * Phi(-inf) = -inf * 0, as PyTorch
    assert o["gelu_tanh"][5] == 40.0 and -1e-300 < o["gelu_tanh"][4] <= 0.0


@rc.cell
def kinks(x: Seq["B", 4], y: Seq["B", 4], h: State["B", 4]):
    h = h + abs(x) + rc.maximum(x, y) + rc.minimum(x, y) + x**0.0 + (x < y) + rc.sqrt(y * y)
    return {"h": h}


def test_subgradients_follow_pytorch():
    """d|x| = 0 at 0; a tie of minimum / maximum splits the gradient in halves; d(x ** 0) = 0; a
    comparison has zero gradient; d sqrt at 0 is inf (y * y has a 0 gradient there: inf * 0 = NaN, as PyTorch)."""
    prog = rc.compile(kinks, length=1, unroll="full", backend="numpy", dtype="float64")
    x = np.array([[[0.0, 1.0, 2.0, -1.0]]])
    y = np.array([[[0.0, 1.0, 3.0, 1.0]]])
    _, back = prog.vjp(x=x, y=y)
    with np.errstate(all="ignore"):
        g = back({"h": np.ones((1, 4))})
    np.testing.assert_array_equal(g["x"][0, 0, :3], [0.0 + 1.0, 1.0 + 1.0, 1.0 + 1.0])  # abs + (max, min) split
    assert g["x"][0, 0, 3] == -1.0 + 1.0  # abs: -1; min: x wins
    assert np.isnan(g["y"][0, 0, 0]) and g["y"][0, 0, 2] == 1.0 + 1.0  # sqrt(y*y) at 0: inf * 0


@pytest.mark.parametrize("mode", ["loop", "full"])
def test_rows_print_and_parse_back_in_both_text_forms(mode):
    """The cell form (ir/printer.py) and the program form of every stage, forward and backward."""
    from ir import parse_cell, print_cell
    from ir.program_printer import print_program
    from tests.test_program_text import assert_round_trip, stages_of

    assert print_cell(parse_cell(print_cell(rows))) == print_cell(rows)
    prog = rc.compile(rows, length=3 if mode == "full" else "T", unroll=mode, backend="numpy")
    stages = stages_of(prog, mode, [{}, {"grad": True}])
    texts = [print_program(p) for p in stages.values()]
    assert all(any(f"{op}(" in t for t in texts) for op in NEW)  # (loop bodies included)
    for where, p in stages.items():
        assert_round_trip(p, where)
