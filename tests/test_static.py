"""Per-row inputs (`rc.Static["B", F]`): one value per batch row, the same at every step.

A static is a real kind of the cell IR (printed, parsed, JSON, DOT, verified), a loop invariant with
the batch dim once unrolled, and its gradient is summed over the steps inside the backward loop.
The gradient oracle is the same cell with the static declared as a seq and copied across all T steps
(what users wrote before): its seq gradient summed over time must equal the static's gradient.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnncomp as rc
from ir import ArgumentError, DSLError, VerifyError, parse_cell
from ir.dot import cell_to_dot
from ir.json_form import cell_from_json, cell_to_json
from rnncomp import Param, Seq, State, Static
from rnncomp.reference import run
from tests.gradcheck import check_vjp

F = 5  # the static's width: no other dim of the cells is 5, so a (T, B, 5) array is the static's


@rc.cell
def cond(x: Seq["B", 3], c: Static["B", F], h: State["B", 4], W: Param[3, 4], U: Param[4, 4], V: Param[F, 4]):
    """An Elman cell conditioned on c: through a projection, and as an elementwise gate."""
    z = rc.tanh(x @ W + h @ U + c @ V)
    gate = rc.sigmoid(rc.slice(c, 0, 4))
    return {"h": z * gate + h * (1.0 - gate), "y": z * rc.slice(c, 1, 5)}


@rc.cell
def cond_copied(x: Seq["B", 3], c: Seq["B", F], h: State["B", 4], W: Param[3, 4], U: Param[4, 4], V: Param[F, 4]):
    """`cond` as users wrote it before: the static copied across every step as a seq."""
    z = rc.tanh(x @ W + h @ U + c @ V)
    gate = rc.sigmoid(rc.slice(c, 0, 4))
    return {"h": z * gate + h * (1.0 - gate), "y": z * rc.slice(c, 1, 5)}


T, B = 6, 3


def arrays(seed: int = 0, T: int = T, B: int = B) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((T, B, 3)),
        "c": rng.standard_normal((B, F)),
        "h": rng.standard_normal((B, 4)) * 0.5,
        "W": rng.standard_normal((3, 4)) * 0.5,
        "U": rng.standard_normal((4, 4)) * 0.5,
        "V": rng.standard_normal((F, 4)) * 0.5,
    }


def copied(a: dict) -> dict:
    """The arguments of `cond_copied`: c repeated at every step."""
    return {**a, "c": np.broadcast_to(a["c"], (a["x"].shape[0],) + a["c"].shape).copy()}


LENGTHS = np.array([T, 2, 0])
MODES = ["loop", "full", 2, 4, "auto"]


def worst(got: dict, want: dict) -> float:
    assert sorted(got) == sorted(want)
    return max(float(np.max(np.abs(np.asarray(got[k]) - want[k]), initial=0.0)) for k in want)


# ---------------------------------------------------------------- the IR kind


def test_the_cell_declares_a_static():
    assert [n.name for n in cond.statics] == ["c"] and cond.statics[0].op == "static"
    assert "static c : f32[B, 5]" in str(cond)
    assert repr(cond).startswith("<Cell cond: 1 seq, 3 param, 1 static,")


def test_text_json_and_dot_keep_the_static():
    text = str(cond)
    back = parse_cell(text)
    assert back == cond and [n.name for n in back.statics] == ["c"]
    j = cell_to_json(cond)
    assert j["statics"] == [next(i for i, n in enumerate(cond.nodes()) if n.op == "static")]
    assert cell_from_json(j) == cond
    assert "statics" not in cell_to_json(cond_copied)  # a cell without statics keeps its old JSON
    dot = cell_to_dot(cond)
    assert '[label="static c\\nf32[B, 5]", shape="component"]' in dot


def test_every_program_with_a_static_prints_and_parses_back():
    from ir.program_parser import parse_program

    p = rc.compile(cond, backend="numpy")
    for kind in ({}, {"grad": True}, {"train": True}):
        for lengths in (False, True):
            for name, ir in p.stages(lengths, **kind).items():
                assert parse_program(str(ir)) == ir, name
    assert "input static c : f32[B, 5]" in p.ir("unroll")


def test_the_graph_builder_makes_the_same_cell():
    g = rc.Graph("cond")
    x, c = g.seq("x", ("B", 3)), g.static("c", ("B", F))
    W, U, V = g.param("W", (3, 4)), g.param("U", (4, 4)), g.param("V", (F, 4))
    h = g.state("h", ("B", 4))
    z = rc.tanh(x @ W + h.prev(1) @ U + c @ V)
    gate = rc.sigmoid(rc.slice(c, 0, 4))
    h.define(z * gate + h.prev(1) * (1.0 - gate))
    g.output("y", z * rc.slice(c, 1, 5))
    built = g.build()
    assert [n.name for n in built.statics] == ["c"]
    np.testing.assert_allclose(run(built, **arrays())["y"], run(cond, **arrays())["y"], rtol=0, atol=0)


def test_a_static_may_be_an_output_and_the_text_form_parses_it():
    cell = parse_cell(
        "cell s {\n  seq x : f64[B, 2]\n  static c : f64[B, 2]\n  state h : f64[B, 2]\n"
        "  h = add(h[t-1], mul(x, c))\n  out y = c\n}"
    )
    a = {"x": np.ones((3, 2, 2)), "c": np.array([[1.0, 2.0], [3.0, 4.0]])}
    out = run(cell, **a)
    np.testing.assert_array_equal(out["y"], np.broadcast_to(a["c"], (3, 2, 2)))
    np.testing.assert_array_equal(out["h"], 3 * a["c"])


# ---------------------------------------------------------------- the mistakes, each with its message


def test_a_static_whose_leading_dim_is_not_the_batch_is_refused():
    with pytest.raises(VerifyError) as e:

        @rc.cell
        def bad(x: Seq["B", 3], c: Static[F, "B"], h: State["B", 4]):
            return {"h": h + rc.sum(c)}

    assert (
        "cell 'bad': static 'c' has type f32[5, B], with leading dim 5, but a static holds one value per batch "
        "row: its leading dim must be the batch dim 'B' (the leading dim of the cell's seqs and states), "
        "e.g. Static['B', 16]"
    ) in str(e.value)


def test_a_static_without_dims_is_refused():
    g = rc.Graph("bad")
    x, c = g.seq("x", ("B", 2)), g.static("c", ())
    g.output("y", x * c)
    with pytest.raises(VerifyError, match=r"static 'c' has type f32\[\], with no leading dim, but a static holds"):
        g.build()


def test_a_cell_of_statics_alone_needs_the_batch_symbol():
    g = rc.Graph("bad")
    c = g.static("c", ("N", 2))
    g.output("y", rc.tanh(c))
    with pytest.raises(
        VerifyError, match="static 'c' has type f32\\[N, 2\\], with leading dim 'N', .* the batch symbol 'B'"
    ):
        g.build()


def test_prev_of_a_static_says_it_is_the_same_at_every_step():
    with pytest.raises(
        DSLError,
        match=r"prev\(\) reads a sequence input or a state at an earlier step; c is a static "
        r"\(the same at every step\)",
    ):

        @rc.cell
        def bad(x: Seq["B", 3], c: Static["B", 3], h: State["B", 3]):
            return {"h": h + c.prev(1)}


def test_a_delayed_static_in_text_says_it_is_the_same_at_every_step():
    with pytest.raises(
        VerifyError, match=r"only states and seqs can be delayed \(a static is the same at every step\)"
    ):
        parse_cell("cell s {\n  static c : f32[B, 2]\n  state h : f32[B, 2]\n  h = add(h[t-1], c[t-1])\n}")


@pytest.fixture(scope="module")
def prog():
    return rc.compile(cond, dtype="float64", backend="numpy")


def test_a_missing_static_is_named(prog):
    a = arrays()
    del a["c"]
    with pytest.raises(ArgumentError, match=r"missing argument 'c' \(static of shape \(B, 5\)\)"):
        prog(**a)


def test_a_static_of_the_wrong_batch_is_named(prog):
    a = {**arrays(), "c": np.zeros((B + 1, F))}
    with pytest.raises(ArgumentError) as e:
        prog(**a)
    assert (
        "argument 'c' (static): expected shape (B, 5) = (3, 5), got (4, 5): dim 0 (B) is 4 here but 3 elsewhere"
        in str(e.value)
    )


def test_a_static_with_a_time_axis_is_named(prog):
    a = copied(arrays())
    with pytest.raises(ArgumentError, match=r"argument 'c' \(static\): expected rank 2 \(B, 5\)"):
        prog(**a)


def test_wrt_names_the_statics(prog):
    with pytest.raises(ArgumentError) as e:
        prog.vjp(**arrays(), wrt=["cc"])
    assert "argument 'wrt': 'cc' is not an argument of cell 'cond' (did you mean 'c'?)" in str(e.value)
    assert "gradients exist for the params, seqs, statics and states ['W', 'U', 'V', 'x', 'c', 'h']" in str(e.value)


def test_positional_arrays_bind_the_seqs_then_the_statics(prog):
    a = arrays()
    want = prog(**a)
    rest = {k: v for k, v in a.items() if k not in ("x", "c")}
    assert worst(prog(a["x"], a["c"], **rest), want) == 0
    with pytest.raises(ArgumentError) as e:
        prog(a["x"], a["c"], a["h"], **rest)
    assert (
        "prog(): 3 positional arrays, but cell 'cond' has 1 seq(s) ['x'] and 1 static(s) ['c']; only seqs, then "
        "statics, may be positional, in that order" in str(e.value)
    )
    with pytest.raises(ArgumentError, match=r"prog\(\): static 'c' is given twice, positionally and as c=..."):
        prog(a["x"], a["c"], c=a["c"], **rest)


# ---------------------------------------------------------------- agreement with the oracle


@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["all", "lengths"])
def test_forward_and_gradients_agree_with_the_oracle(backend, mode, lengths):
    """Forward against the oracle; gradients against the copied cell's (its seq gradient summed over time)."""
    a = arrays(1)
    kw = {} if lengths is None else {"lengths": lengths}
    p = rc.compile(cond, dtype="float64", backend=backend, unroll=mode)
    q = rc.compile(cond_copied, dtype="float64", backend="numpy", unroll="loop")
    assert worst(p(**kw, **a), run(cond, **kw, **a)) <= 1e-10
    out, backward = p.vjp(**kw, **a)
    out2, backward2 = q.vjp(**kw, **copied(a))
    assert worst(out, out2) <= 1e-10
    cot = {k: np.random.default_rng(2).standard_normal(v.shape) for k, v in out.items()}
    want = backward2(cot)
    want["c"] = want["c"].sum(axis=0)
    assert worst(backward(cot), want) <= 1e-10
    got = backward(cot, wrt=["c"])
    assert sorted(got) == ["c"] and worst(got, {"c": want["c"]}) <= 1e-10


@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
@pytest.mark.parametrize(
    "opts",
    [
        {"reverse": True},
        {"truncate": 2},
        {"truncate": 3, "reverse": True, "unroll": "full"},
        {"checkpoint": 2},
        {"checkpoint": "sqrt", "unroll": 2},
        {"checkpoint": "2KiB"},
    ],
    ids=str,
)
def test_reverse_truncate_and_checkpoint_agree_with_the_copied_cell(backend, opts):
    a = arrays(3)
    for kw in ({}, {"lengths": LENGTHS}):
        p = rc.compile(cond, dtype="float64", backend=backend, **opts)
        q = rc.compile(cond_copied, dtype="float64", backend="numpy", **opts)
        out, backward = p.vjp(**kw, **a)
        out2, backward2 = q.vjp(**kw, **copied(a))
        assert worst(out, out2) <= 1e-10
        cot = {k: np.random.default_rng(4).standard_normal(v.shape) for k, v in out.items()}
        want = backward2(cot)
        want["c"] = want["c"].sum(axis=0)
        assert worst(backward(cot), want) <= 1e-10


def test_past_a_rows_length_the_static_gets_no_gradient():
    """A row of length 0 never reads its static: its gradient is exactly zero; the others' are not."""
    p = rc.compile(cond, dtype="float64", backend="numpy")
    _, grads = p.value_and_grad("y", lengths=LENGTHS, **arrays(5))
    assert np.all(grads["c"][2] == 0) and np.all(grads["c"][:2] != 0)


@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
def test_gradients_agree_with_finite_differences(backend):
    p = rc.compile(cond, dtype="float64", backend=backend, unroll=2)
    assert check_vjp(p, arrays(6)) < 1e-7
    assert check_vjp(p, arrays(6), lengths=LENGTHS) < 1e-7


def test_float32_agrees_with_the_oracle():
    a = arrays(7)
    p = rc.compile(cond, dtype="float32", backend="numba-cpu")
    assert worst(p(**{k: v.astype(np.float32) for k, v in a.items()}), run(cond, **a)) <= 1e-5


# ---------------------------------------------------------------- no copy across T


def test_no_program_holds_the_static_across_the_steps():
    """Neither the forward nor the backward makes a (T, B, F) array: the static is read as it is, and
    its gradient is summed in the backward loop (states sum@c), not stacked and summed after it."""
    p = rc.compile(cond, dtype="float64", backend="numpy")
    for kind in ({}, {"grad": True}, {"train": True}):  # inference, the backward, the training forward
        for lengths in (False, True):
            for stage, ir in p.stages(lengths, **kind).items():
                assert "T, B, 5]" not in str(ir), (kind, stage, str(ir))
    backward = p.ir("hoist", grad=True)
    assert "input static c : f64[B, 5]" in backward and "sum@c@0 = add(sum@c@t-1," in backward


def test_a_projection_of_the_static_leaves_the_loop():
    """c @ V is the same at every step: hoisted out of the forward loop; in the backward its dZ is summed
    in the loop and dV = c^T (sum dZ), dc = (sum dZ) V^T are single GEMMs after it."""
    p = rc.compile(cond, dtype="float64", backend="numpy")
    forward = p.ir("hoist")
    loop_body = forward[forward.index("loop(") :]
    assert "matmul(c, V)" in forward[: forward.index("loop(")] and "matmul(c, V)" not in loop_body
    backward = p.ir("hoist", grad=True)
    assert "matmul_tn(c, " in backward and "sum@c@1@0 = add(sum@c@1@t-1," in backward


def test_numba_cpu_runs_the_rows_of_a_conditioned_loop_in_parallel():
    """The static is sliced by row blocks like a state's init (passes/rows.py), forward and backward."""

    @rc.cell
    def gated(x: Seq["B", 4], c: Static["B", 4], h: State["B", 4], U: Param[4, 4]):
        h = rc.tanh(x * c + h @ U)
        return {"h": h, "y": h * c}

    p = rc.compile(gated, dtype="float64", backend="numba-cpu")
    for grad in (False, True):
        assert "# batch rows independent" in p.source(grad=grad)
    rng = np.random.default_rng(8)
    a = {"x": rng.standard_normal((5, 7, 4)), "c": rng.standard_normal((7, 4)), "U": rng.standard_normal((4, 4)) * 0.5}
    q = rc.compile(gated, dtype="float64", backend="numpy")
    assert worst(p(**a), run(gated, **a)) <= 1e-10
    out, bw = p.vjp(**a)
    _, bw2 = q.vjp(**a)
    cot = {k: rng.standard_normal(v.shape) for k, v in out.items()}
    assert worst(bw(cot), bw2(cot)) <= 1e-10


@rc.cell
def decay(x: Seq["B", 4], c: Static["B", 4], h: State["B", 4]):
    """A linear recurrence whose per-row decay is a static: the linear_scan pass makes it a scan."""
    h = rc.sigmoid(c) * h + x * c
    return {"h": h, "y": h}


@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
def test_a_linear_recurrence_with_a_static_decay_becomes_a_scan(backend):
    rng = np.random.default_rng(16)
    a = {"x": rng.standard_normal((9, 3, 4)), "c": rng.standard_normal((3, 4)), "h": rng.standard_normal((3, 4))}
    p = rc.compile(decay, dtype="float64", backend=backend)
    assert "scan" in p.ir("simplify#2") and "scan" in p.ir("simplify#2", grad=True)
    for kw in ({}, {"lengths": np.array([9, 4, 0])}):
        assert worst(p(**kw, **a), run(decay, **kw, **a)) <= 1e-10
        assert check_vjp(p, a, **kw) < 1e-7


def test_the_benchmark_makes_arrays_for_statics():
    from rnncomp.bench import random_arrays

    got = random_arrays(cond, 7, {"B": 2}, "float32")
    assert got["c"].shape == (2, F) and got["x"].shape == (7, 2, 3)


@rc.cell
def dropconnect(x: Seq["B", 3], c: Static["B", F], h: State["B", 4], W: Param[3, 4], V: Param[F, 4], U: Param[4, 4]):
    h = rc.tanh(x @ W + c @ rc.dropout(V, 0.4, per="sequence") + h @ U)
    return {"h": h, "y": h}


@rc.cell
def dropconnect_copied(
    x: Seq["B", 3], c: Seq["B", F], h: State["B", 4], W: Param[3, 4], V: Param[F, 4], U: Param[4, 4]
):
    h = rc.tanh(x @ W + c @ rc.dropout(V, 0.4, per="sequence") + h @ U)
    return {"h": h, "y": h}


@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
def test_dropconnect_on_the_weight_of_a_static(backend):
    """c @ (V * mask): the mask is the same at every step, so dV = (c^T sum dZ) * mask after the loop."""
    a = {k: v for k, v in arrays(17).items() if k != "h"}
    a["V"] = np.random.default_rng(18).standard_normal((F, 4))
    p = rc.compile(dropconnect, dtype="float64", backend=backend)
    q = rc.compile(dropconnect_copied, dtype="float64", backend="numpy")
    assert "matmul_tn(c, " in p.ir("hoist", grad=True)
    for kw in ({"seed": 3}, {"seed": 3, "lengths": LENGTHS}, {}):
        out, backward = p.vjp(**kw, **a)
        out2, backward2 = q.vjp(**kw, **copied(a))
        assert worst(out, out2) <= 1e-10
        cot = {k: np.random.default_rng(19).standard_normal(v.shape) for k, v in out.items()}
        want = backward2(cot)
        want["c"] = want["c"].sum(axis=0)
        assert worst(backward(cot), want) <= 1e-10
    assert check_vjp(p, {**a, "h": np.zeros((B, 4))}, mask_seed=5) < 1e-7


# ---------------------------------------------------------------- the example


def test_the_conditioned_gru_example_runs_and_equals_the_copied_form(monkeypatch, capsys):
    import runpy
    from pathlib import Path

    from tests.hand_rnns import load_example

    examples = Path(__file__).resolve().parent.parent / "examples"
    monkeypatch.syspath_prepend(str(examples))
    monkeypatch.setenv("RNNCOMP_BACKEND", "numpy")
    runpy.run_path(str(examples / "conditioned_gru.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "static c : f32[B, 8]" in out and "max |rnncomp - oracle| = " in out
    cell = load_example("conditioned_gru").conditioned_gru
    g = rc.Graph("copied")  # the same GRU with c copied across the steps as a seq
    x, c = g.seq("x", ("B", 16)), g.seq("c", ("B", 8))
    W_ih, W_hh, V = g.param("W_ih", (16, 96)), g.param("W_hh", (32, 96)), g.param("V", (8, 96))
    b_ih, b_hh = g.param("b_ih", (96,)), g.param("b_hh", (96,))
    h = g.state("h", ("B", 32))
    x_r, x_z, x_n = rc.split(x @ W_ih + c @ V + b_ih, 3)
    h_r, h_z, h_n = rc.split(h.prev(1) @ W_hh + b_hh, 3)
    r, z = rc.sigmoid(x_r + h_r), rc.sigmoid(x_z + h_z)
    h.define((1 - z) * rc.tanh(x_n + r * h_n) + z * h.prev(1))
    g.output("y", h)
    rng = np.random.default_rng(15)
    a = {p.name: rng.standard_normal(p.type.shape) * 0.2 for p in cell.params}
    a.update(x=rng.standard_normal((4, 2, 16)), c=rng.standard_normal((2, 8)))
    _, grads = rc.compile(cell, dtype="float64", backend="numpy").value_and_grad("y", **a)
    _, want = rc.compile(g.build(), dtype="float64", backend="numpy").value_and_grad("y", **copied(a))
    want["c"] = want["c"].sum(axis=0)
    assert worst(grads, want) <= 1e-10


# ---------------------------------------------------------------- rnncomp.torch


def _layer(a: dict, **options):
    rct = pytest.importorskip("rnncomp.torch")
    return rct.Recurrent(cond, dtype="float64", init={k: a[k] for k in ("W", "U", "V")}, **options)


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["all", "lengths"])
def test_recurrent_takes_a_static_and_its_gradient_flows_to_the_tensor(lengths):
    torch = pytest.importorskip("torch")
    a = arrays(9)
    layer = _layer(a)
    x, c, h = (torch.tensor(a[k], requires_grad=True) for k in ("x", "c", "h"))
    kw = {} if lengths is None else {"lengths": torch.tensor(lengths)}
    by_position = layer(x, c, h=h, **kw)
    by_name = layer(x=x, c=c, h=h, **kw)
    want = run(cond, **a, **kw)
    for out in (by_position, by_name):
        assert worst({k: v.detach().numpy() for k, v in out.items()}, want) <= 1e-10
    (by_position["y"].sum() + by_position["h"].square().sum()).backward()
    o, backward = rc.compile(cond, dtype="float64", backend="numpy").vjp(**a, **kw)
    g = backward({"y": np.ones_like(o["y"]), "h": 2 * o["h"]})
    got = {"c": c.grad, "x": x.grad, "h": h.grad, "W": layer.W.grad, "U": layer.U.grad, "V": layer.V.grad}
    assert worst({k: v.numpy() for k, v in got.items()}, g) <= 1e-10
    if lengths is not None:
        assert torch.all(c.grad[2] == 0)


def test_recurrent_under_torch_compile_differentiates_the_static():
    torch = pytest.importorskip("torch")
    a = arrays(10)
    layer = _layer(a)
    x, c = torch.tensor(a["x"]), torch.tensor(a["c"], requires_grad=True)
    torch.compile(lambda x, c: layer(x, c)["y"].sum(), fullgraph=True)(x, c).backward()
    o, backward = rc.compile(cond, dtype="float64", backend="numpy").vjp(**{k: a[k] for k in "xcWUV"})
    assert worst({"c": c.grad.numpy()}, {"c": backward({"y": np.ones_like(o["y"])})["c"]}) <= 1e-10


def test_recurrent_names_a_missing_static_and_too_many_positional_inputs():
    torch = pytest.importorskip("torch")
    a = arrays(11)
    layer = _layer(a)
    x, c = torch.tensor(a["x"]), torch.tensor(a["c"])
    with pytest.raises(
        ArgumentError,
        match=r"rct.Recurrent\(cond\): missing static \(per-row\) input 'c' \(a tensor "
        r"of shape \(B, 5\)\)",
    ):
        layer(x)
    with pytest.raises(ArgumentError) as e:
        layer(x, c, c)
    assert "takes 2 input(s) (its seqs, then its statics) positionally ['x', 'c'], got 3" in str(e.value)
    with pytest.raises(
        ArgumentError, match=r"argument 'c' \(static\): expected rank 2 \(B, 5\), got shape \(6, 3, 5\)"
    ):
        layer(x, torch.tensor(copied(a)["c"]))
    with pytest.raises(
        ArgumentError,
        match=r"unknown keyword argument 'cc' \(did you mean 'c'\?\); it takes the seqs "
        r"\['x'\], the statics \['c'\], the inits \['h'\], lengths and seed",
    ):
        layer(x, cc=c)


def test_bidirectional_passes_a_static_to_both_directions():
    torch = pytest.importorskip("torch")
    import rnncomp.torch as rct

    a = arrays(20)
    init = {k: a[k] for k in ("W", "U", "V")}
    fwd = rct.Recurrent(cond, dtype="float64", init=init)
    bwd = rct.Recurrent(cond, dtype="float64", init=init, reverse=True)
    bi = rct.Bidirectional(fwd, bwd)
    x, c = torch.tensor(a["x"]), torch.tensor(a["c"], requires_grad=True)
    out = bi(x, c=c)
    want_f = run(cond, **{k: a[k] for k in "xcWUV"})
    want_b = rc.compile(cond, dtype="float64", backend="numpy", reverse=True)(**{k: a[k] for k in "xcWUV"})
    got = out["y"].detach().numpy()
    assert worst({"f": got[..., :4], "b": got[..., 4:]}, {"f": want_f["y"], "b": want_b["y"]}) <= 1e-10
    out["y"].sum().backward()
    assert c.grad is not None and torch.all(c.grad != 0)
    other = torch.zeros_like(c)
    assert not torch.allclose(bi(x, c=c, c_reverse=other)["y"], out["y"])
