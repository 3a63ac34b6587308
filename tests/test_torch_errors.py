"""Bad input to rnncomp.torch: one clear rnncomp error naming the argument and what was expected;
NaN and Inf propagate as in nn.LSTM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import rnncomp as rc
import rnncomp.torch as rct
from tests.test_torch_recurrent import lstm


@pytest.fixture(scope="module")
def layer():
    return rct.Recurrent(lstm, backend="numpy")


X = torch.randn(5, 2, 3)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (
            (X.to("meta"),),
            {},
            r"argument 'x' \(seq\) is on meta, but the layer runs on cpu; move it with \.to\('cpu'\)",
        ),
        (
            (X.long(),),
            {},
            r"argument 'x' \(seq\): expected a floating-point tensor \(torch\.float32 like the layer\), "
            r"got dtype torch\.int64",
        ),
        ((X[0],), {}, r"argument 'x' \(seq\): expected rank 3 \(T, B, 3\), got shape \(2, 3\)"),
        ((X,), {"h": torch.zeros(2, 4, 1)}, r"argument 'h' \(init\): expected rank 2 \(B, 4\), got shape \(2, 4, 1\)"),
        ((X,), {"h": torch.zeros(3, 4)}, r"argument 'h' \(init\): expected shape \(B, 4\) = \(2, 4\), got \(3, 4\)"),
        ((), {}, r"missing sequence input 'x' \(a tensor of shape \(T, B, 3\)\)"),
        ((), {"h": torch.zeros(2, 4)}, r"missing sequence input 'x'"),
        (
            (X,),
            {"hh": torch.zeros(2, 4)},
            r"unknown keyword argument 'hh' \(did you mean 'h'\?\); it takes the seqs "
            r"\['x'\], the inits \['h', 'c'\], lengths and seed",
        ),
        ((X,), {"sed": 3}, r"unknown keyword argument 'sed' \(did you mean 'seed'\?\)"),
        ((X,), {"Wx": torch.zeros(3, 16)}, r"argument 'Wx' is a parameter of this layer \(layer\.Wx\), not an input"),
        ((X, X), {}, r"takes 1 sequence input\(s\) positionally \['x'\], got 2"),
        ((X,), {"x": X}, r"argument 'x' given both positionally and by name"),
        (([[1.0]],), {}, r"argument 'x' \(seq\): expected a tensor, got list"),
        (
            (X,),
            {"lengths": torch.tensor([5.0, 2.0])},
            r"argument 'lengths': expected an integer tensor of shape \(B,\), "
            r"got dtype torch\.float32 \(cast with \.long\(\)\)",
        ),
        ((X,), {"lengths": torch.tensor([5.0, 2.0], requires_grad=True)}, r"argument 'lengths' requires grad"),
        (
            (X,),
            {"lengths": torch.tensor([True, False])},
            r"argument 'lengths': expected an integer tensor .* torch\.bool",
        ),
        ((X,), {"lengths": torch.tensor([[5, 2]])}, r"argument 'lengths': expected shape \(B,\), got \(1, 2\)"),
        ((X,), {"lengths": torch.tensor([5, 2]).to("meta")}, r"argument 'lengths': expected a CPU tensor"),
        ((X,), {"lengths": torch.tensor([5, 2, 1])}, r"argument 'lengths': expected shape \(B,\) = \(2,\), got \(3,\)"),
        ((X,), {"lengths": torch.tensor([6, 2])}, r"argument 'lengths': every length must lie in \[0, T\] = \[0, 5\]"),
        ((X,), {"lengths": "ab"}, r"argument 'lengths': expected an integer tensor of shape \(B,\), got 'ab'"),
    ],
)
def test_bad_calls_name_the_argument(layer, args, kwargs, message):
    with pytest.raises(rc.ArgumentError, match=message):
        layer(*args, **kwargs)


def test_bad_construction_is_named():
    with pytest.raises(rc.ArgumentError, match=r"argument 'cell': expected an rnncomp Cell"):
        rct.Recurrent("lstm")
    with pytest.raises(rc.ArgumentError, match=r"argument 'dtype': expected 'float32' or 'float64', got 'float16'"):
        rct.Recurrent(lstm, dtype="float16")
    with pytest.raises(rc.ArgumentError, match=r"argument 'unroll'"):
        rct.Recurrent(lstm, unroll="sideways")
    with pytest.raises(rc.ArgumentError, match=r"unknown keyword argument 'checkpointing' \(did you mean 'checkpoint'"):
        rct.Recurrent(lstm, checkpointing=2)


def test_a_cuda_backend_refuses_cpu_parameters():
    layer = rct.Recurrent(lstm, backend="numba-cuda")
    with pytest.raises(
        rc.ArgumentError,
        match=r"backend 'numba-cuda' runs on CUDA tensors, but the layer's "
        r"parameters are on the CPU",
    ):
        layer(X)


def test_composition_errors_are_named():
    fwd = rct.Recurrent(lstm, backend="numpy")
    with pytest.raises(rc.ArgumentError, match="the backward layer must be compiled with reverse=True"):
        rct.Bidirectional(fwd, fwd)
    stack = rct.Stack([rct.Recurrent(lstm, backend="numpy")])
    with pytest.raises(rc.ArgumentError, match=r"Stack: unknown init 'h_l3'; inits are named k_l<i>"):
        stack(X, h_l3=torch.zeros(2, 4))


@pytest.mark.parametrize("backend", ["numpy", "numba-cpu"])
def test_nan_and_inf_propagate_as_in_nn_lstm(backend):
    torch.manual_seed(0)
    ref = nn.LSTM(3, 4)
    ours = rct.from_torch(ref, backend=backend)
    x = torch.randn(5, 3, 3)
    x[1, 0, 2] = float("nan")
    x[2, 1, 0] = float("inf")
    x[3, 2, 1] = -float("inf")
    (y1, (h1, c1)), (y2, (h2, c2)) = ref(x), ours(x)
    for a, b in ((y1, y2), (h1, h2), (c1, c2)):
        assert torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(torch.isinf(a), torch.isinf(b))
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert np.isnan(y2[1:, 0].detach().numpy()).all()  # the NaN reaches every later step of its row


def test_a_copied_layer_computes_the_same():
    import copy
    import pickle

    layer = rct.Recurrent(lstm, backend="numpy")
    want = layer(X)["y"]
    for other in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        torch.testing.assert_close(other(X)["y"], want, rtol=0, atol=0)
