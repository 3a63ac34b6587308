"""Shapes whose dims are ints or symbols (`B`, `T`, any identifier), and NumPy broadcasting over them."""

from __future__ import annotations

import keyword
import re

from .errors import ShapeError, VerifyError

Dim = int | str
Shape = tuple[Dim, ...]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def is_identifier(name: object) -> bool:
    """True for a plain ASCII identifier that is not a Python keyword: the only names rnncomp accepts."""
    return isinstance(name, str) and bool(_IDENT.match(name)) and not keyword.iskeyword(name)


def as_shape(dims: object) -> Shape:
    """Validate a user's shape: a tuple of non-negative ints and identifier symbols."""
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
            raise VerifyError(f"shape {tuple(dims)!r}: symbol {d!r} is not an identifier")
        out.append(int(d) if isinstance(d, int) else d)
    return tuple(out)


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
    """Replace bound symbols by their values."""
    return tuple(env.get(d, d) if isinstance(d, str) else d for d in shape)
