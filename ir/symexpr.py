"""Trip counts and offsets over symbolic lengths: `T`, `T//4`, `T%4`, `T//4*4`, or plain ints.

A small closed grammar (ints, identifiers, + - * // %, parentheses) parsed by hand and evaluated
on a dict of bindings: it never evaluates Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import VerifyError
from .limits import MAX_COUNT_CHARS, MAX_INT

_TOKEN = re.compile(r"\s*(?:([0-9]+)|([A-Za-z_][A-Za-z0-9_]*)|(//|[-+*%()]))")


@dataclass(frozen=True)
class Sym:
    """A symbolic integer expression; `text` is its canonical spelling."""

    text: str

    def __post_init__(self) -> None:
        _parse(self.text)  # validate once

    def evaluate(self, env: dict[str, int]) -> int:
        return _eval(_parse(self.text), env, self.text)

    @property
    def symbols(self) -> set[str]:
        return {m.group(2) for m in _TOKEN.finditer(self.text) if m.group(2)}

    def __str__(self) -> str:
        return self.text


Count = int | Sym


def count(x: int | str | Sym) -> Count:
    """Normalise an int, a symbol name or an expression text to a Count (ints stay ints)."""
    if isinstance(x, Sym):
        return x
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    if isinstance(x, str):
        s = x.replace(" ", "")
        if s.isascii() and s.isdigit():
            return _int(s, x)
        return Sym(s)
    raise VerifyError(f"{x!r} is not an int or a symbolic expression")


def evaluate(c: Count, env: dict[str, int]) -> int:
    return c if isinstance(c, int) else c.evaluate(env)


def floordiv(c: Count, k: int) -> Count:
    return c // k if isinstance(c, int) else Sym(f"{_wrap(c)}//{k}")


def mod(c: Count, k: int) -> Count:
    return c % k if isinstance(c, int) else Sym(f"{_wrap(c)}%{k}")


def mul(c: Count, k: int) -> Count:
    return c * k if isinstance(c, int) else Sym(f"{_wrap(c)}*{k}")


def _wrap(c: Sym) -> str:
    return c.text if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*|\d+", c.text) or c.text.startswith("(") else f"({c.text})"


# ---------------------------------------------------------------- parsing


def _int(digits: str, text: str) -> int:
    v = int(digits) if len(digits) <= 20 else MAX_INT + 1  # int() of 4,300+ digits is itself an error
    if v > MAX_INT:
        raise VerifyError(f"symbolic expression {text[:40]!r}: an int above 2**63-1 (ir.limits.MAX_INT)")
    return v


def _tokens(text: str) -> list[str]:
    if len(text) > MAX_COUNT_CHARS:  # also bounds the depth of the recursive parse and evaluation
        raise VerifyError(
            f"symbolic expression of {len(text)} characters is above the limit of {MAX_COUNT_CHARS} "
            "(ir.limits.MAX_COUNT_CHARS)"
        )
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise VerifyError(f"bad symbolic expression {text!r} at column {pos + 1}")
        tok = m.group(1) or m.group(2) or m.group(3)
        if m.group(1):
            _int(tok, text)
        out.append(tok)
        pos = m.end()
    return out


def _parse(text: str):
    toks = _tokens(text)
    if not toks:
        raise VerifyError("empty symbolic expression")
    node, i = _sum(toks, 0, text)
    if i != len(toks):
        raise VerifyError(f"bad symbolic expression {text!r}: unexpected {toks[i]!r}")
    return node


def _sum(toks, i, text):
    node, i = _prod(toks, i, text)
    while i < len(toks) and toks[i] in "+-":
        rhs, j = _prod(toks, i + 1, text)
        node, i = (toks[i], node, rhs), j
    return node, i


def _prod(toks, i, text):
    node, i = _atom(toks, i, text)
    while i < len(toks) and toks[i] in ("*", "//", "%"):
        rhs, j = _atom(toks, i + 1, text)
        node, i = (toks[i], node, rhs), j
    return node, i


def _atom(toks, i, text):
    if i >= len(toks):
        raise VerifyError(f"bad symbolic expression {text!r}: ends early")
    t = toks[i]
    if t == "(":
        node, j = _sum(toks, i + 1, text)
        if j >= len(toks) or toks[j] != ")":
            raise VerifyError(f"bad symbolic expression {text!r}: missing ')'")
        return node, j + 1
    if t.isdigit():
        return int(t), i + 1
    if t[0].isalpha() or t[0] == "_":
        return t, i + 1
    raise VerifyError(f"bad symbolic expression {text!r}: unexpected {t!r}")


def _eval(node, env: dict[str, int], text: str) -> int:
    if isinstance(node, int):
        return node
    if isinstance(node, str):
        if node not in env:
            raise VerifyError(f"symbol {node!r} in {text!r} is not bound")
        return int(env[node])
    op, a, b = node
    x, y = _eval(a, env, text), _eval(b, env, text)
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if y == 0:
        raise VerifyError(f"division by zero in {text!r}")
    return x // y if op == "//" else x % y
