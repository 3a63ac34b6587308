"""Source text with indentation, and the node that owns each line (to map Numba errors back to the IR).
Lines hold the printer's marked names (names.py) until `render` drops the marks."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ir import Node
from ir.symexpr import Sym

from .names import plain

_SAFE_NAME = re.compile(r"%\d+|[A-Za-z_][A-Za-z0-9_]*(@[A-Za-z0-9_+\-]+)?\Z")


def float_text(v: float) -> str:
    """Python source for a float (what `repr` gives; `math.nan` / `math.inf` for the others)."""
    if math.isfinite(v):
        return repr(v)
    return "math.nan" if math.isnan(v) else ("-" if v < 0 else "") + "math.inf"


def safe_name(name: str) -> str:
    """A node's display name as it may appear in a comment: `h@3`, `x@t-1`, `%4`; anything else escaped."""
    return name if _SAFE_NAME.match(name) else ascii(name)


def comment_text(text: str) -> str:
    """Printable ASCII only: a comment can never end early or smuggle code onto a new line."""
    return "".join(c if " " <= c <= "~" else ascii(c)[1:-1] for c in text)


def _attr(v: Any) -> str:
    if isinstance(v, Sym):
        return v.text
    if isinstance(v, tuple) and v and isinstance(v[0], (tuple, float)):
        s = repr(v)
        return s if len(s) <= 40 else s[:37] + "..."
    return str(v)


def describe(node: Node, names: dict[int, str]) -> str:
    """`%3 = add(%1, %2) : f32[B, 128]`, the comment that names a node in generated code."""

    def nm(n: Node) -> str:
        return safe_name(names.get(id(n)) or n.name or "%?")

    args = ", ".join(nm(u.node) for u in node.inputs)
    attrs = {k: v for k, v in node.attrs.items() if k != "body"}
    extra = "{" + ", ".join(f"{k}={_attr(v)}" for k, v in attrs.items()) + "}" if attrs else ""
    return comment_text(f"{nm(node)} = {node.op}({args}){extra} : {node.type}")


class Writer:
    """Lines of code at an indentation depth, each tagged with the label of the node being emitted."""

    def __init__(self, depth: int = 0):
        self.lines: list[tuple[int, str, str | None]] = []
        self.depth = depth
        self.owner: str | None = None

    def line(self, text: str) -> None:
        self.lines.append((self.depth, text, self.owner))

    def comment(self, text: str) -> None:
        self.line("# " + comment_text(text))

    @contextmanager
    def indent(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    @contextmanager
    def owned_by(self, label: str | None) -> Iterator[None]:
        old, self.owner = self.owner, label
        try:
            yield
        finally:
            self.owner = old

    def extend(self, other: Writer) -> None:
        self.lines.extend((self.depth + d, t, o) for d, t, o in other.lines)

    def render(self, first_line: int = 1) -> tuple[list[str], dict[int, str]]:
        """The text lines and a map from 1-based line number (offset by first_line) to owner label."""
        text = ["    " * d + plain(t) for d, t, _ in self.lines]
        owners = {first_line + i: o for i, (_, _, o) in enumerate(self.lines) if o}
        return text, owners


def owner_at(owners: dict[int, str], lines: list[int]) -> tuple[str | None, int | None]:
    """The IR node whose code holds the first of `lines` (1-based) that lies in an owned region,
    and that line: how a compile or run failure is traced back to the node that produced it."""
    for ln in lines:
        near = [k for k in owners if k <= ln]
        if near and ln:
            return owners[max(near)], ln
    return None, None
