"""rct.Recurrent: results and gradients equal the program's, params as nn.Parameters, optimisers,
state_dict, dtype changes, the init rule, and no copies between tensors and the program's arrays."""

from __future__ import annotations

import math
import weakref

import numpy as np
import pytest
import torch

import rnncomp as rc
import rnncomp.torch as rct
from rnncomp import Param, Seq, State
from rnncomp.torch import registry


@rc.cell
def lstm(x: Seq["B", 3], h: State["B", 4], c: State["B", 4], Wx: Param[3, 16], Wh: Param[4, 16], b: Param[16]):
    i, f, g, o = rc.split(x @ Wx + h @ Wh + b, 4)
    c = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
    h = rc.sigmoid(o) * rc.tanh(c)
    return {"h": h, "c": c, "y": h}


@rc.cell
def readout(x: Seq["B", 3], h: State["B", 5], W: Param[3, 5], U: Param[5, 5], V: Param[5, 2]):
    h = rc.tanh(x @ W + h @ U)
    return {"h": h, "y": h @ V}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def _layer(dtype="float64", **kw) -> rct.Recurrent:
    torch.manual_seed(0)
    return rct.Recurrent(lstm, dtype=dtype, **kw)


def test_results_and_gradients_equal_the_programs():
    layer = _layer()
    T, B = 5, 3
    x = torch.randn(T, B, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, 4, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 2, 0])
    out = layer(x, lengths=lengths, h=h0)
    assert list(out) == ["y", "h", "c"]
    prog = layer.program()
    params = {p: _np(getattr(layer, p)) for p in ("Wx", "Wh", "b")}
    want, backward = prog.vjp(x=_np(x), h=_np(h0), lengths=lengths.numpy(), **params)
    for k in want:
        np.testing.assert_allclose(_np(out[k]), want[k], rtol=0, atol=1e-12)
    dy = torch.randn(T, B, 4, dtype=torch.float64)
    dc = torch.randn(B, 4, dtype=torch.float64)
    ((out["y"] * dy).sum() + (out["c"] * dc).sum()).backward()
    g = backward({"y": dy.numpy(), "c": dc.numpy()})
    for name in ("Wx", "Wh", "b"):
        np.testing.assert_allclose(_np(getattr(layer, name).grad), g[name], rtol=0, atol=1e-12)
    np.testing.assert_allclose(_np(x.grad), g["x"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(_np(h0.grad), g["h"], rtol=0, atol=1e-12)


def test_seqs_by_name_and_params_by_cell_name():
    layer = _layer()
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    a, b = layer(x), layer(x=x)
    torch.testing.assert_close(a["y"], b["y"], rtol=0, atol=0)
    assert dict(layer.named_parameters()).keys() == {"Wx", "Wh", "b"}
    assert isinstance(layer.Wx, torch.nn.Parameter) and layer.Wx.shape == (3, 16)


def test_no_grad_keeps_nothing_and_training_frees_its_residuals():
    layer = _layer()
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    prog = layer.program()
    kept, real = [], prog._vjp
    prog._vjp = lambda *a, **kw: (lambda r: kept.append(weakref.ref(r[1])) or r)(real(*a, **kw))
    before = registry.parked()  # the custom ops (torch.compile's path) park theirs under a token; eager none
    try:
        with torch.no_grad():
            layer(x)
        assert kept == []  # inference: no vjp, nothing kept
        out = layer(x)
        assert len(kept) == 1 and kept[0]() is not None  # the forward's residuals wait for the backward
        out["y"].sum().backward()
        assert kept[0]() is None  # gone once the backward used them, while `out` still lives
        assert registry.parked() == before
    finally:
        del prog._vjp


def test_a_second_backward_runs_the_forward_again():
    """retain_graph=True: the first backward took the residuals; the second recomputes them, same grads."""
    layer = _layer()
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    loss = layer(x)["y"].pow(2).sum()
    (g1,) = torch.autograd.grad(loss, [x], retain_graph=True)
    (g2,) = torch.autograd.grad(loss, [x])
    torch.testing.assert_close(g2, g1, rtol=0, atol=0)


def test_an_input_modified_after_the_forward_is_refused_by_autograd():
    """The backward reads the inputs as they are (no copy): autograd refuses it once one was modified."""
    layer = _layer()
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    xc = x * 1.0
    out = layer(xc)
    with torch.no_grad():
        xc.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out["y"].sum().backward()


def test_optimiser_clipping_state_dict_and_dtypes():
    layer = _layer("float32")
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    x = torch.randn(6, 2, 3)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = layer(x)["y"].pow(2).sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(layer.parameters(), 0.5)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    other = rct.Recurrent(lstm, dtype="float32")
    other.load_state_dict(layer.state_dict())
    torch.testing.assert_close(other(x)["y"], layer(x)["y"], rtol=0, atol=0)
    assert layer.program().dtype.numpy == np.float32
    layer.double()
    assert layer.Wx.dtype == torch.float64 and layer.program().dtype.numpy == np.float64
    y64 = layer(x.double())["y"]
    assert y64.dtype == torch.float64
    layer.float()
    torch.testing.assert_close(layer(x)["y"], y64.float(), rtol=1e-5, atol=1e-6)


def test_default_init_is_pytorchs_rule_and_can_be_overridden():
    assert rct.feeds(readout) == {"W": "h", "U": "h", "V": None}
    torch.manual_seed(0)
    layer = rct.Recurrent(readout)
    for name, bound in (("W", 1 / math.sqrt(5)), ("U", 1 / math.sqrt(5)), ("V", 1 / math.sqrt(5))):
        w = getattr(layer, name)
        assert w.abs().max() <= bound and w.abs().max() > 0.5 * bound, name
    big = rct.Recurrent(lstm)
    assert big.Wx.abs().max() <= 0.5 and big.Wx.abs().max() > 0.25  # H = 4: bound 1/2
    ones = rct.Recurrent(readout, init={"V": np.ones((5, 2)), "U": lambda name, t: t.zero_()})
    assert (ones.V == 1).all() and (ones.U == 0).all() and (ones.W != 0).any()
    filled = rct.Recurrent(readout, init=lambda name, t: t.fill_(0.25))
    assert all((p == 0.25).all() for p in filled.parameters())


def test_no_copies_between_tensors_and_the_program():
    """Contiguous CPU tensors of the program's dtype reach it as views; its results come back as views."""
    layer = _layer()
    seen = {}
    prog = layer.program()
    real_vjp = prog._vjp

    def spy(lengths, arrays, copy):
        out, backward = real_vjp(lengths, arrays, copy)
        seen["in"] = {k: a.ctypes.data for k, a in arrays.items()}
        seen["out"] = {k: a.ctypes.data for k, a in out.items()}

        def bw(cot):
            g = backward(cot)
            seen["cot"] = {k: a.ctypes.data for k, a in cot.items()}
            seen["grad"] = {k: a.ctypes.data for k, a in g.items()}
            return g

        return out, bw

    prog._vjp = spy
    try:
        x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
        out = layer(x)
        assert seen["in"]["x"] == x.data_ptr() and seen["in"]["Wx"] == layer.Wx.data_ptr()
        assert {k: t.data_ptr() for k, t in out.items()} == seen["out"]
        out["y"].backward(torch.ones_like(out["y"]))
        assert seen["grad"]["x"] == x.grad.data_ptr() and seen["grad"]["Wx"] == layer.Wx.grad.data_ptr()
        # other dtypes and layouts: converted once, in PyTorch, so the gradient comes back in their dtype
        leaf = torch.randn(2, 4, 3, requires_grad=True)
        layer(leaf.transpose(0, 1))["y"].sum().backward()
        assert leaf.grad.dtype == torch.float32 and leaf.grad.shape == (2, 4, 3)
    finally:
        del prog._vjp


def test_an_output_that_is_an_input_is_copied():
    """No step runs (T = 0): the final state is its init; the op's result must not alias it."""
    layer = _layer()
    h0 = torch.randn(2, 4, dtype=torch.float64)
    out = layer(torch.zeros(0, 2, 3, dtype=torch.float64), h=h0)
    torch.testing.assert_close(out["h"], h0, rtol=0, atol=0)
    assert out["h"].data_ptr() != h0.data_ptr()


def test_import_rnncomp_never_imports_torch():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, rnncomp as rc\n"
        "import rnncomp.cli, rnncomp.backends.registry\n"
        "assert 'torch' not in sys.modules, 'import rnncomp imported torch'\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_a_numba_cpu_layer_trains_as_the_numpy_one():
    torch.manual_seed(0)
    a = rct.Recurrent(lstm, dtype="float64", backend="numba-cpu")
    b = rct.Recurrent(lstm, dtype="float64", backend="numpy")
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 3, 3, dtype=torch.float64)
    lengths = torch.tensor([5, 1, 3])
    ya, yb = a(x, lengths=lengths)["y"], b(x, lengths=lengths)["y"]
    torch.testing.assert_close(ya, yb, rtol=0, atol=1e-12)
    ya.sum().backward()
    yb.sum().backward()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bad", [{"W": 1}, 3.0])
def test_bad_init_is_named(bad):
    with pytest.raises(rc.ArgumentError, match="argument 'init'"):
        rct.Recurrent(readout, init=bad)
