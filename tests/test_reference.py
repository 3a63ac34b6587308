"""The oracle (`rnncomp.reference.run`) against hand-written loops, hand-computed cells, and every argument error."""

import re
import runpy

import numpy as np
import pytest

import rnncomp as rc
from rnncomp import ArgumentError, Param, Seq, State
from rnncomp.reference import NonFiniteError, run
from tests.hand_rnns import EXAMPLES as EXAMPLES_DIR
from tests.hand_rnns import HAND, load_example

EXAMPLES = list(HAND)
TOL = 1e-12


def random_args(cell: rc.Cell, T: int, B: int, seed: int = 0, inits: bool = False) -> dict[str, np.ndarray]:
    """Seeded float64 seqs `(T, B, ...)`, params, and (if `inits`) state inits, every symbol B."""
    rng = np.random.default_rng(seed)
    bind = lambda shape: tuple(B if d == "B" else d for d in shape)
    args = {s.name: rng.standard_normal((T,) + bind(s.type.shape)) for s in cell.seqs}
    args.update({p.name: rng.standard_normal(bind(p.type.shape)) * 0.5 for p in cell.params})
    if inits:
        args.update({k: rng.standard_normal(bind(t.shape)) for k, t in cell.state_types.items()})
    return args


def assert_close(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].shape == want[k].shape, k
        assert np.max(np.abs(got[k] - want[k]), initial=0.0) <= TOL, k


def cell_of(name: str) -> rc.Cell:
    return getattr(load_example(name), name)


# ---------------------------------------------------------------- examples against hand loops


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("lengths", [None, [0, 7, 3, 1, 7]], ids=["full", "lengths"])
@pytest.mark.parametrize("inits", [False, True], ids=["zero_init", "init"])
def test_examples_agree_with_hand_loops(name, lengths, inits):
    cell = cell_of(name)
    args = random_args(cell, T=7, B=5, inits=inits)
    got = run(cell, lengths=None if lengths is None else np.array(lengths), strict=True, **args)
    assert_close(got, HAND[name](**args, lengths=lengths))


@pytest.mark.parametrize("name", EXAMPLES)
def test_lengths_keep_the_state_of_step_L_minus_1(name):
    cell = cell_of(name)
    args = random_args(cell, T=6, B=4, seed=1, inits=True)
    full = run(cell, **args)
    cut = run(cell, lengths=np.array([6, 6, 6, 6]), **args)
    assert_close(cut, full)  # L = T everywhere: no effect
    short = {k: v[:3] if k in [s.name for s in cell.seqs] else v for k, v in args.items()}
    at3 = run(cell, lengths=np.array([3, 0, 3, 0]), **args)
    ref3 = run(cell, **short)
    for k in cell.states:
        assert np.array_equal(at3[k][[0, 2]], ref3[k][[0, 2]])
        assert np.array_equal(at3[k][[1, 3]], args[k][[1, 3]])  # L = 0: the init
    for k in cell.outputs:
        assert np.array_equal(at3[k][:3, [0, 2]], ref3[k][:, [0, 2]])
        assert not at3[k][3:].any() and not at3[k][:, [1, 3]].any()


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("inits", [False, True], ids=["zero_init", "init"])
def test_zero_length_sequence(name, inits):
    cell = cell_of(name)
    args = random_args(cell, T=0, B=3, inits=inits)
    got = run(cell, strict=True, **args)
    for k, node in cell.outputs.items():
        assert got[k].shape == (0, 3) + node.type.shape[1:]
    for k, t in cell.state_types.items():
        want = args[k] if inits else np.zeros((3,) + t.shape[1:])
        assert np.array_equal(got[k], want)
    assert_close(run(cell, lengths=np.zeros(3, dtype=int), **args), got)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_scripts_run(name, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLES_DIR))
    runpy.run_path(str(EXAMPLES_DIR / f"{name}.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert out.startswith(f"cell {name} {{") and "first values" in out


# ---------------------------------------------------------------- hand-computed cells


@rc.cell
def fib(x: Seq["B", 1], h: State["B", 1]):  # noqa: F821  ("B" is a dim symbol)
    """h[t] = h[t-1] + h[t-2] + x[t]: a delay-2 state."""
    h_new = h + h.prev(2) + x
    return {"h": h_new, "y": h_new}


def test_delay_two_reads_init_before_step_zero():
    x = np.ones((5, 2, 1))
    got = run(fib, x=x, h=np.array([[0.0], [5.0]]), strict=True)
    # row 0 (init 0): 1, 2, 4, 7, 12.  row 1 (init 5, read as h[-1] and h[-2]): 11, 17, 29, 47, 77
    assert got["y"][:, :, 0].T.tolist() == [[1, 2, 4, 7, 12], [11, 17, 29, 47, 77]]
    assert got["h"][:, 0].tolist() == [12, 77]


def test_delay_two_with_lengths():
    x = np.ones((5, 4, 1))
    got = run(fib, lengths=np.array([0, 2, 4, 5]), x=x, h=np.full((4, 1), 5.0), strict=True)
    assert got["h"][:, 0].tolist() == [5, 17, 47, 77]  # the state at step L - 1 (the init for L = 0)
    assert got["y"][:, :, 0].T.tolist() == [[0] * 5, [11, 17, 0, 0, 0], [11, 17, 29, 47, 0], [11, 17, 29, 47, 77]]


@rc.cell
def mixer(x: Seq["B", 1], h: State["B", 1]):  # noqa: F821
    """Reads h[t-2] and x[t-2] summed over the batch, so dead rows' history shows in live rows."""
    h_new = h + x
    sh = x * 0.0 + rc.sum(h.prev(2), axis=0, keepdims=True)
    sx = x * 0.0 + rc.sum(x.prev(2), axis=0, keepdims=True)
    return {"h": h_new, "sh": sh, "sx": sx}


def test_history_past_the_length_is_the_frozen_value():
    x = np.array([[1.0, 2, 3, 4], [10, 20, 30, 40]]).T[:, :, None]  # (T=4, B=2, 1)
    got = run(mixer, lengths=np.array([1, 4]), x=x, strict=True)
    # row 0 dies after step 0: h stays 1 and x's history stays x[0] = 1; row 1: h = 10, 30, 60, 100
    assert got["h"][:, 0].tolist() == [1, 100]
    assert got["sh"][:, :, 0].T.tolist() == [[0, 0, 0, 0], [0, 0, 1 + 10, 1 + 30]]
    assert got["sx"][:, :, 0].T.tolist() == [[0, 0, 0, 0], [0, 0, 1 + 10, 1 + 20]]


@rc.cell
def small_ranks(x: Seq["B", 3], s: State[3], a: Param[()]):  # noqa: F821
    """A rank-1 state without a batch dim and a rank-0 param."""
    s_new = s * a + rc.sum(x, axis=0)
    return {"s": s_new, "y": x * a}


def test_rank_zero_and_one_arguments():
    x = np.arange(12.0).reshape(2, 2, 3)
    got = run(small_ranks, x=x, a=np.float64(2.0), s=np.ones(3), strict=True)
    s1 = 1 * 2 + x[0].sum(0)
    assert np.array_equal(got["s"], s1 * 2 + x[1].sum(0))
    assert np.array_equal(got["y"], 2 * x)


@rc.cell
def counter(n: State[()]):
    """No sequence input: the length comes from steps=."""
    n_new = n + 1.0
    return {"n": n_new, "twice": 2 * n_new}


def test_steps_for_a_cell_without_seqs():
    got = run(counter, steps=4, n=np.float64(10.0))
    assert got["n"] == 14.0 and got["twice"].tolist() == [22, 24, 26, 28]
    assert run(counter, steps=0)["twice"].shape == (0,)


@rc.cell
def tenth(x: Seq["B", 2]):  # noqa: F821
    return {"y": x * 0.1 + rc.cast(x, "f32") / 3.0}


def test_constants_and_casts_are_exact_in_float64():
    x = np.random.default_rng(0).standard_normal((3, 2, 2))
    assert np.array_equal(run(tenth, x=x)["y"], x * 0.1 + x / 3.0)


def test_integer_seq():
    g = rc.Graph("masked")
    x, m = g.seq("x", ("B", 2)), g.seq("m", ("B", 2), "i32")
    g.output("y", rc.where(m, x, -x))
    cell = g.build()
    x_ = np.arange(8.0).reshape(2, 2, 2)
    m_ = np.array([[[1, 0], [0, 1]], [[0, 0], [1, 1]]], dtype=np.int32)
    assert np.array_equal(run(cell, x=x_, m=m_)["y"], np.where(m_ != 0, x_, -x_))
    with pytest.raises(ArgumentError, match=re.escape("m: expected an integer array for i32, got dtype float64")):
        run(cell, x=x_, m=m_.astype(float))


# ---------------------------------------------------------------- strict


@rc.cell
def logger(x: Seq["B", 2]):  # noqa: F821
    return {"y": rc.log(x)}


def test_strict_raises_on_nan_naming_the_node_and_step():
    x = np.ones((3, 2, 2))
    x[1, 0, 0] = -1.0
    with pytest.raises(NonFiniteError, match=re.escape("node %0 (log), output 'y' holds nan at step 1")):
        run(logger, x=x, strict=True)
    with pytest.raises(FloatingPointError):  # NonFiniteError is one too
        run(logger, x=x, strict=True)


def test_not_strict_returns_nan_quietly(recwarn):
    x = np.ones((3, 2, 2))
    x[1, 0, 0] = 0.0
    assert np.isneginf(run(logger, x=x)["y"][1, 0, 0])
    assert not recwarn.list


def test_strict_ignores_padding_of_dead_rows():
    x = np.ones((3, 2, 2))
    x[2, 0] = np.nan  # past row 0's length
    got = run(logger, lengths=np.array([2, 3]), x=x, strict=True)
    assert not got["y"][2, 0].any()


# ---------------------------------------------------------------- argument errors


def lstm_args(T=7, B=3) -> dict[str, np.ndarray]:
    return random_args(cell_of("lstm"), T, B)


@rc.cell
def two_seqs(x: Seq["B", 2], u: Seq["B", 3], h: State["B", 2]):  # noqa: F821
    return {"h": h + x + rc.sum(u, axis=1, keepdims=True)}


@rc.cell
def hidden_dim(x: Seq["B", 2], h: State["B", "H"]):  # noqa: F821
    return {"h": h + rc.sum(x, axis=1, keepdims=True)}


@rc.cell
def unbatched(x: Seq["B", 2], s: State[2]):  # noqa: F821
    return {"s": s + rc.sum(x, axis=0)}


def _raises(msg: str, cell: rc.Cell, **kwargs) -> None:
    with pytest.raises(ArgumentError, match=re.escape(msg)):
        run(cell, **kwargs)


def test_missing_argument_messages():
    lstm = cell_of("lstm")
    args = lstm_args()
    del args["Wx"]
    _raises("missing argument 'Wx' of shape (16, 128)", lstm, **args)
    args = lstm_args()
    args["Wxx"] = args.pop("Wx")
    _raises(
        "unknown argument 'Wxx' (did you mean 'Wx'?); cell 'lstm' takes ['x', 'Wx', 'Wh', 'b', 'h', 'c']", lstm, **args
    )
    args = lstm_args()
    args["xs"] = args.pop("x")
    _raises("unknown argument 'xs' (did you mean 'x'?)", lstm, **args)


def test_wrong_rank_and_shape():
    lstm = cell_of("lstm")
    args = lstm_args()
    args["x"] = args["x"][..., :15]
    _raises("x: expected (T, B, 16) = (7, 3, 16), got (7, 3, 15)", lstm, **args)
    args["x"] = np.zeros((7, 3))
    _raises("x: expected rank 3 (T, B, 16), got shape (7, 3)", lstm, **args)
    args = lstm_args()
    args["Wh"] = np.zeros((32, 127))
    _raises("Wh: expected (32, 128), got (32, 127)", lstm, **args)
    args = lstm_args()
    args["b"] = np.zeros((1, 128))
    _raises("b: expected rank 1 (128,), got shape (1, 128)", lstm, **args)


def test_symbols_disagreeing_between_arrays():
    x, u = np.zeros((7, 3, 2)), np.zeros((5, 3, 3))
    _raises("u: expected (T, B, 3) = (7, 3, 3), got (5, 3, 3) (T = 7 from x)", two_seqs, x=x, u=u)
    _raises("u: expected (T, B, 3) = (7, 3, 3), got (7, 4, 3) (B = 3 from x)", two_seqs, x=x, u=np.zeros((7, 4, 3)))
    _raises("x: expected (T, B, 2) = (5, 3, 2), got (7, 3, 2) (T = 5 from steps)", two_seqs, x=x, u=u, steps=5)


def test_init_shape_wrong():
    lstm = cell_of("lstm")
    _raises("h: expected (B, 32) = (3, 32), got (4, 32) (B = 3 from x)", lstm, **lstm_args(), h=np.zeros((4, 32)))
    _raises("c: expected rank 2 (B, 32) = (3, 32), got shape (32,)", lstm, **lstm_args(), c=np.zeros(32))


def test_zero_init_of_an_unbound_symbol():
    _raises(
        "h: cannot make the zero init of shape (B, H): H is not bound by any argument; pass h=...",
        hidden_dim,
        x=np.zeros((2, 3, 2)),
    )
    assert run(hidden_dim, x=np.ones((2, 3, 2)), h=np.zeros((3, 5)))["h"].shape == (3, 5)


def test_lengths_errors():
    lstm = cell_of("lstm")
    _raises(
        "lengths: expected an integer array of shape (B,), got dtype float64",
        lstm,
        **lstm_args(),
        lengths=np.array([1.0, 2, 3]),
    )
    _raises(
        "lengths: expected an integer array of shape (B,), got dtype bool",
        lstm,
        **lstm_args(),
        lengths=np.array([True, False, True]),
    )
    _raises(
        "lengths: expected (B,) = (3,), got (4,) (B = 3 from x)", lstm, **lstm_args(), lengths=np.array([1, 2, 3, 4])
    )
    _raises(
        "lengths: expected rank 1 (B,) = (3,), got shape (3, 1)",
        lstm,
        **lstm_args(),
        lengths=np.ones((3, 1), dtype=int),
    )
    _raises(
        "lengths: every length must lie in [0, T] = [0, 7], got 8", lstm, **lstm_args(), lengths=np.array([1, 8, 3])
    )
    _raises(
        "lengths: every length must lie in [0, T] = [0, 7], got -1", lstm, **lstm_args(), lengths=np.array([1, -1, 3])
    )
    _raises(
        "lengths: state 's' has shape (2,), whose leading dim is not the batch B = 3; with lengths= every state, "
        "delayed seq and output must be batch-major",
        unbatched,
        x=np.zeros((4, 3, 2)),
        lengths=np.array([1, 2, 3]),
    )


def test_other_argument_errors():
    lstm = cell_of("lstm")
    _raises("cell: expected an rnncomp Cell (from @rc.cell or rc.Graph.build()), got function", lambda: 0)
    _raises("x: expected a real numeric array, got dtype <U1", lstm, **{**lstm_args(), "x": np.array(["a"])})
    _raises(
        "x: expected a real numeric array, got dtype complex128",
        lstm,
        **{**lstm_args(), "x": np.zeros((7, 3, 16), complex)},
    )
    _raises("cell 'counter' has no sequence input, so the length is unknown: pass steps=T", counter)
    _raises("steps: expected an int >= 0, got -1", counter, steps=-1)
    _raises("steps: expected an int >= 0, got 2.0", counter, steps=2.0)
    g = rc.Graph("clash")
    g.output("y", rc.tanh(g.seq("steps", (2,))))
    _raises("cell 'clash' names an argument 'steps', a keyword run() reserves", g.build(), steps=np.zeros((3, 2)))
