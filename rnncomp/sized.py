"""Programs of size-generic cells (`Param["H", "4*H"]`): one compiled program per binding of the sizes.

A cell's dim expressions are checked once, symbolically; the passes and backends get concrete
sizes. `rc.compile(cell, dims={"H": 256})` binds them ahead of time (a plain CompiledProgram that
refuses a call of other sizes by name). Without them, `SizedProgram` binds the sizes from each
call's arrays and compiles (once per binding, kept) the program of those sizes.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from ir import ArgumentError, Cell, VerifyError, verify_cell
from ir.limits import MAX_INT
from ir.specialize import all_symbols, check_whole, size_symbols, specialize

from .arguments import bind_symbols


def with_dims(cell: Cell, /, **dims: int) -> Cell:
    """`cell` with some of its dim symbols bound, e.g. `rc.with_dims(lstm, I=16, H=32)`: a size-generic
    cell written once, at the sizes an nn.Module, a benchmark or a test needs (`4*H` becomes 128)."""
    if not isinstance(cell, Cell):
        raise ArgumentError(f"with_dims(): expected an rnncomp Cell, got {type(cell).__name__}")
    return verify_cell(specialize(cell, check_dims(cell, dims, None, "with_dims()")))


def check_dims(cell: Cell, dims: Any, tsym: str | None, what: str = "argument 'dims'") -> dict[str, int]:
    """rc.compile's `dims=` checked: a dict naming symbols of the cell's types, each an int >= 0 that
    makes every dim expression a whole number."""
    if dims is None:
        return {}
    if not isinstance(dims, dict):
        raise ArgumentError(f"{what}: expected a dict such as {{'H': 256}}, got {type(dims).__name__}")
    known = sorted(all_symbols(cell))
    out: dict[str, int] = {}
    for k, v in dims.items():
        if k == tsym:
            raise ArgumentError(f"{what}: {k!r} is the sequence length; pass length={v!r} instead")
        if not isinstance(k, str) or k not in known:
            near = difflib.get_close_matches(str(k), known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ArgumentError(f"{what}: {k!r} is not a dim of cell {cell.name!r}{hint}; its dims are {known}")
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_INT:
            raise ArgumentError(f"{what}: {k}={v!r} must be an int >= 0")
        out[k] = int(v)
    try:
        check_whole(cell, out, {k: "dims=" for k in out})
    except VerifyError as e:
        raise ArgumentError(f"{what}: cell {cell.name!r}: {e}") from None
    return out


_INSPECT = ("ir", "source", "stages", "resources", "memory", "schedule", "choice", "pipeline", "plan")


class SizedProgram:
    """A compiled size-generic cell whose sizes are bound per call: `prog(**arrays)`, `vjp`,
    `value_and_grad` as a CompiledProgram's; `prog.at(H=32)` is the program of one binding (to inspect
    its IR or source). Each binding is compiled once and kept."""

    def __init__(self, generic, dims: dict[str, int], make: Callable[[dict[str, int]], Any]):
        self._generic = generic  # the CompiledProgram of the generic cell: its signature and checks
        self._make = make  # sizes -> the CompiledProgram of those sizes
        self.dims = dict(dims)  # bound ahead by rc.compile's dims=
        self.sizes = sorted(size_symbols(generic.cell) - set(dims))  # bound per call
        self._children: dict[tuple, Any] = {}

    @property
    def cell(self) -> Cell:
        return self._generic.cell

    def at(self, **dims: int):
        """The compiled program of these sizes (every size symbol of the cell bound), e.g. `prog.at(H=32)`."""
        missing = [s for s in self.sizes if s not in dims]
        if missing:
            raise ArgumentError(
                f"at(): size {missing[0]!r} is not bound; pass {', '.join(s + '=...' for s in missing)}"
            )
        env = {**self.dims, **check_dims(self.cell, dims, self._generic.tsym)}
        key = tuple(env[s] for s in self.sizes)
        if key not in self._children:
            self._children[key] = self._make(env)
        return self._children[key]

    def _child(self, arrays: dict):
        g = self._generic
        fixed = g.length if isinstance(g.length, int) else None
        env, _, _ = bind_symbols(g.cell, g.dtype, g.tsym, fixed, arrays, None, g._signature, self.dims)
        missing = [s for s in self.sizes if s not in env]
        if missing:
            raise ArgumentError(
                f"size {missing[0]!r} of cell {self.cell.name!r} is not bound by any argument; pass an array that "
                f"has it (a state's init), or compile with dims={{{missing[0]!r}: ...}}"
            )
        return self.at(**{s: env[s] for s in self.sizes})

    def __call__(self, /, *seqs, lengths=None, seed=None, **arrays):
        """Run the whole sequence, as CompiledProgram.__call__, with the program of the arrays' sizes."""
        arrays = self._generic._positional(seqs, arrays, "prog()")
        return self._child(arrays)(lengths=lengths, seed=seed, **arrays)

    def vjp(self, /, *seqs, lengths=None, wrt=None, seed=None, **arrays):
        """CompiledProgram.vjp with the program of the arrays' sizes."""
        arrays = self._generic._positional(seqs, arrays, "vjp()")
        return self._child(arrays).vjp(lengths=lengths, wrt=wrt, seed=seed, **arrays)

    def value_and_grad(self, output: str, /, *seqs, lengths=None, wrt=None, seed=None, **arrays):
        """CompiledProgram.value_and_grad with the program of the arrays' sizes."""
        arrays = self._generic._positional(seqs, arrays, "value_and_grad()")
        return self._child(arrays).value_and_grad(output, lengths=lengths, wrt=wrt, seed=seed, **arrays)

    def _vjp(self, lengths, arrays: dict, copy: bool, wrt=None, seed=None):
        return self._child(arrays)._vjp(lengths, arrays, copy, wrt=wrt, seed=seed)

    def gradient_names(self) -> list[str]:
        return self._generic.gradient_names()

    def __getattr__(self, name: str):
        if name in _INSPECT:
            sizes = ", ".join(f"{s}=..." for s in self.sizes)
            raise ArgumentError(
                f"{name}: cell {self.cell.name!r} is size-generic and {', '.join(self.sizes)} are bound per call; "
                f"inspect the program of one size with prog.at({sizes}).{name}, or compile with "
                f"dims={{{', '.join(repr(s) + ': ...' for s in self.sizes)}}}"
            )
        raise AttributeError(name)

    def __repr__(self) -> str:
        g = self._generic
        return (
            f"<rnncomp program {g.cell.name}: sizes {', '.join(self.sizes)} bound per call; length={g.length!r} "
            f"unroll={g.unroll!r} backend={g.backend!r} dtype={g.dtype}>"
        )
