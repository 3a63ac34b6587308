"""`rct.from_torch(module)`: an nn.RNN / nn.GRU / nn.LSTM as a stack of rnncomp layers, same weights.

The returned `ImportedRNN` is called as the PyTorch module is, `net(input, hx)`, and returns what it
returns (`output, h_n` or `output, (h_n, c_n)`; a PackedSequence in, a PackedSequence out); padded
batches with `lengths=` take the place of packing (outputs past a row's length are zeros, h_n is each
row's state at its last step, as pad_packed_sequence would give).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ir import ArgumentError

from .compose import Bidirectional, Stack
from .recurrent import Recurrent
from .torch_cells import gru_cell, lstm_cell, rnn_cell

_DTYPES = {torch.float32: "float32", torch.float64: "float64"}


def _unsupported(module: nn.Module) -> None:
    if not isinstance(module, (nn.RNN, nn.GRU, nn.LSTM)):
        raise ArgumentError(f"rct.from_torch: expected an nn.RNN, nn.GRU or nn.LSTM, got {type(module).__name__}")
    name = type(module).__name__
    if module.dropout:
        raise ArgumentError(
            f"rct.from_torch: {name}(dropout={module.dropout}) is not supported (dropout between layers); "
            "import a module with dropout=0 and apply nn.Dropout between rct layers yourself"
        )
    dtypes = {p.dtype for p in module.parameters()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in _DTYPES:
        raise ArgumentError(
            f"rct.from_torch: {name} parameters of dtype {sorted(map(str, dtypes))} are not supported "
            "(float32 or float64, all alike)"
        )
    if getattr(module, "proj_size", 0) and not isinstance(module, nn.LSTM):  # pragma: no cover  (torch refuses it)
        raise ArgumentError(f"rct.from_torch: proj_size is only for nn.LSTM, got {name}")


def _cell(module: nn.Module, layer: int):
    D = 2 if module.bidirectional else 1
    P = getattr(module, "proj_size", 0)
    Hout = P or module.hidden_size
    I = module.input_size if layer == 0 else Hout * D  # noqa: E741
    if isinstance(module, nn.LSTM):
        return lstm_cell(I, module.hidden_size, P, module.bias)
    if isinstance(module, nn.GRU):
        return gru_cell(I, module.hidden_size, module.bias)
    return rnn_cell(I, module.hidden_size, module.nonlinearity, module.bias)


def _torch_names(layer: int, reverse: bool, bias: bool, proj: bool) -> dict[str, str]:
    """our param name -> PyTorch's (each ours is PyTorch's transposed)."""
    s = f"_l{layer}" + ("_reverse" if reverse else "")
    names = {"W_ih": f"weight_ih{s}", "W_hh": f"weight_hh{s}"}
    if bias:
        names.update({"b_ih": f"bias_ih{s}", "b_hh": f"bias_hh{s}"})
    if proj:
        names["W_hr"] = f"weight_hr{s}"
    return names


class ImportedRNN(nn.Module):
    """An nn.RNN / nn.GRU / nn.LSTM rebuilt from rnncomp cells (see `rct.from_torch`)."""

    def __init__(self, module: nn.Module, **options):
        super().__init__()
        _unsupported(module)
        self.mode = type(module).__name__
        self.input_size, self.hidden_size, self.num_layers = module.input_size, module.hidden_size, module.num_layers
        self.bias, self.batch_first, self.bidirectional = module.bias, module.batch_first, module.bidirectional
        self.proj_size = getattr(module, "proj_size", 0)
        dtype = _DTYPES[next(module.parameters()).dtype]
        self._names: list[tuple[str, str, str]] = []  # (our parameter path, PyTorch's name, our param name)
        layers = []
        for k in range(self.num_layers):
            cell = _cell(module, k)
            dirs = [False, True] if self.bidirectional else [False]
            made = [Recurrent(cell, dtype=dtype, reverse=rev, **options) for rev in dirs]
            for rev in dirs:
                prefix = f"stack.layers.{k}." + (("bwd." if rev else "fwd.") if self.bidirectional else "")
                for ours, theirs in _torch_names(k, rev, self.bias, bool(self.proj_size)).items():
                    self._names.append((prefix + ours, theirs, ours))
            layers.append(Bidirectional(*made) if self.bidirectional else made[0])
        self.stack = Stack(layers)
        self.load_torch_state_dict(module.state_dict())
        self.to(next(module.parameters()).device)

    # -- weights in PyTorch's layout
    @torch.no_grad()
    def load_torch_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Copy weights from a state_dict of the PyTorch module (its names and (out, in) layout)."""
        params = dict(self.named_parameters())
        for path, theirs, _ in self._names:
            if theirs not in state:
                raise ArgumentError(f"load_torch_state_dict: missing {theirs!r}")
            w = state[theirs]
            params[path].copy_(w.t() if w.dim() == 2 else w)

    def torch_state_dict(self) -> dict[str, torch.Tensor]:
        """This module's weights under PyTorch's names and layout (for `nn.LSTM.load_state_dict`)."""
        params = dict(self.named_parameters())
        return {
            theirs: (params[p].detach().t() if params[p].dim() == 2 else params[p].detach()).contiguous()
            for p, theirs, _ in self._names
        }

    def torch_parameters(self) -> dict[str, tuple[str, nn.Parameter]]:
        """PyTorch's parameter name -> (our parameter's path, our parameter); ours = theirs transposed."""
        params = dict(self.named_parameters())
        return {theirs: (p, params[p]) for p, theirs, _ in self._names}

    # -- running
    def forward(self, input, hx=None, lengths=None):
        """As the PyTorch module: `output, h_n` (RNN, GRU) or `output, (h_n, c_n)` (LSTM)."""
        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None:
                raise ArgumentError(f"{self.mode}: argument 'lengths': the PackedSequence input has its own lengths")
            x, lengths = pad_packed_sequence(input)
        else:
            if not isinstance(input, torch.Tensor):
                raise ArgumentError(
                    f"{self.mode}: argument 'input': expected a tensor or PackedSequence, got {type(input).__name__}"
                )
            if input.dim() not in (2, 3):
                raise ArgumentError(
                    f"{self.mode}: argument 'input': expected a 3-D (batched) or 2-D (unbatched) tensor, "
                    f"got shape {tuple(input.shape)}"
                )
            x = input
        unbatched = not packed and x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1)
        elif self.batch_first and not packed:
            x = x.transpose(0, 1)
        inits = self._inits(hx, unbatched)
        out = self.stack(x, lengths=lengths, **inits)
        y = out[self.stack.output]
        D = 2 if self.bidirectional else 1
        keys = [f"_l{k}" + ("_reverse" if d else "") for k in range(self.num_layers) for d in range(D)]
        h_n = torch.stack([out["h" + s] for s in keys])
        state = (h_n, torch.stack([out["c" + s] for s in keys])) if self.mode == "LSTM" else h_n
        if unbatched:
            y = y.squeeze(1)
            state = (state[0].squeeze(1), state[1].squeeze(1)) if self.mode == "LSTM" else state.squeeze(1)
        elif packed:
            y = _repack(y, lengths, input)
        elif self.batch_first:
            y = y.transpose(0, 1)
        return y, state

    def _inits(self, hx, unbatched: bool) -> dict[str, torch.Tensor]:
        if hx is None:
            return {}
        if self.mode == "LSTM":
            if not (isinstance(hx, tuple) and len(hx) == 2):
                raise ArgumentError("LSTM: argument 'hx': expected a tuple (h_0, c_0)")
            parts = {"h": hx[0], "c": hx[1]}
        else:
            parts = {"h": hx}
        D = 2 if self.bidirectional else 1
        out = {}
        for name, t in parts.items():
            rank = 2 if unbatched else 3
            if not isinstance(t, torch.Tensor) or t.dim() != rank or t.shape[0] != self.num_layers * D:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ArgumentError(
                    f"{self.mode}: argument 'hx' ({name}_0): expected shape (num_layers * num_directions, "
                    f"{'' if unbatched else 'B, '}H), num_layers * num_directions = {self.num_layers * D}; got {got}"
                )
            if unbatched:
                t = t.unsqueeze(1)
            for k in range(self.num_layers):
                for d in range(D):
                    out[f"{name}_l{k}" + ("_reverse" if d else "")] = t[k * D + d]
        return out

    def extra_repr(self) -> str:
        return (
            f"{self.mode}({self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
            f"batch_first={self.batch_first}, bidirectional={self.bidirectional}, proj_size={self.proj_size})"
        )


def _repack(y: torch.Tensor, lengths: torch.Tensor, like: PackedSequence) -> PackedSequence:
    """`y` (T, B, F) packed in the same row order as the input PackedSequence `like`."""
    if like.sorted_indices is None:
        return pack_padded_sequence(y, lengths, enforce_sorted=True)
    order = like.sorted_indices
    p = pack_padded_sequence(y.index_select(1, order), lengths.index_select(0, order.cpu()), enforce_sorted=True)
    return PackedSequence(p.data, p.batch_sizes, like.sorted_indices, like.unsorted_indices)


def from_torch(module: nn.Module, **options) -> ImportedRNN:
    """An nn.RNN (tanh, relu), nn.GRU or nn.LSTM (proj_size too; num_layers, bidirectional, batch_first,
    bias) rebuilt from rnncomp cells with a copy of its weights; `options` go to every `rct.Recurrent`
    (rc.compile's: unroll, backend, checkpoint, ...). Unsupported options are named in the error."""
    return ImportedRNN(module, **options)
