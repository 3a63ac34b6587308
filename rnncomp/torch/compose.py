"""Composition of layers for any cell: `Bidirectional` (a forward and a reversed layer side by
side) and `Stack` (each layer's per-step output is the next layer's first sequence input).

A layer here is anything with PyTorch's call `layer(x, lengths=..., **inits) -> dict of tensors`
and an `output` name: a `Recurrent`, a `Bidirectional`, or a `Stack` itself.
"""

from __future__ import annotations

import torch
from torch import nn

from ir import ArgumentError

from .recurrent import Recurrent

REVERSE = "_reverse"


def output_of(layer: nn.Module, output: str | None) -> str:
    """The per-step output that feeds the next layer: `output`, else the layer's only one."""
    if output is not None:
        return output
    if hasattr(layer, "output"):
        return layer.output
    outs = layer.sig.outputs
    if len(outs) != 1:
        raise ArgumentError(
            f"cell {layer.cell.name!r} has {len(outs)} per-step outputs {outs}: name the one to pass on with output=..."
        )
    return outs[0]


def _layer(layer) -> nn.Module:
    if not isinstance(layer, nn.Module) or not callable(layer):
        raise ArgumentError(f"expected an rnncomp.torch layer (Recurrent, Bidirectional, Stack), got {layer!r}")
    return layer


class Bidirectional(nn.Module):
    """A forward layer and a reversed one (compiled with reverse=True) over the same input.

        bi = rct.Bidirectional(rct.Recurrent(cell), rct.Recurrent(cell, reverse=True))
        out = bi(x, lengths=lengths, h=h0_forward, h_reverse=h0_backward)
        out["y"]            # both directions' outputs concatenated on the last axis: (T, B, 2H)
        out["h"], out["h_reverse"]   # each direction's final states (with lengths: at each row's end)

    With `lengths` the reversed layer runs each row from its last valid step to its first, as
    PyTorch's bidirectional layers do on a PackedSequence.
    """

    def __init__(self, forward: Recurrent, backward: Recurrent, output: str | None = None):
        super().__init__()
        self.fwd, self.bwd = _layer(forward), _layer(backward)
        if not getattr(backward, "options", {}).get("reverse", False):
            raise ArgumentError("Bidirectional: the backward layer must be compiled with reverse=True")
        if getattr(forward, "options", {}).get("reverse", False):
            raise ArgumentError("Bidirectional: the forward layer must not be reversed (reverse=False)")
        self.output = output_of(forward, output)
        if output_of(backward, output) != self.output:
            raise ArgumentError(
                f"Bidirectional: the two layers pass on different outputs ({self.output!r}, "
                f"{output_of(backward, output)!r})"
            )

    def forward(self, x, lengths=None, **inits) -> dict[str, torch.Tensor]:
        """Run both directions; inits `k` go to the forward layer, `k_reverse` to the backward one. A static
        (per-row input) `c` goes to both, unless `c_reverse` gives the backward one its own."""
        f_inits = {k: v for k, v in inits.items() if not k.endswith(REVERSE)}
        b_inits = {k[: -len(REVERSE)]: v for k, v in inits.items() if k.endswith(REVERSE)}
        for k in getattr(getattr(self.bwd, "sig", None), "statics", ()):
            if k in f_inits and k not in b_inits:
                b_inits[k] = f_inits[k]
        of = self.fwd(x, lengths=lengths, **f_inits)
        ob = self.bwd(x, lengths=lengths, **b_inits)
        out = {self.output: torch.cat([of[self.output], ob[self.output]], dim=-1)}
        out.update({k: v for k, v in of.items() if k != self.output})
        out.update({k + REVERSE: v for k, v in ob.items() if k != self.output})
        return out


def _suffixed(key: str, i: int) -> str:
    """PyTorch's naming: h -> h_l1, h_reverse -> h_l1_reverse."""
    if key.endswith(REVERSE):
        return f"{key[: -len(REVERSE)]}_l{i}{REVERSE}"
    return f"{key}_l{i}"


class Stack(nn.Module):
    """Layers in sequence: layer i's per-step `output` is layer i+1's first sequence input.

        net = rct.Stack([rct.Recurrent(cell0), rct.Recurrent(cell1)])
        out = net(x, lengths=lengths, h_l0=..., c_l1=...)
        out["y"]                   # the last layer's output
        out["h_l0"], out["c_l1"]   # every layer's final states (and other results), PyTorch-style names

    Bidirectional layers name theirs `h_l0_reverse` and so on; `lengths` go to every layer.
    """

    def __init__(self, layers, output: str | None = None):
        super().__init__()
        self.layers = nn.ModuleList([_layer(layer) for layer in layers])
        if not len(self.layers):
            raise ArgumentError("Stack: expected at least one layer")
        self.outputs = [output_of(layer, output) for layer in self.layers]
        self.output = self.outputs[-1]

    def forward(self, x, lengths=None, **inits) -> dict[str, torch.Tensor]:
        """Run every layer; inits are named `k_l{i}` (`k_l{i}_reverse`) for layer i's init `k`."""
        per = [{} for _ in self.layers]
        for k, v in inits.items():
            i, base = _layer_of(k, len(self.layers))
            per[i][base] = v
        result: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers):
            out = layer(x, lengths=lengths, **per[i])
            x = out[self.outputs[i]]
            result.update({_suffixed(k, i): v for k, v in out.items() if k != self.outputs[i]})
        result[self.output] = x
        return result


def _layer_of(key: str, n: int) -> tuple[int, str]:
    """'h_l1' -> (1, 'h'); 'h_l1_reverse' -> (1, 'h_reverse')."""
    rev = key.endswith(REVERSE)
    core = key[: -len(REVERSE)] if rev else key
    base, sep, idx = core.rpartition("_l")
    if not sep or not idx.isdigit() or int(idx) >= n:
        raise ArgumentError(
            f"Stack: unknown init {key!r}; inits are named k_l<i> (k_l<i>_reverse) for layer i in 0..{n - 1}"
        )
    return int(idx), base + (REVERSE if rev else "")
