"""Where values live in generated code (Ref), the refs of a block (Scope), and what generation returns
(Generated): one record each for both Numba printers."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ir import Node

Index = tuple[str, ...]


@dataclass(frozen=True)
class Ref:
    """A value in generated code: array `var` indexed first by `prefix` (a slot of a stacked array),
    or, if `scalar`, the expression `var` (`const`: a literal or module constant, the same everywhere)."""

    var: str
    prefix: tuple[str, ...] = ()
    contiguous: bool = True
    scalar: bool = False
    const: bool = False
    owned: bool = False  # a buffer of this function that nothing else refers to
    home: int = 0  # the kernel that binds `var` (0: `program`); other kernels get it as a parameter
    window: tuple[int, int, int] | None = None  # (axis, start, stop): a slice of the array along axis

    def array(self) -> str:
        a = f"{self.var}[{', '.join(self.prefix)}]" if self.prefix else self.var
        if self.window is None:
            return a
        axis, lo, hi = self.window
        return f"{a}[{':, ' * axis}{lo}:{hi}]"

    def index(self, idx: tuple[str, ...]) -> tuple[str, ...]:
        """An index into the window as an index into the array."""
        if self.window is None or self.window[1] == 0:
            return idx
        axis, lo, _ = self.window
        return idx[:axis] + (f"{lo} + {idx[axis]}",) + idx[axis + 1 :]

    def at(self, idx: tuple[str, ...]) -> str:
        """The element at `idx`, spelled with the names bound where `var` is (the CUDA printer's
        view; numba-cpu maps names into the kernel being built first)."""
        if self.scalar:
            return self.var
        full = self.prefix + self.index(tuple(idx))
        return f"{self.var}[{', '.join(full)}]" if full else f"{self.var}[()]"

    def slot(self, index: str) -> Ref:
        """One step `self[index]` of a stacked array (C-contiguous if the array is)."""
        return replace(self, prefix=self.prefix + (index,), owned=False)

    def part(self, axis: int, start: int, stop: int) -> Ref:
        """Elements start..stop along `axis`: an operand's place in a concatenation."""
        return replace(self, window=(axis, start, stop), owned=False, contiguous=self.contiguous and axis == 0)


class Scope:
    """The refs of one block's values (a loop body sees only its params)."""

    def __init__(self) -> None:
        self.refs: dict[int, Ref] = {}

    def get(self, node: Node) -> Ref | None:
        return self.refs.get(id(node))

    def set(self, node: Node, ref: Ref) -> None:
        self.refs[id(node)] = ref


@dataclass
class Arg:
    """A parameter of `program` and how the runner computes it."""

    name: str
    kind: str  # "input" (key: input name), "dim" (symbol), "count" (a trip count or start), "const" (array)
    key: Any


@dataclass
class Generated:
    """A generated module: its text, `program`'s parameters and outputs, and line -> IR node.
    `passed`: outputs that are arrays the runner passes in (name -> position in `args`), which
    `program` does not return (boxing a returned array costs compile time, not run time); `program`
    returns the other outputs, in the order of `outputs`. `llvm_level`: a lower LLVM level for
    `program` where its speed matters little (numba_cpu/optlevel.py)."""

    source: str
    args: list[Arg]
    outputs: list[str]
    owners: dict[int, str]
    function: str = "program"
    passed: dict[str, int] = field(default_factory=dict)
    llvm_level: int | None = None  # LLVM's optimisation level for `program` (None: Numba's)

    @property
    def returned(self) -> list[str]:
        return [k for k in self.outputs if k not in self.passed]


def tuple_text(items: list[str]) -> str:
    """`(a, b)`, `(a,)`, `()`."""
    return f"({items[0]},)" if len(items) == 1 else "(" + ", ".join(items) + ")"
