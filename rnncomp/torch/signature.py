"""What a compiled cell takes and returns, seen from PyTorch: names in a fixed order, declared
shapes, and the result shapes for given input shapes (the custom ops' fake implementations)."""

from __future__ import annotations

from ir import ArgumentError, Cell
from ir.shapes import symbols_of

T = object()  # the leading (time) dim of a sequence input and of a per-step output


class Signature:
    """Names and declared shapes of one cell: seqs, statics, params, states (inits) and results."""

    def __init__(self, cell: Cell, length: int | str):
        self.cell = cell
        self.seqs = [s.name for s in cell.seqs]
        self.statics = [u.name for u in cell.statics]  # per-row inputs, taken like seqs (after them)
        self.inputs = self.seqs + self.statics  # what a call takes positionally, in this order
        self.params = [p.name for p in cell.params]
        self.states = list(cell.state_types)
        self.outputs = list(cell.outputs)
        self.results = self.outputs + self.states  # the keys of prog(...), in this order
        self.length = length if isinstance(length, int) else None
        self.shapes: dict[str, tuple] = {s.name: (T,) + tuple(s.type.shape) for s in cell.seqs}
        self.shapes.update({p.name: tuple(p.type.shape) for p in cell.params + cell.statics})
        self.shapes.update({k: tuple(t.shape) for k, t in cell.state_types.items()})
        self.result_shapes = {k: (T,) + tuple(cell.outputs[k].type.shape) for k in self.outputs}
        self.result_shapes.update({k: tuple(cell.state_types[k].shape) for k in self.states})
        for p in cell.params:
            if any(isinstance(d, str) for d in p.type.shape):
                sizes = ", ".join(f"{d}=..." for d in sorted(symbols_of(p.type.shape)))
                raise ArgumentError(
                    f"cell {cell.name!r}: param {p.name!r} has shape {p.type.shape} with a symbolic dim; "
                    f"an nn.Parameter needs a concrete shape: bind it first, rc.with_dims(cell, {sizes})"
                )

    def role(self, name: str) -> str:
        if name in self.statics:
            return "static"
        return "seq" if name in self.seqs else "param" if name in self.params else "init"

    def bind(self, shapes: dict[str, tuple]) -> dict:
        """Symbol values (T and the cell's dims) from the given arguments' shapes."""
        env: dict = {}
        if self.length is not None:
            env[T] = self.length
        for name, got in shapes.items():
            for d, n in zip(self.shapes[name], got):
                if not isinstance(d, int):
                    env.setdefault(d, n)
        return env

    def out_shapes(self, shapes: dict[str, tuple]) -> list[tuple]:
        """The shapes of the results (in `results` order) for arguments of the given shapes."""
        env = self.bind(shapes)
        return [tuple(d if isinstance(d, int) else env[d] for d in self.result_shapes[k]) for k in self.results]

    def show(self, name: str) -> str:
        """A declared shape as text: `(T, B, 16)`."""
        return "(" + ", ".join("T" if d is T else str(d) for d in self.shapes[name]) + ")"
