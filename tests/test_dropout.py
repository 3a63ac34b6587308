"""rc.dropout and rc.zoneout: mask statistics, the same mask in the forward and the backward, in every unroll
mode, with lengths and checkpoints, on numpy and numba-cpu (bit for bit), gradients against finite
differences at a fixed seed, the inference meaning without a seed, and bad input.
(The numba-cuda simulator's masks are in tests/test_numba_cuda.py.)"""

from __future__ import annotations

import numpy as np
import pytest

import rnncomp as rc
from ir import ArgumentError, DSLError, ShapeError
from rnncomp import Param, Seq, State
from rnncomp.reference import run
from tests.gradcheck import check_vjp
from tests.support import max_err, random_args, random_lengths

B, F = 3, 4
MODES = ["full", "loop", 2, 3]


def _mask_cell(p, per="step"):
    @rc.cell
    def masks(x: Seq["B", 64]):
        return {"y": rc.dropout(x, p, per=per)}

    return masks


@rc.cell
def drop_rnn(x: Seq["B", 4], h: State["B", 4], W: Param[4, 4], U: Param[4, 4]):
    """Dropout per step on the input, variational on the state, a DropConnect mask on U."""
    xd = rc.dropout(x, 0.4)
    hd = rc.dropout(h, 0.3, per="sequence")
    hn = rc.tanh(xd @ W + hd @ rc.dropout(U, 0.25, per="sequence"))
    return {"h": hn, "y": hn * 1.5}


@rc.cell
def zone_rnn(x: Seq["B", 4], h: State["B", 4], W: Param[4, 4], U: Param[4, 4]):
    """Zoneout on the state, per step, and dropout on the input."""
    hn = rc.zoneout(rc.tanh(rc.dropout(x, 0.2) @ W + h @ U), h, 0.35)
    return {"h": hn, "y": hn}


CELLS = {"drop": drop_rnn, "zone": zone_rnn}


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.8])
@pytest.mark.parametrize("per", ["step", "sequence"])
def test_keep_rate_is_within_binomial_bounds_and_kept_values_are_scaled(p, per):
    T, rows = 6, 16
    x = np.ones((T, rows, 64))
    for backend in ("numpy", "numba-cpu"):
        y = rc.compile(_mask_cell(p, per), backend=backend, dtype="float64")(x=x, seed=11)["y"]
        assert set(np.unique(y)) <= {0.0, 1.0 / (1.0 - p)}
        kept, n = int(np.count_nonzero(y)), (y.size if per == "step" else y[0].size)
        kept = kept if per == "step" else int(np.count_nonzero(y[0]))
        sd = np.sqrt(n * p * (1 - p))
        assert abs(kept - n * (1 - p)) <= 5 * sd + 1e-9, (backend, kept, n)


def test_a_per_sequence_mask_is_the_same_at_every_step_and_a_per_step_one_is_not():
    x = np.ones((5, B, 64))
    seq = run(_mask_cell(0.5, "sequence"), x=x, seed=2)["y"]
    step = run(_mask_cell(0.5, "step"), x=x, seed=2)["y"]
    assert all(np.array_equal(seq[t], seq[0]) for t in range(5))
    assert all(0.3 < np.mean(step[t] != step[0]) < 0.7 for t in range(1, 5))
    assert 0.3 < np.mean(seq[0, 0] != seq[0, 1]) < 0.7  # rows draw their own masks


def test_masks_differ_by_seed_and_by_site_and_repeat_for_a_seed():
    @rc.cell
    def two(x: Seq["B", 64]):
        return {"a": rc.dropout(x, 0.5), "b": rc.dropout(x, 0.5)}

    x = np.ones((2, B, 64))
    prog = rc.compile(two, dtype="float64")
    one, again, other = prog(x=x, seed=5), prog(x=x, seed=5), prog(x=x, seed=6)
    assert np.array_equal(one["a"], again["a"]) and np.array_equal(one["b"], again["b"])
    assert 0.3 < np.mean(one["a"] != one["b"]) < 0.7
    assert 0.3 < np.mean(one["a"] != other["a"]) < 0.7


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_cpu_draws_the_numpy_masks_bit_for_bit(dtype):
    x = np.ones((4, 5, 64))
    for per in ("step", "sequence"):
        cell = _mask_cell(0.3, per)
        want = rc.compile(cell, backend="numpy", dtype=dtype)(x=x, seed=2**40 + 7)["y"]
        for mode in MODES:
            got = rc.compile(cell, unroll=mode, backend="numba-cpu", dtype=dtype)(x=x, seed=2**40 + 7)["y"]
            assert got.dtype == want.dtype and np.array_equal(got, want), (per, mode)


def test_without_a_seed_dropout_is_the_identity_and_zoneout_its_expectation():
    @rc.cell
    def both(x: Seq["B", 4], o: Seq["B", 4]):
        return {"d": rc.dropout(x, 0.5, per="sequence"), "z": rc.zoneout(x, o, 0.25)}

    rng = np.random.default_rng(0)
    x, o = rng.standard_normal((3, B, 4)), rng.standard_normal((3, B, 4))
    for backend in ("numpy", "numba-cpu"):
        got = rc.compile(both, backend=backend, dtype="float64")(x=x, o=o)
        assert np.array_equal(got["d"], x), backend
        assert np.max(np.abs(got["z"] - (0.25 * o + 0.75 * x))) <= 1e-15, backend


def test_zoneout_keeps_the_old_value_where_its_mask_drops():
    @rc.cell
    def z(x: Seq["B", 64], o: Seq["B", 64]):
        return {"z": rc.zoneout(x, o, 0.4)}

    x, o = np.full((3, 8, 64), 2.0), np.full((3, 8, 64), -1.0)
    got = rc.compile(z, dtype="float64")(x=x, o=o, seed=9)["z"]
    assert set(np.unique(got)) == {-1.0, 2.0}
    n = got.size
    assert abs(np.sum(got == -1.0) - 0.4 * n) <= 5 * np.sqrt(n * 0.4 * 0.6)


def test_the_backward_uses_the_forwards_mask():
    """d sum(dropout(x)) / dx is the mask itself, which the forward applied to ones."""
    cell = _mask_cell(0.5, "step")
    x = np.ones((5, B, 64))
    for mode in MODES:
        for checkpoint in (None, 2):
            prog = rc.compile(cell, unroll=mode, dtype="float64", checkpoint=checkpoint)
            loss, grads = prog.value_and_grad("y", x=x, seed=4)
            assert np.array_equal(grads["x"], prog(x=x, seed=4)["y"]), (mode, checkpoint)
            assert loss == float(np.sum(grads["x"]))


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gradients_match_finite_differences_at_a_fixed_seed(name, mode, with_lengths):
    cell, T = CELLS[name], 5
    prog = rc.compile(cell, unroll=mode, dtype="float64")
    lengths = random_lengths(T, B, seed=T) if with_lengths else None
    args = random_args(cell, T, B, seed=2, inits=True)
    assert check_vjp(prog, args, lengths, seed=1, mask_seed=123) <= 1e-6


CASES = [(m, lengths, None) for m in MODES for lengths in (False, True)]
CASES += [("loop", True, 2), (3, False, 2), (2, True, "sqrt"), ("full", False, 2)]


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("mode, with_lengths, checkpoint", CASES)
@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
def test_every_backend_mode_and_checkpoint_agrees_with_the_oracle(name, backend, mode, with_lengths, checkpoint):
    """The oracle's forward at a seed; gradients against the numpy backend's plain BPTT (checked above)."""
    cell, T = CELLS[name], 6
    args = random_args(cell, T, B, seed=1, inits=True)
    L = random_lengths(T, B, seed=1) if with_lengths else None
    want = run(cell, **args, lengths=L, seed=77)
    prog = rc.compile(cell, unroll=mode, backend=backend, dtype="float64", checkpoint=checkpoint)
    assert max_err(prog(lengths=L, seed=77, **args), want) <= 1e-10
    ref = rc.compile(cell, unroll="loop", backend="numpy", dtype="float64")
    (lw, gw), (lg, gg) = (p.value_and_grad("y", lengths=L, seed=77, **args) for p in (ref, prog))
    assert abs(lg - lw) <= 1e-10 and max_err(gg, gw) <= 1e-10


def test_truncated_gradients_see_the_same_masks():
    cell, T = drop_rnn, 7
    args = random_args(cell, T, B, seed=3, inits=True)
    got = [
        rc.compile(cell, unroll=m, backend=be, dtype="float64", truncate=3, checkpoint=ck).value_and_grad(
            "y", seed=8, **args
        )[1]
        for m, be, ck in (("loop", "numpy", None), (2, "numba-cpu", None), ("loop", "numba-cpu", 2))
    ]
    assert max_err(got[1], got[0]) <= 1e-10 and max_err(got[2], got[0]) <= 1e-10


def test_float32_agrees_with_the_float64_oracle():
    args = random_args(zone_rnn, 6, B, seed=5, inits=True)
    want = run(zone_rnn, **args, seed=3)
    got = rc.compile(zone_rnn, dtype="float32")(seed=3, **args)
    assert max_err(got, want) <= 1e-5


def test_reverse_and_unroll_auto_draw_the_oracles_masks():
    args = random_args(drop_rnn, 5, B, seed=6, inits=True)
    want = run(drop_rnn, **args, seed=1)
    assert max_err(rc.compile(drop_rnn, unroll="auto", dtype="float64")(seed=1, **args), want) <= 1e-10
    rev = rc.compile(drop_rnn, dtype="float64", reverse=True)
    flipped = {k: (v[::-1] if k == "x" else v) for k, v in args.items()}
    got = rev(seed=1, **flipped)
    ref = rc.compile(drop_rnn, dtype="float64", reverse=True, backend="numpy")(seed=1, **flipped)
    assert max_err(got, ref) <= 1e-10


# ---------------------------------------------------------------- bad input


def _traced(body):
    @rc.cell
    def c(x: Seq["B", 4], o: Seq["B", 5]):
        return {"y": body(x, o)}

    return c


@pytest.mark.parametrize(
    "body, error, words",
    [
        (lambda x, o: rc.dropout(x, 1.0), DSLError, "dropout: the probability p must be in [0, 1)"),
        (lambda x, o: rc.dropout(x, -0.1), DSLError, "got p=-0.1"),
        (lambda x, o: rc.dropout(x, "0.5"), DSLError, "dropout: the probability p must be a number in [0, 1), got"),
        (lambda x, o: rc.zoneout(x, x, 1.5), DSLError, "zoneout: the probability p must be in [0, 1)"),
        (lambda x, o: rc.dropout(x, 0.5, per="batch"), DSLError, "per must be 'step'"),
        (lambda x, o: rc.zoneout(x, x, 0.5, per="row"), DSLError, "zoneout: per must be 'step' or 'sequence'"),
        (lambda x, o: rc.dropout(np.ones(4), 0.5), DSLError, "dropout: x must be a cell value"),
        (lambda x, o: rc.zoneout(x, 1.0, 0.5), DSLError, "zoneout: old must be a cell value"),
        (lambda x, o: rc.zoneout(x, o, 0.5), ShapeError, "zoneout: new f32[B, 4] and old f32[B, 5] differ"),
        (
            lambda x, o: rc.dropout(rc.sum(x), 0.5),
            ShapeError,
            "a dropout mask is (rows, features) or (features,), got shape ()",
        ),
    ],
)
def test_bad_input_names_the_problem_and_the_line(body, error, words):
    with pytest.raises(error) as e:
        _traced(body)
    assert words in str(e.value) and "test_dropout.py:" in str(e.value), str(e.value)


@pytest.mark.parametrize("seed", [1.5, "3", True, np.float64(2.0), [1]])
@pytest.mark.parametrize("call", ["prog", "vjp", "value_and_grad"])
def test_a_seed_that_is_not_an_int_is_named(call, seed):
    prog = rc.compile(drop_rnn, dtype="float64")
    args = random_args(drop_rnn, 3, B)
    fn = {"prog": prog, "vjp": prog.vjp, "value_and_grad": lambda **kw: prog.value_and_grad("y", **kw)}[call]
    with pytest.raises(ArgumentError, match=r"argument 'seed': the seed of the dropout masks must be an int, got"):
        fn(seed=seed, **args)


def test_a_seed_out_of_range_is_named():
    prog = rc.compile(drop_rnn, dtype="float64")
    with pytest.raises(ArgumentError, match=r"argument 'seed': the seed must be in 0..2\*\*64-1, got -3"):
        prog(seed=-3, **random_args(drop_rnn, 3, B))
    with pytest.raises(ArgumentError, match=r"the seed must be in 0..2\*\*64-1, got 18446744073709551616"):
        run(drop_rnn, seed=2**64, **random_args(drop_rnn, 3, B))


def test_a_cell_may_not_name_an_argument_seed():
    @rc.cell
    def named(x: Seq["B", 4], seed: Param[4]):
        return {"y": x * seed}

    with pytest.raises(ArgumentError, match=r"the name 'seed' is reserved"):
        rc.compile(named)


def test_help_explains_them():
    assert "1/(1-p)" in rc.dropout.__doc__ and "variational" in rc.dropout.__doc__
    assert "Krueger" in rc.zoneout.__doc__ and "expectation" in rc.zoneout.__doc__


@rc.cell
def zoned_scan(x: Seq["B", 4], h: State["B", 4], W: Param[4, 4]):
    """Affine in h (the linear_scan pass may scan it): zoneout of a value that does not read h."""
    return {"h": (h_new := rc.zoneout(rc.tanh(rc.dropout(x, 0.3) @ W), h, 0.3)), "y": h_new}


@rc.cell
def gated_scan(x: Seq["B", 4], h: State["B", 4], W: Param[4, 4]):
    a = rc.sigmoid(rc.dropout(x, 0.3) @ W)
    return {"h": (h_new := a * h + (1 - a) * rc.dropout(x, 0.2, per="sequence")), "y": h_new}


@pytest.mark.parametrize("cell", [zoned_scan, gated_scan], ids=["zoneout", "gated"])
@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
def test_masked_affine_recurrences_draw_the_oracles_masks(cell, backend):
    args = random_args(cell, 6, B, seed=1, inits=True)
    ref = rc.compile(cell, unroll="loop", backend="numpy", dtype="float64")
    for mode in ("loop", 2, "full"):
        prog = rc.compile(cell, unroll=mode, backend=backend, dtype="float64")
        assert max_err(prog(seed=5, **args), run(cell, **args, seed=5)) <= 1e-10, mode
        assert max_err(prog(**args), run(cell, **args)) <= 1e-10, mode
        (lw, gw), (lg, gg) = (p.value_and_grad("y", seed=5, **args) for p in (ref, prog))
        assert abs(lg - lw) <= 1e-10 and max_err(gg, gw) <= 1e-10, mode
    assert check_vjp(ref, args, None, seed=1, mask_seed=5) <= 1e-6


# ---------------------------------------------------------------- the AWD-LSTM example


def test_the_awd_lstm_example_runs(monkeypatch, capsys):
    import runpy
    from pathlib import Path

    examples = Path(__file__).resolve().parent.parent / "examples"
    monkeypatch.syspath_prepend(str(examples))
    runpy.run_path(str(examples / "awd_lstm.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "seed=2024, unroll='full'" in out and "PyTorch with the same masks" in out


@pytest.mark.parametrize("seed", [None, 31])
@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
def test_the_awd_lstm_example_is_pytorchs_network_with_the_same_masks(backend, seed):
    """Forward and gradients (params, input, inits) against a PyTorch loop given rnncomp's masks."""
    torch = pytest.importorskip("torch")
    from tests.hand_rnns import load_example

    ex = load_example("awd_lstm")
    T, rows = 6, 3
    args = random_args(ex.awd_lstm, T, rows, seed=4, inits=True)
    masks = ex.awd_masks(seed, rows)
    if seed is None:
        assert all(np.array_equal(m, np.ones_like(m)) for m in masks.values())
    else:
        assert {k: 0.0 < np.mean(m == 0) < 0.8 for k, m in masks.items()} == {"x": True, "Wh": True, "y": True}
    prog = rc.compile(ex.awd_lstm, unroll=2, backend=backend, dtype="float64")
    loss, grads = prog.value_and_grad("y", seed=seed, **args)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in args.items()}
    y, (h, c) = ex.torch_awd_lstm(t["x"], t, {k: torch.tensor(v) for k, v in masks.items()}, (t["h"], t["c"]))
    y.sum().backward()
    out = prog(seed=seed, **args)
    for k, v in (("y", y), ("h", h), ("c", c)):
        assert np.max(np.abs(out[k] - v.detach().numpy())) <= 1e-10, k
    assert abs(loss - float(y.detach().sum())) <= 1e-9
    for k in args:
        assert np.max(np.abs(grads[k] - t[k].grad.numpy())) <= 1e-10, k
