"""rc.layer_norm and the LayerNorm LSTM example (examples/layernorm_lstm.py): PyTorch's F.layer_norm
forward and gradients, finite differences, every unroll mode and backend against the oracle, bad input.
(The numba-cuda simulator's agreement is in tests/test_numba_cuda.py, with the other cells.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnncomp as rc
from ir import DSLError, ShapeError
from rnncomp import Param, Seq
from rnncomp.reference import run
from tests.gradcheck import check_vjp
from tests.hand_rnns import load_example
from tests.support import max_err, random_args, random_lengths

EX = load_example("layernorm_lstm")
B = 3


def _args(cell, T, seed=0, inits=True):
    args = random_args(cell, T, B, seed=seed, inits=inits)
    for k in ("gx", "gh", "gc"):
        args[k] = 1.0 + args[k]  # gains near 1, as trained ones
    return args


@pytest.mark.parametrize("inits", [False, True])
def test_matches_pytorch_forward_and_gradients(inits):
    cell = EX.make_layernorm_lstm(5, 4, eps=1e-3)
    T = 7
    args = _args(cell, T, seed=3, inits=inits)
    prog = rc.compile(cell, dtype="float64")
    out, backward = prog.vjp(**args)
    rng = np.random.default_rng(0)
    cot = {"y": rng.standard_normal(out["y"].shape), "h": rng.standard_normal(out["h"].shape)}
    grads = backward(cot)

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in args.items()}
    state = (tp["h"], tp["c"]) if inits else None
    y, (h, c) = EX.torch_layernorm_lstm(tp["x"], tp, eps=1e-3, state=state)
    ((y * torch.tensor(cot["y"])).sum() + (h * torch.tensor(cot["h"])).sum()).backward()
    assert np.max(np.abs(out["y"] - y.detach().numpy())) <= 1e-10
    assert np.max(np.abs(out["c"] - c.detach().numpy())) <= 1e-10
    names = list(args) if inits else [k for k in args if k not in ("h", "c")]
    for k in names:
        err = np.max(np.abs(grads[k] - tp[k].grad.numpy()))
        assert err <= 1e-10 * max(1.0, float(np.max(np.abs(grads[k])))), (k, err)


@pytest.mark.parametrize("mode", ["full", "loop", 2, 3])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gradients_match_finite_differences(mode, with_lengths):
    cell = EX.make_layernorm_lstm(3, 2)
    T = 5
    prog = rc.compile(cell, length="T", unroll=mode, dtype="float64")
    lengths = random_lengths(T, B, seed=T) if with_lengths else None
    assert check_vjp(prog, _args(cell, T, seed=T), lengths, seed=T) <= 1e-6


CASES = [(m, lengths, None) for m in ("full", "loop", 2, 3) for lengths in (False, True)] + [
    ("loop", True, 2),
    (3, True, 2),
]


@pytest.mark.parametrize("mode, with_lengths, checkpoint", CASES)
@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
def test_every_backend_and_mode_agrees_with_the_oracle(backend, mode, with_lengths, checkpoint):
    """The oracle's forward; gradients against the numpy backend's plain BPTT (itself checked above)."""
    cell = EX.layernorm_lstm
    T = 6
    args = _args(cell, T, seed=1)
    L = random_lengths(T, B, seed=1) if with_lengths else None
    want = run(cell, **args, lengths=L, strict=True)
    prog = rc.compile(cell, length="T", unroll=mode, backend=backend, dtype="float64", checkpoint=checkpoint)
    assert max_err(prog(lengths=L, **args), want) <= 1e-10
    ref = rc.compile(cell, length="T", unroll="loop", backend="numpy", dtype="float64")
    (lw, gw), (lg, gg) = (p.value_and_grad("y", lengths=L, **args) for p in (ref, prog))
    assert abs(lg - lw) <= 1e-10 and max_err(gg, gw) <= 1e-10


def test_layer_norm_of_a_single_value_per_row_is_its_bias():
    @rc.cell
    def one(x: Seq["B", 1], b: Param[1]):
        return {"y": rc.layer_norm(x, bias=b)}

    got = run(one, x=np.arange(6.0).reshape(3, 2, 1), b=np.array([0.25]))["y"]
    assert np.array_equal(got, np.full((3, 2, 1), 0.25))


def _traced(body):
    @rc.cell
    def c(x: Seq["B", 6], g: Param[6], w: Param[5]):
        return {"y": body(x, g, w)}

    return c


@pytest.mark.parametrize(
    "body, error, words",
    [
        (lambda x, g, w: rc.layer_norm(x, axis=0), ShapeError, "axis=0 is the batch axis of x f32[B, 6]"),
        (lambda x, g, w: rc.layer_norm(x, axis=-2), ShapeError, "axis=-2 is the batch axis"),
        (
            lambda x, g, w: rc.layer_norm(x, axis=2),
            ShapeError,
            "axis=2 is not the feature axis of x f32[B, 6]; layer_norm normalises over the feature axis, "
            "the last one (axis=-1 or 1)",
        ),
        (lambda x, g, w: rc.layer_norm(x, axis=1.0), ShapeError, "axis=1.0 is not the feature axis"),
        (lambda x, g, w: rc.layer_norm(x, eps=0.0), DSLError, "layer_norm: eps must be > 0"),
        (lambda x, g, w: rc.layer_norm(x, eps=-1e-5), DSLError, "got eps=-1e-05"),
        (lambda x, g, w: rc.layer_norm(x, eps=float("nan")), DSLError, "eps must be > 0"),
        (lambda x, g, w: rc.layer_norm(x, eps="1e-5"), DSLError, "eps must be a positive number, got '1e-5'"),
        (
            lambda x, g, w: rc.layer_norm(x, gain=w),
            ShapeError,
            "layer_norm: gain has type f32[5], but x f32[B, 6] has 6 features: gain must have shape (6,)",
        ),
        (lambda x, g, w: rc.layer_norm(x, gain=g, bias=w), ShapeError, "bias has type f32[5]"),
        (lambda x, g, w: rc.layer_norm(x, bias=np.ones(6)), DSLError, "bias must be a cell value of shape (6,)"),
        (lambda x, g, w: rc.layer_norm(rc.sum(x, axis=1), bias=g), ShapeError, "x must be (batch, ..., features)"),
    ],
)
def test_bad_input_names_the_argument(body, error, words):
    with pytest.raises(error) as e:
        _traced(body)
    assert words in str(e.value) and "test_layernorm.py:" in str(e.value), str(e.value)


def test_help_explains_it():
    doc = rc.layer_norm.__doc__
    assert "F.layer_norm" in doc and "gain" in doc and "eps" in doc
