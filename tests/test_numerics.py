"""Numerics at the edges on numba-cpu: every op, forward and gradient, against the float64 oracle (the
numpy backend) at magnitudes from 1e-300 to 1e300, at inf, 0 and NaN; a derivative at NaN is NaN
wherever it depends on the value; the float32 tanh/sigmoid approximations' bounds, on the function and
on its derivative, through compiled programs. One cell holds every op (one Numba compile)."""

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
from rnncomp import Seq  # noqa: E402
from rnncomp.backends.numba_cpu import approx  # noqa: E402
from rnncomp.dsl import apply  # noqa: E402
from tests.test_ops import USES  # noqa: E402

N = 6
UNARY = {
    "identity": lambda a: apply("identity", a),
    "neg": lambda a: -a,
    "tanh": rc.tanh,
    "sigmoid": rc.sigmoid,
    "relu": rc.relu,
    "exp": rc.exp,
    "log": rc.log,
    "softplus": rc.softplus,
    "sqrt": rc.sqrt,
    "rsqrt": rc.rsqrt,
    "abs": abs,
    "erf": rc.erf,
    "gelu": rc.gelu,
    "gelu_tanh": lambda a: rc.gelu(a, approximate="tanh"),
    "pow": lambda a: a**1.5,
    "pow_neg": lambda a: a**-0.5,
    "pow_int": lambda a: a**3.0,
    "cast": lambda a: rc.cast(a, "f32"),
    "sum": lambda a: rc.sum(a, axis=-1, keepdims=True),
    "mean": lambda a: rc.mean(a, axis=-1, keepdims=True),
    "max": lambda a: rc.max(a, axis=-1, keepdims=True),
    "softmax": rc.softmax,
    "log_softmax": rc.log_softmax,
    "split": lambda a: rc.split(a, 2)[1],
    "slice": lambda a: rc.slice(a, 1, 4),
    "constant": lambda a: a * rc.constant(np.linspace(0.5, 1.5, N), "f64"),
    "sum_to": lambda a: apply("sum_to", a, shape=(N,)),
    "broadcast_to": lambda a: apply("broadcast_to", rc.sum(a, axis=0), shape=("B", N)),
    "expand_dims": lambda a: apply("expand_dims", a, axes=(1,)),
    "pad": lambda a: apply("pad", a, axis=-1, before=2, after=1),
    "dropout": lambda a: rc.dropout(a, 0.3),  # no seed in the sweep's calls: the identity, exactly
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "minimum": rc.minimum,
    "maximum": rc.maximum,
    "less": rc.less,
    "greater": rc.greater,
    "less_equal": rc.less_equal,
    "greater_equal": rc.greater_equal,
    "equal": rc.equal,
    "not_equal": rc.not_equal,
    "where": lambda a, b: rc.where(a, a, b),
    "concat": lambda a, b: rc.concat([a, b], axis=-1),
    "matmul_tn": lambda a, b: apply("matmul_tn", a, b),
    "chain": lambda a, b: (a + b) - a,  # (a + b) first, as written: no reassociation to b + (a - a)
}
# The derivative depends on the operand's value: at a NaN operand it must be NaN (not a comparison's 0 or 1).
NAN_DERIVATIVE = {
    "tanh", "sigmoid", "relu", "exp", "log", "softplus", "sqrt", "rsqrt", "abs", "erf", "gelu", "gelu_tanh",
    "pow", "pow_neg", "pow_int", "max", "softmax", "log_softmax", "minimum", "maximum", "mul", "div",
}  # fmt: skip
SCALES = [1e-300, 1e-8, 1.0, 1e8, 1e12, 1e16, 1e100, 1e300, np.inf, 0.0]
PA = np.array([1.0, 1.0, -1.0, 0.5, 1.0, -0.25])  # ties at the max (log_softmax's -log 3 at any scale)
PB = np.array([0.5, 1.0, -1.0, 2.0, -0.3, 1.0])
NAN_ROW = len(SCALES)  # a's first and b's third entry NaN


def _sweep_cell() -> rc.Cell:
    g = rc.Graph("edges")
    W = g.param("W", (N, N), "f64")
    for op, f in UNARY.items():
        g.output(f"y_{op}", f(g.seq(f"a_{op}", ("B", N), "f64")))
    for op, f in BINARY.items():
        g.output(f"y_{op}", f(g.seq(f"a_{op}", ("B", N), "f64"), g.seq(f"b_{op}", ("B", N), "f64")))
    g.output("y_matmul", g.seq("a_matmul", ("B", N), "f64") @ W)
    g.output("y_transpose", g.seq("a_transpose", ("B", N), "f64") @ apply("transpose", W))
    return g.build()


def _operands() -> tuple[np.ndarray, np.ndarray]:
    a = np.array([s * PA for s in SCALES] + [np.r_[np.nan, PA[1:]]])
    b = np.array([s * PB for s in SCALES] + [np.r_[PB[:2], np.nan, PB[3:]]])
    a[SCALES.index(np.inf)] = np.inf * PA  # inf * 0.5 etc.: no NaN from 0 * inf in the inputs
    return a[None], b[None]


def _mismatch(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Where got differs from want beyond 1e-13 relative (NaN and inf must match exactly)."""
    got, want = np.broadcast_arrays(got, want)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(invalid="ignore"):
        close = np.abs(got - want) <= 1e-13 * np.maximum(np.abs(got), np.abs(want))
    return ~(same | close)


@pytest.fixture(scope="module")
def sweep():
    cell = _sweep_cell()
    a, b = _operands()
    args = {s.name: (a if s.name.startswith("a_") else b).copy() for s in cell.seqs}
    args["a_chain"] = np.full_like(a, 1e16)  # (1e16 + 1) - 1e16 is 0 in float64, as NumPy computes it
    args["b_chain"] = np.ones_like(b)
    args["W"] = np.eye(N) * 0.5 + 0.1
    cot = None
    res = {}
    for backend in ("numpy", "numba-cpu"):
        prog = rc.compile(cell, length=1, dtype="float64", backend=backend)
        with np.errstate(all="ignore"):
            out, backward = prog.vjp(**args)
            if cot is None:
                rng = np.random.default_rng(0)
                cot = {k: rng.standard_normal(v.shape) for k, v in out.items()}
            res[backend] = (out, backward(cot))
    return cell, args, res


def test_the_sweep_covers_every_op_of_a_cell(sweep):
    cell = sweep[0]
    assert set(USES) <= {n.op for n in cell.nodes()}


def test_every_op_on_numba_cpu_is_within_the_float64_oracle_up_to_1e300(sweep):
    _, args, res = sweep
    wrong = []
    for part in (0, 1):
        want, got = res["numpy"][part], res["numba-cpu"][part]
        for k in want:
            bad = _mismatch(got[k], want[k])
            for i in np.argwhere(bad)[:2]:
                i = tuple(i)
                row = f"scale {SCALES[i[1]]:g}" if i[1] < len(SCALES) else "the NaN row"
                wrong.append(
                    f"{'gradient' if part else 'output'} {k} at {i} ({row}): {got[k][i]!r}, oracle {want[k][i]!r}"
                )
    assert not wrong, "\n".join(wrong)
    assert np.all(res["numba-cpu"][0]["y_chain"] == 0.0)
    assert np.allclose(res["numba-cpu"][0]["y_log_softmax"][0, SCALES.index(1e16), [0, 1, 4]], -np.log(3), rtol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
def test_a_derivative_that_depends_on_the_value_is_nan_at_nan(sweep, backend):
    grads = sweep[2][backend][1]
    missing = []
    for op in sorted(NAN_DERIVATIVE):
        if op in BINARY:  # a NaN in either operand makes the derivative for the other value-dependent one NaN
            ok = np.isnan(grads[f"b_{op}"][0, NAN_ROW, 0]) and np.isnan(grads[f"a_{op}"][0, NAN_ROW, 2])
            if op in ("minimum", "maximum"):
                ok = ok and np.isnan(grads[f"a_{op}"][0, NAN_ROW, 0]) and np.isnan(grads[f"b_{op}"][0, NAN_ROW, 2])
        else:
            ok = np.isnan(grads[f"a_{op}"][0, NAN_ROW, 0])
        if not ok:
            missing.append(op)
    assert not missing, f"finite derivative at NaN for {missing}"


def _cuda_ready() -> bool:
    try:
        from numba import cuda
    except ImportError:
        return False
    return cuda.is_available()


@rc.cell
def kinks(a: Seq["B", 3], b: Seq["B", 3]):
    return {
        "relu": rc.relu(a),
        "abs": abs(a),
        "min": rc.minimum(a, b),
        "max": rc.maximum(a, b),
        "top": rc.max(a, axis=-1, keepdims=True),
    }


@pytest.mark.parametrize(
    "backend",
    ["numpy", "numba-cpu", pytest.param("numba-cuda", marks=pytest.mark.skipif(not _cuda_ready(), reason="no CUDA"))],
)
def test_the_rules_that_compare_give_nan_at_nan_on_every_backend(backend):
    """relu, abs, minimum/maximum and max decide by comparisons, which are false at NaN."""
    a = np.array([[[np.nan, 2.0, -1.0], [0.5, -2.0, 3.0]]])
    b = np.array([[[1.0, 1.0, np.nan], [1.0, 1.0, 1.0]]])
    prog = rc.compile(kinks, length=1, dtype="float64", backend=backend)
    out, backward = prog.vjp(a=a, b=b)
    for k, ga_nan, gb_nan in [
        ("relu", [0], []),
        ("abs", [0], []),
        ("min", [0, 2], [0, 2]),
        ("max", [0, 2], [0, 2]),
        ("top", [0, 1, 2], []),
    ]:
        g = backward({k: np.ones_like(np.asarray(out[k]))})
        ga, gb = (np.asarray(g[n])[0, 0] for n in ("a", "b"))
        assert np.isnan(ga).nonzero()[0].tolist() == ga_nan, (k, ga)
        assert np.isnan(gb).nonzero()[0].tolist() == gb_nan, (k, gb)
        assert not np.isnan(np.asarray(g["a"])[0, 1]).any()  # the row without NaN keeps its finite gradient


def _f32_grid() -> np.ndarray:
    x = np.concatenate([np.linspace(-40, 40, 400_001), np.geomspace(1e-30, 1e4, 2_001), [1e30, 3e38, np.inf]])
    return np.concatenate([x, -x]).astype(np.float32)


def test_float32_tanh_and_sigmoid_and_their_derivatives_stay_within_their_bounds():
    """approx.py's bounds, through a compiled float32 program (its grad rules: 1 - y^2 and y (1 - y))."""

    @rc.cell
    def act(x: Seq["B", 1]):
        return {"t": rc.tanh(x), "s": rc.sigmoid(x)}

    x = _f32_grid()
    n = x.size
    prog = rc.compile(act, length=1, dtype="float32", backend="numba-cpu")
    out, backward = prog.vjp(x=x.reshape(1, n, 1))
    dt = backward({"t": np.ones((1, n, 1), np.float32)})["x"].ravel()
    ds = backward({"s": np.ones((1, n, 1), np.float32)})["x"].ravel()
    t, s = out["t"].ravel().astype(np.float64), out["s"].ravel().astype(np.float64)
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        true_dt = 1 / np.cosh(x64) ** 2
        true_s = 1 / (1 + np.exp(-x64))
    true_ds = true_s * (1 - true_s)
    assert np.max(np.abs(t - np.tanh(x64))) <= approx.TANH_F32_MAX_ABS_ERROR
    assert np.max(np.abs(s - true_s)) <= approx.SIGMOID_F32_MAX_ABS_ERROR
    assert np.max(np.abs(dt - true_dt)) <= approx.TANH_F32_DERIVATIVE_MAX_ABS_ERROR
    assert np.max(np.abs(ds - true_ds)) <= approx.SIGMOID_F32_DERIVATIVE_MAX_ABS_ERROR
    assert np.all(dt[np.abs(x64) >= 7.91] == 0), x[(np.abs(x64) >= 7.91) & (dt != 0)]  # no plateau
    assert np.all(ds[np.abs(x64) >= 15.82] == 0), x[(np.abs(x64) >= 15.82) & (ds != 0)]
    assert np.all((dt >= 0) & (dt <= 1)) and np.all((ds >= 0) & (ds <= 0.25))
    bad = np.array([np.nan], np.float32).reshape(1, 1, 1)
    out, backward = prog.vjp(x=bad)
    assert np.isnan(out["t"]).all() and np.isnan(backward({"t": np.ones_like(bad)})["x"]).all()
