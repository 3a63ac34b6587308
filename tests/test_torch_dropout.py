"""rct.Recurrent with rc.dropout / rc.zoneout: `seed=` draws the program's masks in training mode (eager and
under torch.compile, forward and backward, a second backward too); eval mode and no seed mean inference."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rnncomp as rc  # noqa: E402
import rnncomp.torch as rct  # noqa: E402
from ir import ArgumentError  # noqa: E402
from rnncomp import Param, Seq, State  # noqa: E402

T, B = 5, 3


@rc.cell
def awd(x: Seq["B", 3], h: State["B", 4], W: Param[3, 4], U: Param[4, 4]):
    """Variational dropout on the input, DropConnect on U, zoneout on the state."""
    z = rc.dropout(x, 0.3, per="sequence") @ W + h @ rc.dropout(U, 0.4, per="sequence")
    h_new = rc.zoneout(rc.tanh(z), h, 0.2)
    return {"h": h_new, "y": rc.dropout(h_new, 0.25)}


def _run(layer, compiled: bool, **kw):
    x = torch.randn(T, B, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    call = (
        (lambda x: layer(x, **kw)["y"])
        if not compiled
        else torch.compile(lambda x: layer(x, **kw)["y"], fullgraph=True, backend="eager")
    )
    y = call(x)
    dy = torch.linspace(-1, 1, y.numel(), dtype=torch.float64).reshape(y.shape)
    (y * dy).sum().backward()
    return x, y, dy


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "torch.compile"])
def test_a_seed_draws_the_programs_masks_forward_and_backward(compiled):
    torch.manual_seed(0)
    layer = rct.Recurrent(awd, dtype="float64", backend="numpy")
    x, y, dy = _run(layer, compiled, seed=2**40 + 9)
    params = {p: getattr(layer, p).detach().numpy() for p in ("W", "U")}
    out, backward = layer.program().vjp(x=x.detach().numpy(), seed=2**40 + 9, **params)
    np.testing.assert_allclose(y.detach().numpy(), out["y"], rtol=0, atol=1e-12)
    g = backward({"y": dy.numpy()})
    np.testing.assert_allclose(x.grad.numpy(), g["x"], rtol=0, atol=1e-12)
    for p in ("W", "U"):
        np.testing.assert_allclose(getattr(layer, p).grad.numpy(), g[p], rtol=0, atol=1e-12)
    off = layer.program()(x=x.detach().numpy(), **params)["y"]
    assert np.max(np.abs(off - out["y"])) > 1e-3  # the masks changed something


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "torch.compile"])
def test_eval_mode_and_no_seed_are_inference(compiled):
    torch.manual_seed(0)
    layer = rct.Recurrent(awd, dtype="float64", backend="numpy")
    params = {p: getattr(layer, p).detach().numpy() for p in ("W", "U")}
    _, y_none, _ = _run(layer, compiled)
    layer.eval()
    x, y_eval, _ = _run(layer, compiled, seed=5)
    want = layer.program()(x=x.detach().numpy(), **params)["y"]
    for y in (y_none, y_eval):
        np.testing.assert_allclose(y.detach().numpy(), want, rtol=0, atol=1e-12)


def test_a_second_backward_draws_the_same_masks():
    torch.manual_seed(0)
    layer = rct.Recurrent(awd, dtype="float64", backend="numpy")
    x = torch.randn(T, B, 3, dtype=torch.float64, requires_grad=True)
    loss = layer(x, seed=3)["y"].pow(2).sum()
    (g1,) = torch.autograd.grad(loss, [x], retain_graph=True)
    (g2,) = torch.autograd.grad(loss, [x])
    torch.testing.assert_close(g2, g1, rtol=0, atol=0)


@pytest.mark.parametrize("seed", [1.5, "3", True])
def test_a_bad_seed_is_named_in_either_mode(seed):
    layer = rct.Recurrent(awd, dtype="float64", backend="numpy")
    x = torch.randn(T, B, 3, dtype=torch.float64)
    for mode in (layer.train, layer.eval):
        mode()
        with pytest.raises(ArgumentError, match=r"argument 'seed': the seed of the dropout masks must be an int"):
            layer(x, seed=seed)
