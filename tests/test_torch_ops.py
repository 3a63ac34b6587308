"""The custom ops behind rct.Recurrent: torch.library.opcheck, gradcheck in float64, and a model holding a
Recurrent under torch.compile(fullgraph=True): no graph break, eager's outputs and gradients."""

from __future__ import annotations

import pytest
import torch

import rnncomp.torch as rct
from rnncomp.torch import ops, registry
from tests.test_torch_recurrent import lstm


def _case():
    torch.manual_seed(0)
    layer = rct.Recurrent(lstm, dtype="float64", backend="numpy")
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    h0 = torch.randn(2, 4, dtype=torch.float64)
    key, _ = layer._program(torch.float64, "cpu")
    arrays = [x, layer.Wx.detach(), layer.Wh.detach(), layer.b.detach(), h0]
    return layer, key + ":x,Wx,Wh,b,h", arrays, torch.tensor([4, 1])


@pytest.mark.parametrize("lengths", [False, True])
def test_opcheck_forward_ops(lengths):
    layer, call, arrays, lens = _case()
    lens = lens if lengths else None
    torch.library.opcheck(ops.run, (call, [a.clone() for a in arrays], lens))
    torch.library.opcheck(ops.run_train, (call, [a.clone().requires_grad_() for a in arrays], lens))


def test_opcheck_backward_op():
    layer, call, arrays, lens = _case()
    *results, token = ops.run_train(call, arrays, lens)
    cot = [torch.randn_like(r) for r in results]
    cot[1] = None  # a result without a cotangent: zero
    want = ops.backward(call, token, arrays, lens, cot, "")
    assert registry.take(token, arrays) is not None  # found the forward's residuals
    assert registry.take(token.clone(), arrays) is None  # a clone leads nowhere: the forward runs again
    for a, b in zip(want, ops.backward(call, token.clone(), arrays, lens, cot, "")):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    torch.library.opcheck(ops.backward, (call, token, arrays, lens, cot, ""))
    some = ops.backward(call, token.clone(), arrays, lens, cot, "Wh,h")  # only those computed, zeros for the rest
    for name, a, b in zip("x Wx Wh b h".split(), want, some):
        torch.testing.assert_close(b, a if name in ("Wh", "h") else torch.zeros_like(a), rtol=0, atol=0)


def test_gradcheck_float64():
    layer, call, arrays, lens = _case()
    f = lambda *a: tuple(ops.run_train(call, list(a), lens)[:-1])  # noqa: E731
    assert torch.autograd.gradcheck(f, tuple(a.clone().requires_grad_() for a in arrays))
    g = lambda x, h: tuple(layer(x, lengths=lens, h=h).values())  # noqa: E731  (through the module)
    assert torch.autograd.gradcheck(g, (arrays[0].clone().requires_grad_(), arrays[4].clone().requires_grad_()))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = rct.Recurrent(lstm, dtype="float64", backend="numpy")
        self.scale = torch.nn.Parameter(torch.tensor(0.5, dtype=torch.float64))

    def forward(self, x, lengths, h0):
        out = self.rnn(x, lengths=lengths, h=h0)
        return (out["y"] * self.scale).tanh().sum() + out["c"].sum()


def test_torch_compile_fullgraph_equals_eager():
    model = Model()
    x = torch.randn(5, 3, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 2, 0])
    prog = model.rnn.program()
    calls, real_vjp = [], prog._vjp  # eager calls it directly, the custom ops through prog.vjp
    prog._vjp = lambda *a, **kw: calls.append(1) or real_vjp(*a, **kw)
    results = []
    try:
        for run in (model, torch.compile(model, fullgraph=True)):  # fullgraph: a graph break is an error
            for t in [x, h0, *model.parameters()]:
                t.grad = None
            calls.clear()
            loss = run(x, lengths, h0)
            loss.backward()
            assert len(calls) == 1  # one forward: the backward found its residuals (compiled too)
            results.append([loss.detach()] + [t.grad.clone() for t in [x, h0, *model.parameters()]])
    finally:
        del prog._vjp
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-12)
