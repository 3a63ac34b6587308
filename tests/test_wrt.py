"""Gradients only where asked: `vjp(..., wrt=...)` / `value_and_grad(..., wrt=...)` compute only the
named gradients (equal to the full backward's), drop the input-gradient GEMM when no seq is asked
for, and refuse a name that is no argument."""

import numpy as np
import pytest

import rnncomp as rc
from ir import ArgumentError
from tests.support import cell_of, random_args, random_lengths

T, B = 5, 3


def full_and_some(name, wrt, backend="numpy", unroll=None, checkpoint=None, lengths=None):
    cell = cell_of(name)
    prog = rc.compile(cell, dtype="float64", backend=backend, unroll=unroll, checkpoint=checkpoint)
    args = random_args(cell, T, B, inits=True)
    _, full = prog.value_and_grad("y", lengths=lengths, **args)
    _, some = prog.value_and_grad("y", lengths=lengths, wrt=wrt, **args)
    return full, some


@pytest.mark.parametrize(
    ("backend", "unroll", "checkpoint", "lengths"),
    [
        ("numpy", None, None, None),
        ("numba-cpu", None, 2, "L"),
        ("numba-cpu", "full", None, None),
        ("numba-cpu", 2, None, "L"),
    ],
)
@pytest.mark.parametrize("wrt", [["Wx"], ["Wh", "b"], ["x"], ["h"], ["c", "Wx"]])
def test_asked_gradients_equal_the_full_ones(backend, unroll, checkpoint, lengths, wrt):
    L = random_lengths(T, B) if lengths else None
    full, some = full_and_some("lstm", wrt, backend, unroll, checkpoint, L)
    assert sorted(some) == sorted(wrt)
    for k in wrt:
        np.testing.assert_allclose(some[k], full[k], rtol=1e-12, atol=1e-12)


def test_no_input_gradient_gemm_when_no_seq_is_asked():
    prog = rc.compile(cell_of("lstm"), dtype="float64", backend="numpy")
    args = random_args(prog.cell, T, B)
    out, backward = prog.vjp(wrt=["Wx", "Wh", "b"], **args)
    backward({"y": np.ones_like(out["y"])})
    progs = {k[-1]: v[0] for k, v in prog._variants.items() if k[0] == "grad"}
    (some,) = progs.values()
    text = str(some)
    assert "x" not in some.outputs and "Wx" in some.outputs
    assert "transpose(Wx)" not in text.replace(" ", "")  # dX = dZ Wx^T is gone
    _, backward = prog.vjp(**args)
    backward({"y": np.ones_like(out["y"])})
    full = next(v[0] for k, v in prog._variants.items() if k[0] == "grad" and k[-1] is None)
    assert "x" in full.outputs and text.count("matmul") < str(full).count("matmul")


def test_row_sums_only_for_an_asked_bias():
    """A bias's per-row sums in the backward loop (passes/row_sums.py) exist only when its gradient
    is asked for; without it the backward keeps no running sum for it."""
    prog = rc.compile(cell_of("lstm"), dtype="float64", backend="numpy")
    args = random_args(prog.cell, T, B)
    _, full = prog.value_and_grad("y", **args)
    for wrt, summed in ((["Wh"], False), (["b"], True)):
        _, some = prog.value_and_grad("y", wrt=wrt, **args)
        np.testing.assert_allclose(some[wrt[0]], full[wrt[0]], rtol=1e-12, atol=1e-12)
        grad = str(next(v[0] for k, v in prog._variants.items() if k[0] == "grad" and k[-1] == frozenset(wrt)))
        assert ("rowsum@b@" in grad) is summed


def test_only_the_output_layer_skips_the_recurrence():
    """A param that no state depends on gets its gradient without any cotangent through time."""
    g = rc.Graph("g")
    x = g.seq("x", ("B", 2))
    W = g.param("W", (2, 2))
    V = g.param("V", (2, 3))
    h = g.state("h", ("B", 2))
    h.define(rc.tanh(x @ W + h.prev(1)))
    g.output("y", rc.tanh(h @ V))
    prog = rc.compile(g.build(), dtype="float64", backend="numpy")
    args = random_args(prog.cell, T, B)
    _, full = prog.value_and_grad("y", **args)
    _, some = prog.value_and_grad("y", wrt="V", **args)
    np.testing.assert_allclose(some["V"], full["V"], rtol=1e-12)
    grad = str(next(v[0] for k, v in prog._variants.items() if k[0] == "grad" and k[-1] == frozenset({"V"})))
    assert "dstate@h@0 = zeros" in grad and "matmul(" not in grad  # no adjoint carried back through h


def test_backward_narrows_per_call():
    prog = rc.compile(cell_of("lstm"), dtype="float64", backend="numpy")
    args = random_args(prog.cell, T, B)
    out, backward = prog.vjp(**args)
    cot = {"y": np.ones_like(out["y"])}
    assert sorted(backward(cot, wrt=["b"])) == ["b"]


def test_wrt_errors():
    prog = rc.compile(cell_of("lstm"), dtype="float64", backend="numpy")
    args = random_args(prog.cell, T, B)
    near = r"argument 'wrt': 'Whh' is not an argument of cell 'lstm' \(did you mean 'Wh'\?\)"
    with pytest.raises(ArgumentError, match=near):
        prog.value_and_grad("y", wrt=["Whh"], **args)
    with pytest.raises(ArgumentError, match=r"argument 'wrt': 3 is not an argument"):
        prog.vjp(wrt=[3], **args)
    with pytest.raises(ArgumentError, match=r"argument 'wrt': an empty list asks for no gradient"):
        prog.vjp(wrt=[], **args)


@pytest.mark.parametrize("compiled", [False, True])
def test_torch_passes_needs_input_grad(compiled, monkeypatch):
    """A frozen layer (only the input wants a gradient), then a layer with the input detached: each
    backward asks the program for exactly the gradients autograd needs, and they equal the full ones."""
    torch = pytest.importorskip("torch")
    import rnncomp.torch as rct
    from rnncomp.compiler import CompiledProgram

    asked = []
    vjp = CompiledProgram._vjp

    def spy(self, lengths, arrays, copy, wrt=None, **kw):
        out, backward = vjp(self, lengths, arrays, copy, wrt, **kw)

        def narrowed(cot, wrt=None):
            asked.append(None if wrt is None else sorted(wrt))
            return backward(cot, wrt=wrt)

        narrowed.nbytes, narrowed.ops = backward.nbytes, backward.ops
        return out, narrowed

    monkeypatch.setattr(CompiledProgram, "_vjp", spy)
    torch.manual_seed(0)
    layer = rct.Recurrent(cell_of("lstm"), dtype="float64", backend="numpy")
    x = torch.randn(T, B, 16, dtype=torch.float64, requires_grad=True)
    run = torch.compile(lambda x: layer(x)["y"].sum(), fullgraph=True, backend="eager") if compiled else None

    def loss(x):
        return run(x) if compiled else layer(x)["y"].sum()

    loss(x).backward()
    full_x, full_W = x.grad.clone(), layer.Wh.grad.clone()
    assert asked[-1] is None
    x.grad = None
    layer.requires_grad_(False)
    loss(x).backward()
    assert asked[-1] == ["x"]
    torch.testing.assert_close(x.grad, full_x, rtol=1e-12, atol=1e-12)
    layer.requires_grad_(True)
    layer.Wh.grad = None
    loss(x.detach()).backward()
    assert asked[-1] == ["Wh", "Wx", "b"]
    torch.testing.assert_close(layer.Wh.grad, full_W, rtol=1e-12, atol=1e-12)
