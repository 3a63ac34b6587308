"""Runtime misuse: names that collide with the methods' own parameters or rnncomp's internal names,
bad memory() queries, arrays changed between vjp() and backward(), and outputs nobody asked for."""

import numpy as np
import pytest

import rnncomp as rc
from ir import ArgumentError


def elman_named(seq: str) -> rc.Cell:
    g = rc.Graph("g")
    x = g.seq(seq, ("B", 2))
    W = g.param("W", (2, 2))
    h = g.state("h", ("B", 2))
    h.define(rc.tanh(x @ W + h.prev(1)))
    g.output("y", h)
    return g.build()


@pytest.mark.parametrize("name", ["self", "output", "T", "arrays"])
def test_inputs_named_like_the_methods_parameters(name):
    prog = rc.compile(elman_named(name), dtype="float64", backend="numpy")
    rng = np.random.default_rng(0)
    args = {name: rng.standard_normal((3, 2, 2)), "W": rng.standard_normal((2, 2))}
    want = np.zeros((2, 2))
    for t in range(3):
        want = np.tanh(args[name][t] @ args["W"] + want)
    np.testing.assert_allclose(prog(**args)["h"], want)
    loss, grads = prog.value_and_grad("y", **args)
    assert grads[name].shape == (3, 2, 2)
    _, backward = prog.vjp(lengths=np.array([3, 1]), **args)
    assert backward({"y": np.ones((3, 2, 2))})[name].shape == (3, 2, 2)


@pytest.mark.parametrize("name", ["lengths", "lengths_lo", "wrt"])
def test_reserved_names(name):
    with pytest.raises(ArgumentError, match=rf"the name {name!r} is reserved"):
        rc.compile(elman_named(name), truncate=2)


def test_memory_arguments():
    prog = rc.compile(elman_named("x"), dtype="float64", backend="numpy")
    assert prog.memory(T=10, B=2)["kept"] > 0
    with pytest.raises(ArgumentError, match=r"memory\(\): dim 'B' is not bound; pass it too, e.g. memory\(T=10, B="):
        prog.memory(T=10)
    with pytest.raises(ArgumentError, match=r"memory\(\): T=-1 must be an int >= 0"):
        prog.memory(T=-1, B=2)
    with pytest.raises(ArgumentError, match=r"memory\(\): B=2.5 must be an int >= 0"):
        prog.memory(T=1, B=2.5)
    with pytest.raises(ArgumentError, match=r"memory\(\): unknown dim 'C'; the dims to bind are \['B'\]"):
        prog.memory(T=1, B=2, C=3)


@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
@pytest.mark.parametrize("checkpoint", [None, 2])
def test_backward_reads_what_the_forward_saw(backend, checkpoint):
    """Arrays changed in place between vjp() and backward() do not change the gradients."""
    prog = rc.compile(elman_named("x"), dtype="float64", backend=backend, checkpoint=checkpoint)
    rng = np.random.default_rng(1)
    args = {"x": rng.standard_normal((5, 2, 2)), "W": rng.standard_normal((2, 2)), "h": rng.standard_normal((2, 2))}
    _, want = prog.value_and_grad("y", **{k: v.copy() for k, v in args.items()})
    out, backward = prog.vjp(**args)
    for v in [*args.values(), *out.values()]:
        v *= 3.0
    got = backward({"y": np.ones((5, 2, 2))})
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # log(0) and log(-x) in the forward, as asked
@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
def test_outputs_nobody_asked_for_contribute_nothing(backend):
    """A cell that also outputs log(x): at x = 0 its partial is inf; left out of the cotangents it
    adds exactly nothing (it used to add 0 * inf = NaN)."""
    g = rc.Graph("g")
    x = g.seq("x", ("B", 2))
    h = g.state("h", ("B", 2))
    h.define(rc.tanh(x + h.prev(1)))
    g.output("y", h)
    g.output("z", rc.log(x))
    prog = rc.compile(g.build(), dtype="float64", backend=backend)
    xs = np.random.default_rng(2).standard_normal((3, 2, 2))
    xs[1, 0, 0] = 0.0
    ref = rc.compile(elman_named("x"), dtype="float64", backend="numpy")  # the same cell without z, W = I
    _, want = ref.value_and_grad("y", x=xs, W=np.eye(2))
    _, got = prog.value_and_grad("y", x=xs)
    np.testing.assert_allclose(got["x"], want["x"], rtol=1e-12)
    _, backward = prog.vjp(x=xs)
    only_y = backward({"y": np.ones((3, 2, 2))})
    np.testing.assert_allclose(only_y["x"], want["x"], rtol=1e-12)
    both = backward({"y": np.ones((3, 2, 2)), "z": np.ones((3, 2, 2))})
    assert np.isinf(both["x"][1, 0, 0])  # asked for, log's partial is there


def two_seqs() -> rc.Cell:
    g = rc.Graph("two")
    x, u = g.seq("x", ("B", 2)), g.seq("u", ("B", 2))
    W = g.param("W", (2, 2))
    h = g.state("h", ("B", 2))
    h.define(rc.tanh(x @ W + u + h.prev(1)))
    g.output("y", h)
    return g.build()


def test_positional_seqs_bind_in_declaration_order():
    """`prog(x, u, W=W)` binds seqs in the order the cell declares them; `lengths` is keyword-only."""
    prog = rc.compile(two_seqs(), dtype="float64", backend="numpy")
    rng = np.random.default_rng(0)
    x, u, W = rng.standard_normal((3, 2, 2)), rng.standard_normal((3, 2, 2)), rng.standard_normal((2, 2))
    lengths = np.array([3, 1])
    want = prog(x=x, u=u, W=W, lengths=lengths)
    for got in (prog(x, u, W=W, lengths=lengths), prog(x, W=W, u=u, lengths=lengths)):
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
    loss, grads = prog.value_and_grad("y", x, u, W=W)
    assert loss == prog.value_and_grad("y", x=x, u=u, W=W)[0] and grads["u"].shape == (3, 2, 2)
    out, backward = prog.vjp(x, u, W=W, lengths=lengths)
    np.testing.assert_array_equal(out["y"], want["y"])
    with pytest.raises(
        ArgumentError,
        match=r"prog\(\): 3 positional arrays, but cell 'two' has 2 seq\(s\) \['x', 'u'\]; only seqs may be "
        r"positional, in that order: pass params, inits and lengths by name",
    ):
        prog(x, u, W)
    with pytest.raises(ArgumentError, match=r"vjp\(\): seq 'x' is given twice, positionally and as x=\.\.\."):
        prog.vjp(x, x=x, u=u, W=W)
    with pytest.raises(ArgumentError, match=r"value_and_grad\(\): 3 positional arrays"):
        prog.value_and_grad("y", x, u, lengths)
