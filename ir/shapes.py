"""Shapes whose dims are ints, symbols (`B`, `T`, any identifier) or linear expressions of symbols
(`4*H`, `H+I`, `H//4`: ir/dimexpr.py, in their canonical text), and NumPy broadcasting over them."""

from __future__ import annotations

import keyword
import re

from . import dimexpr
from .errors import ShapeError, VerifyError

Dim = int | str
Shape = tuple[Dim, ...]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def is_identifier(name: object) -> bool:
    """True for a plain ASCII identifier that is not a Python keyword: the only names rnncomp accepts."""
    return isinstance(name, str) and bool(_IDENT.match(name)) and not keyword.iskeyword(name)


def as_shape(dims: object) -> Shape:
    """Validate a user's shape: a tuple of non-negative ints, identifier symbols and dim expressions
    (`"4*H"`), each expression in its canonical spelling (`"H+H"` becomes `"2*H"`, `"H-H"` becomes 0)."""
    if isinstance(dims, (int, str)):
        dims = (dims,)
    if not isinstance(dims, (tuple, list)):
        raise VerifyError(f"a shape must be a tuple of ints and symbols, got {dims!r}")
    out = []
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, (int, str)):
            raise VerifyError(f"shape {tuple(dims)!r}: dim {d!r} is neither an int nor a symbol")
        if isinstance(d, int) and d < 0:
            raise VerifyError(f"shape {tuple(dims)!r}: dim {d} is negative")
        if isinstance(d, str) and not is_identifier(d):
            d = _expression(d, tuple(dims))
        out.append(int(d) if isinstance(d, int) else d)
    return tuple(out)


def _expression(d: str, dims: tuple) -> int | str:
    """A dim written as an expression, canonical; its symbols must be identifiers."""
    if _IDENT.match(d):  # an identifier that is a Python keyword
        raise VerifyError(f"shape {dims!r}: symbol {d!r} is not an identifier")
    try:
        canon = dimexpr.canonical(d)
    except VerifyError as e:
        raise VerifyError(f"shape {dims!r}: {e}") from None
    bad = sorted(s for s in dimexpr.symbols(canon) if not is_identifier(s))
    if bad:
        raise VerifyError(f"shape {dims!r}: symbol {bad[0]!r} in dim {d!r} is not an identifier")
    return canon


def symbols_of(shape: Shape) -> set[str]:
    """The symbols a shape's dims depend on (`(B, 4*H)`: B and H)."""
    out: set[str] = set()
    for d in shape:
        if isinstance(d, str):
            out |= {d} if _IDENT.match(d) else dimexpr.symbols(d)
    return out


def dim_value(d: Dim, env: dict[str, int]) -> Dim:
    """A dim with bound symbols replaced: an int when all of its symbols are bound, else unchanged."""
    if isinstance(d, int):
        return d
    if d in env:
        return int(env[d])
    if _IDENT.match(d) or not dimexpr.symbols(d) <= env.keys():
        return d
    return dimexpr.value(d, env)


def shape_str(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def broadcast(*shapes: Shape) -> Shape:
    """NumPy broadcasting with symbols: equal dims match, 1 stretches; raises ShapeError otherwise."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise ShapeError("cannot broadcast " + " with ".join(shape_str(s) for s in shapes))
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    """Turn a possibly negative axis into 0..rank-1."""
    if not -rank <= axis < rank:
        raise ShapeError(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank


def substitute(shape: Shape, env: dict[str, int]) -> Shape:
    """Replace bound symbols by their values (an expression once all of its symbols are bound)."""
    return tuple(dim_value(d, env) for d in shape)
