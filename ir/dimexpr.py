"""Dims that are expressions of symbols (`4*H`, `H+I`, `H//4`), kept in one canonical spelling.

A dim expression is linear: integer multiples of symbols plus a constant, optionally divided exactly
by a positive constant (what `split` of a symbolic dim makes). Its canonical text is the dim itself
(`Dim = int | str`), so `H+H` and `2*H` are one dim and shapes compare by equality, as with plain
symbols. The grammar (ints, identifiers, + - * // /, parentheses, unary minus) is parsed by hand:
nothing is evaluated as Python. In a dim `//` and `/` are exact: `H//4` needs H divisible by 4.
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

from .errors import VerifyError
from .limits import MAX_COUNT_CHARS, MAX_INT

_TOKEN = re.compile(r"\s*(?:([0-9]+)|([A-Za-z_][A-Za-z0-9_]*)|(//|[-+*/()%]))")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

Lin = tuple[tuple[tuple[str, Fraction], ...], Fraction]  # ((symbol, coefficient), ...) sorted, constant


class DimError(VerifyError):
    """A dim expression that cannot be parsed, or that is not linear."""


def canonical(text: str) -> int | str:
    """The canonical form of a dim written as text: an int when it has no symbols, else its text."""
    return _spell(parse(text), text)


def parse(text: str) -> Lin:
    """The linear form of `text` (a canonical dim or a user's expression)."""
    return _parse(text)


def symbols(d: int | str) -> frozenset[str]:
    """The symbols a dim depends on."""
    return frozenset() if isinstance(d, int) else frozenset(s for s, _ in parse(d)[0])


def is_plain(d: int | str) -> bool:
    """An int or a bare symbol (`B`), as opposed to an expression (`4*H`)."""
    return isinstance(d, int) or _is_symbol(d)


@functools.lru_cache(maxsize=4096)
def _is_symbol(d: str) -> bool:
    return bool(_IDENT.match(d))


def add(*dims: int | str) -> int | str:
    """The sum of dims (concat's extent)."""
    coef: dict[str, Fraction] = {}
    const = Fraction(0)
    for d in dims:
        terms, c = _lin(d)
        const += c
        for s, k in terms:
            coef[s] = coef.get(s, Fraction(0)) + k
    return _spell(_norm(coef, const), "+".join(map(str, dims)))


def divide(d: int | str, k: int) -> int | str:
    """`d / k`, exact (split's extent); a DimError when no binding of the symbols makes it an integer."""
    terms, c = _lin(d)
    q = _norm({s: v / k for s, v in terms}, c / k)
    num, den = _integers(q)
    g = math.gcd(den, *(v for _, v in num[0]))
    if num[1] % g:
        raise DimError(f"{d} is not a multiple of {k} for any value of {', '.join(sorted(symbols(d)))}")
    return _spell(q, str(d))


def value(d: int | str, env: dict[str, int]) -> int:
    """The int a dim takes under `env`; a DimError naming the dim when a symbol is unbound, or when
    the value is not a whole number or is negative."""
    if isinstance(d, int):
        return d
    if d in env:
        return int(env[d])
    terms, c = parse(d)
    missing = sorted(s for s, _ in terms if s not in env)
    if missing:
        raise DimError(f"dim {d}: {', '.join(missing)} is not bound")
    v = c + sum((k * int(env[s]) for s, k in terms), Fraction(0))
    if v.denominator != 1:
        raise DimError(f"dim {d} is not a whole number: {d} = {v} with {_show_env(d, env)}")
    if v < 0:
        raise DimError(f"dim {d} is negative: {d} = {v} with {_show_env(d, env)}")
    return int(v)


def solve_one(d: str, n: int, env: dict[str, int]) -> str | None:
    """Bind the one unbound symbol of `d` so that `d == n` (returns it), or None if `d` has another
    number of unbound symbols. A DimError when no whole, non-negative value works."""
    terms, c = parse(d)
    free = [(s, k) for s, k in terms if s not in env]
    if len(free) != 1:
        return None
    s, k = free[0]
    rest = c + sum((v * int(env[t]) for t, v in terms if t in env), Fraction(0))
    x = (n - rest) / k
    if x.denominator != 1 or x < 0:
        raise DimError(f"{d} = {n} has no whole, non-negative solution for {s} (it would be {s} = {x})")
    env[s] = int(x)
    return s


def _show_env(d: str, env: dict[str, int]) -> str:
    return ", ".join(f"{s} = {env[s]}" for s in sorted(symbols(d)))


# ---------------------------------------------------------------- normal form


def _lin(d: int | str) -> Lin:
    return ((), Fraction(d)) if isinstance(d, int) else parse(d)


def _norm(coef: dict[str, Fraction], const: Fraction) -> Lin:
    return tuple(sorted((s, k) for s, k in coef.items() if k)), Fraction(const)


def _integers(lin: Lin) -> tuple[tuple[tuple[tuple[str, int], ...], int], int]:
    """(integer numerator, positive denominator) of a linear form, the denominator as small as can be."""
    terms, c = lin
    den = math.lcm(c.denominator, *(k.denominator for _, k in terms))
    return (tuple((s, int(k * den)) for s, k in terms), int(c * den)), den


def _spell(lin: Lin, where: str) -> int | str:
    """The canonical text: positive terms first, then negative ones, by symbol; then the constant."""
    (terms, c), den = _integers(lin)
    if not terms:
        if den != 1:
            raise DimError(f"dim {where} is {Fraction(c, den)}, not a whole number")
        if c < 0:
            raise DimError(f"dim {where} is negative ({c})")
        return c
    ordered = sorted(terms, key=lambda t: (t[1] < 0, t[0]))
    parts = []
    for i, (s, k) in enumerate(ordered):
        sign = "-" if k < 0 else ("+" if i else "")
        parts.append(sign + (s if abs(k) == 1 else f"{abs(k)}*{s}"))
    if c:
        parts.append(f"{'-' if c < 0 else '+'}{abs(c)}")
    num = "".join(parts)
    if den == 1:
        return num
    return f"({num})//{den}" if len(parts) > 1 else f"{num}//{den}"


# ---------------------------------------------------------------- parsing


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Lin:
    if not isinstance(text, str):
        raise DimError(f"a dim expression must be text, got {text!r}")
    if len(text) > MAX_COUNT_CHARS:  # also bounds the depth of the recursive parse
        raise DimError(
            f"dim expression of {len(text)} characters is above the limit of {MAX_COUNT_CHARS} "
            "(ir.limits.MAX_COUNT_CHARS)"
        )
    toks, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise DimError(f"bad dim expression {text!r} at column {pos + 1}")
        toks.append(m.group(1) or m.group(2) or m.group(3))
        pos = m.end()
    if not toks:
        raise DimError("empty dim expression")
    p = _Parser(toks, text)
    coef, const = p.sum()
    if p.i != len(toks):
        raise DimError(f"bad dim expression {text!r}: unexpected {toks[p.i]!r}")
    return _norm(coef, const)


class _Parser:
    """Recursive descent over the tokens; each rule gives a linear form as (coefficients, constant)."""

    def __init__(self, toks: list[str], text: str):
        self.toks, self.text, self.i = toks, text, 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def sum(self):
        coef, const = self.product()
        while self.peek() in ("+", "-"):
            op = self.toks[self.i]
            self.i += 1
            c2, k2 = self.product()
            sign = 1 if op == "+" else -1
            for s, v in c2.items():
                coef[s] = coef.get(s, Fraction(0)) + sign * v
            const += sign * k2
        return coef, const

    def product(self):
        coef, const = self.unary()
        while self.peek() in ("*", "//", "/", "%"):
            op = self.toks[self.i]
            if op == "%":
                raise DimError(f"dim expression {self.text!r}: '%' is not allowed in a dim (only + - * //)")
            self.i += 1
            c2, k2 = self.unary()
            if op == "*":
                if coef and c2:
                    raise DimError(
                        f"dim expression {self.text!r} is not linear: a product of symbols "
                        "(a dim may multiply a symbol by an int only)"
                    )
                if c2:
                    coef, const, c2, k2 = c2, k2, coef, const
                coef, const = {s: v * k2 for s, v in coef.items()}, const * k2
            else:
                if c2 or k2 <= 0 or k2.denominator != 1:
                    raise DimError(f"dim expression {self.text!r}: '{op}' must divide by a positive int constant")
                coef, const = {s: v / k2 for s, v in coef.items()}, const / k2
        return coef, const

    def unary(self):
        if self.peek() == "-":
            self.i += 1
            coef, const = self.unary()
            return {s: -v for s, v in coef.items()}, -const
        return self.atom()

    def atom(self):
        t = self.peek()
        if t is None:
            raise DimError(f"bad dim expression {self.text!r}: ends early")
        self.i += 1
        if t == "(":
            out = self.sum()
            if self.peek() != ")":
                raise DimError(f"bad dim expression {self.text!r}: missing ')'")
            self.i += 1
            return out
        if t.isdigit():
            v = int(t) if len(t) <= 20 else MAX_INT + 1
            if v > MAX_INT:
                raise DimError(f"dim expression {self.text[:40]!r}: an int above 2**63-1 (ir.limits.MAX_INT)")
            return {}, Fraction(v)
        if _IDENT.match(t):
            return {t: Fraction(1)}, Fraction(0)
        raise DimError(f"bad dim expression {self.text!r}: unexpected {t!r}")
