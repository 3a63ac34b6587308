"""A call's symbols: the dims its arrays bind and the loops' trip counts, for both Numba runners."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ir import ArgumentError, Program, dimexpr
from ir import symexpr as sx


class Binding:
    """How a program's dims and counts get their values at a call: from the symbols passed, else from
    the extents of the input arrays that carry them. Counts are memoised (parsing costs more)."""

    def __init__(self, prog: Program):
        self.prog = prog
        self.symbolic = {  # input name -> (axis, symbol) of each symbolic extent
            n.name: [(i, d) for i, d in enumerate(n.type.shape) if isinstance(d, str)]  # type: ignore[union-attr]
            for n in prog.inputs
        }
        self._counts: dict[tuple, int] = {}
        self._syms: dict[str, set[str]] = {}

    def env(self, arrays: Mapping[str, Any], symbols: Mapping[str, int]) -> dict[str, int]:
        """The symbols' values: those given, then each array's extents."""
        env = {k: int(v) for k, v in symbols.items()}
        for name, dims in self.symbolic.items():
            if name in arrays and dims:
                shape = arrays[name].shape
                for axis, sym in dims:
                    env.setdefault(sym, int(shape[axis]))
        return env

    def dim(self, sym: str, env: Mapping[str, int]) -> int:
        """A dim's value: a symbol's, or a dim expression's (`4*H`) from its symbols."""
        if sym in env:
            return int(env[sym])
        if not dimexpr.is_plain(sym) and dimexpr.symbols(sym) <= env.keys():
            try:
                return dimexpr.value(sym, dict(env))
            except dimexpr.DimError as e:
                raise ArgumentError(f"program {self.prog.name!r}: {e}") from None
        raise ArgumentError(f"program {self.prog.name!r}: dim {sym!r} is not bound by any array or symbol")

    def count(self, c: sx.Count, env: Mapping[str, int]) -> int:
        """A trip count or start for these symbols."""
        if isinstance(c, int):
            return c
        if c.text in env:  # the count is a symbol itself (a loop over all T steps)
            return int(env[c.text])
        if c.text not in self._syms:
            self._syms[c.text] = c.symbols
        key = (c.text, tuple(sorted((s, env.get(s)) for s in self._syms[c.text])))
        if key not in self._counts:
            self._counts[key] = sx.evaluate(c, dict(env))
        return self._counts[key]
