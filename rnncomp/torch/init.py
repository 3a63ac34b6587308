"""The default initialisation of a cell's params: PyTorch's rule for its recurrent layers.

Each param is drawn from U(-1/sqrt(H), 1/sqrt(H)), H the width (last dim) of the first state, in
the cell's declaration order, whose update reads the param through this step's values (an LSTM's
weights and biases: its hidden size, as `nn.LSTM` does). A param that feeds no state (a read-out)
takes H = its first dim (its fan-in, as `nn.Linear`'s weight bound).
"""

from __future__ import annotations

import math

import torch

from ir import Cell


def feeds(cell: Cell) -> dict[str, str | None]:
    """param name -> the first state (declaration order) whose update reads it, None if none does."""
    out: dict[str, str | None] = {p.name: None for p in cell.params}
    for state, node in cell.states.items():
        seen, stack = set(), [node]
        while stack:  # this step's values only: a delayed read is another step's state
            n = stack.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            if n.op == "param" and out.get(n.name, state) is None:
                out[n.name] = state
            stack.extend(u.node for u in n.inputs if u.delay == 0)
    return out


def bound(cell: Cell, name: str) -> float:
    """The half-width 1/sqrt(H) of the default U(-1/sqrt(H), 1/sqrt(H)) for param `name`."""
    state = feeds(cell)[name]
    if state is not None:
        H = cell.state_types[state].shape[-1]
    else:
        H = next(p for p in cell.params if p.name == name).type.shape[0] if _rank(cell, name) else 1
    return 1.0 / math.sqrt(H) if isinstance(H, int) and H > 0 else 1.0


def _rank(cell: Cell, name: str) -> int:
    return len(next(p for p in cell.params if p.name == name).type.shape)


@torch.no_grad()
def default_init(cell: Cell, params: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> None:
    """Fill `params` (name -> tensor) in place by the rule above."""
    for name, t in params.items():
        b = bound(cell, name)
        t.uniform_(-b, b, generator=generator)
