"""rct.from_torch: nn.RNN (tanh, relu), nn.GRU, nn.LSTM (and proj_size) rebuilt from rnncomp cells give
PyTorch's outputs and gradients (float64 <= 1e-10, float32 <= 1e-5) over every option.

The options (mode, num_layers, bidirectional, batch_first, bias, lengths: none / lengths= / PackedSequence,
dtype, hx given) are covered pairwise: every pair of values of every two options meets in some case
(a greedy covering array, ~20 cases, on the numpy backend); a few whole cases run on numba-cpu.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnncomp as rc
import rnncomp.torch as rct

OPTIONS = {
    "mode": ["rnn_tanh", "rnn_relu", "gru", "lstm", "lstm_proj"],
    "num_layers": [1, 2],
    "bidirectional": [False, True],
    "batch_first": [False, True],
    "bias": [True, False],
    "lengths": [None, "lengths", "packed"],
    "dtype": [torch.float64, torch.float32],
    "hx": [False, True],
}


def pairwise(options: dict) -> list[dict]:
    """A small set of cases in which every pair of values of every two options occurs (greedy)."""
    names = list(options)
    combos = list(itertools.product(*options.values()))

    def pairs(c):
        return {(i, c[i], j, c[j]) for i, j in itertools.combinations(range(len(names)), 2)}

    todo = set().union(*(pairs(c) for c in combos))
    cases = []
    while todo:
        best = max(combos, key=lambda c: len(pairs(c) & todo))
        todo -= pairs(best)
        cases.append(dict(zip(names, best)))
    return cases


CASES = pairwise(OPTIONS)


def _module(case: dict) -> nn.Module:
    I, H = 3, 4  # noqa: E741
    kw = dict(num_layers=case["num_layers"], bidirectional=case["bidirectional"], batch_first=case["batch_first"])
    kw["bias"] = case["bias"]
    mode = case["mode"]
    if mode.startswith("rnn"):
        m = nn.RNN(I, H, nonlinearity=mode[4:], **kw)
    elif mode == "gru":
        m = nn.GRU(I, H, **kw)
    else:
        m = nn.LSTM(I, H, proj_size=2 if mode == "lstm_proj" else 0, **kw)
    return m.to(case["dtype"])


def _run(net, case, x, lengths, hx):
    """Call `net` as the case says; returns (padded output (T, B, F) or (B, T, F), state, packed output or None)."""
    args = (hx,) if hx is not None else ()
    if case["lengths"] == "packed":
        packed = pack_padded_sequence(x, lengths, batch_first=case["batch_first"], enforce_sorted=False)
        out, state = net(packed, *args)
        padded, _ = pad_packed_sequence(
            out, batch_first=case["batch_first"], total_length=x.shape[1 if case["batch_first"] else 0]
        )
        return padded, state, out
    if case["lengths"] == "lengths":
        if isinstance(net, nn.RNNBase):  # PyTorch's own way: pack, run, unpack
            packed = pack_padded_sequence(x, lengths, batch_first=case["batch_first"], enforce_sorted=False)
            out, state = net(packed, *args)
            T = x.shape[1 if case["batch_first"] else 0]
            padded, _ = pad_packed_sequence(out, batch_first=case["batch_first"], total_length=T)
            return padded, state, None
        out, state = net(x, *args, lengths=lengths)
        return out, state, None
    out, state = net(x, *args)
    return out, state, None


def _check(case: dict, **options) -> None:
    torch.manual_seed(sum(map(ord, repr(sorted(case.items(), key=str)))) % 1000)
    dt = case["dtype"]
    tol = dict(rtol=0, atol=1e-10) if dt == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    ref = _module(case)
    ours = rct.from_torch(ref, **options)
    T, B = 5, 3
    shape = (B, T, 3) if case["batch_first"] else (T, B, 3)
    x0 = torch.randn(shape, dtype=dt)
    lengths = torch.tensor([5, 2, 4]) if case["lengths"] else None
    D = 2 if case["bidirectional"] else 1
    Hout = 2 if case["mode"] == "lstm_proj" else 4
    h0 = torch.randn(case["num_layers"] * D, B, Hout, dtype=dt) if case["hx"] else None
    c0 = torch.randn(case["num_layers"] * D, B, 4, dtype=dt) if case["hx"] and case["mode"].startswith("lstm") else None
    results = []
    for net in (ref, ours):
        x = x0.clone().requires_grad_()
        hs = [t.clone().requires_grad_() for t in (h0, c0) if t is not None]
        hx = None if not hs else (tuple(hs) if len(hs) == 2 else hs[0])
        y, state, packed = _run(net, case, x, lengths, hx)
        states = list(state) if isinstance(state, tuple) else [state]
        gen = torch.Generator().manual_seed(1)
        loss = (y * torch.randn(y.shape, generator=gen, dtype=dt)).sum()
        for s in states:
            loss = loss + (s * torch.randn(s.shape, generator=gen, dtype=dt)).sum()
        loss.backward()
        results.append((y, states, packed, x.grad, [h.grad for h in hs]))
    (y1, s1, p1, gx1, gh1), (y2, s2, p2, gx2, gh2) = results
    torch.testing.assert_close(y2, y1, **tol)
    assert len(s1) == len(s2)
    for a, b in zip(s1, s2):
        torch.testing.assert_close(b, a, **tol)
    if p1 is not None:
        torch.testing.assert_close(p2.data, p1.data, **tol)
        assert torch.equal(p2.batch_sizes, p1.batch_sizes) and torch.equal(p2.sorted_indices, p1.sorted_indices)
    torch.testing.assert_close(gx2, gx1, **tol)
    for a, b in zip(gh1, gh2):
        torch.testing.assert_close(b, a, **tol)
    theirs = dict(ref.named_parameters())
    mine = ours.torch_parameters()
    assert sorted(mine) == sorted(theirs)
    for name, (_, p) in mine.items():
        want = theirs[name].grad
        torch.testing.assert_close(p.grad, want.t() if want.dim() == 2 else want, **tol, msg=name)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{v}" for v in c.values()).replace("torch.", ""))
def test_outputs_and_gradients_equal_pytorchs(case):
    _check(case, backend="numpy")


def test_the_grid_covers_every_pair():
    assert 15 <= len(CASES) <= 30
    for (a, va), (b, vb) in itertools.combinations(OPTIONS.items(), 2):
        for pair in itertools.product(va, vb):
            assert any((c[a], c[b]) == pair for c in CASES), (a, b, pair)


NUMBA_CASES = [
    dict(
        mode="lstm",
        num_layers=1,
        bidirectional=True,
        batch_first=True,
        bias=True,
        lengths="packed",
        dtype=torch.float32,
        hx=True,
    ),
    dict(
        mode="gru",
        num_layers=1,
        bidirectional=False,
        batch_first=False,
        bias=False,
        lengths="lengths",
        dtype=torch.float64,
        hx=False,
    ),
]


@pytest.mark.parametrize("case", NUMBA_CASES, ids=["lstm-bi-packed-f32", "gru-lengths-f64"])
def test_numba_cpu_equals_pytorch(case):
    _check(case, backend="numba-cpu")


def test_unbatched_input_as_pytorch():
    ref = nn.GRU(3, 4, num_layers=2).double()
    ours = rct.from_torch(ref, backend="numpy")
    x, h0 = torch.randn(5, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    (y1, h1), (y2, h2) = ref(x, h0), ours(x, h0)
    torch.testing.assert_close(y2, y1, rtol=0, atol=1e-12)
    torch.testing.assert_close(h2, h1, rtol=0, atol=1e-12)


def test_weights_go_back_to_pytorch():
    ref = nn.LSTM(3, 4, proj_size=2, bidirectional=True).double()
    ours = rct.from_torch(ref, backend="numpy")
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.1)
    back = nn.LSTM(3, 4, proj_size=2, bidirectional=True).double()
    back.load_state_dict(ours.torch_state_dict())
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(ours(x)[0], back(x)[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "module, message",
    [
        (nn.LSTM(3, 4, num_layers=2, dropout=0.5), "dropout=0.5"),
        (nn.RNNCell(3, 4), "expected an nn.RNN, nn.GRU or nn.LSTM, got RNNCell"),
        (nn.GRU(3, 4).half(), "dtype"),
    ],
)
def test_unsupported_modules_are_named(module, message):
    with pytest.raises(rc.ArgumentError, match=message.replace("(", r"\(").replace(".", r"\.")):
        rct.from_torch(module)


def test_bad_calls_are_named():
    ours = rct.from_torch(nn.LSTM(3, 4, num_layers=2), backend="numpy")
    x = torch.randn(5, 2, 3)
    with pytest.raises(rc.ArgumentError, match=r"argument 'hx': expected a tuple \(h_0, c_0\)"):
        ours(x, torch.zeros(2, 2, 4))
    with pytest.raises(rc.ArgumentError, match=r"argument 'hx' \(h_0\).*= 2; got \(1, 2, 4\)"):
        ours(x, (torch.zeros(1, 2, 4), torch.zeros(2, 2, 4)))
    with pytest.raises(rc.ArgumentError, match="argument 'input': expected a 3-D"):
        ours(torch.zeros(5, 2, 3, 1))
    packed = pack_padded_sequence(x, torch.tensor([5, 3]))
    with pytest.raises(rc.ArgumentError, match="PackedSequence input has its own lengths"):
        ours(packed, lengths=torch.tensor([5, 3]))
