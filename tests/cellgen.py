"""Random well-formed cells for property tests, built through the public DSL (`rc.Graph`).

With Hypothesis (shrinks toward fewer ops, smaller sizes and earlier operands):

    from hypothesis import given, settings
    from tests.cellgen import cells

    @settings(max_examples=200, deadline=None)
    @given(cells())                       # options: cells(max_ops=6, smooth=True, dtype="f64", ...)
    def test_something(cell): ...

Without it, seeded and reproducible:

    from tests.cellgen import random_cell
    cell = random_cell(7)                 # an int seed, a np.random.Generator, or a Hypothesis `draw`

Arguments for a run: `tests.support.random_args(cell, T, B, seed)` (seqs ~ N(0, 1), params ~ 0.5 N(0, 1)).

What a cell holds: 1-2 seqs `x0, x1 : (B, n)`, 1-3 states `h0.. : (B, n)` each read at delays 1-3
through `.prev(d)` (seqs sometimes too), params `W*`, `U*`, `b*` made where an op needs them, a
random chain of elementwise, matmul, shape and reduction ops with Python-number and small array
constants, and 1-2 per-step outputs `y0, y1`. Every value is batch-major with a concrete feature
size, so `lengths=` runs work. Values stay tame: each state's new value is squashed (tanh, sigmoid
or a sigmoid-gated mix, so states never grow over time); `exp` only sees values with a small hard
bound; divisors are `1 + exp(u)` or `2 + tanh(u)` (>= 1); `log` is taken of `1 + v*v`; ops whose
typical magnitude would pass `_MAX_SCALE` are not chosen. So seeded inputs of scale ~1 stay finite
over 20+ steps (tests/test_text.py runs the oracle with `strict=True` to check this).
`smooth=True` leaves out relu, max and where, whose kinks would upset finite-difference checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

import rnncomp as rc
from ir.shapes import broadcast
from rnncomp import Value

_MAX_SCALE = 30.0  # no value whose typical magnitude exceeds this
_EXP_BOUND = 3.0  # exp only of values with |v| <= this, so |exp(v)| <= e**3
_PARAM_SCALE = 0.5  # the assumed scale of params (tests.support.random_args)


class Chooser:
    """The random choices, from a NumPy Generator, an int seed or a Hypothesis `draw`."""

    def __init__(self, source: int | np.random.Generator | Callable[..., Any]):
        self.draw = source if callable(source) and not isinstance(source, np.random.Generator) else None
        self.rng = None
        if self.draw is None:
            self.rng = source if isinstance(source, np.random.Generator) else np.random.default_rng(source)

    def integer(self, lo: int, hi: int) -> int:
        """An int in lo..hi (both included); Hypothesis shrinks it toward lo."""
        if self.draw is not None:
            return self.draw(st.integers(lo, hi))
        return int(self.rng.integers(lo, hi + 1))  # type: ignore[union-attr]

    def choice(self, items: Sequence[Any]) -> Any:
        """One of `items`; Hypothesis shrinks toward the first."""
        return items[self.integer(0, len(items) - 1)]

    def chance(self, p: float) -> bool:
        return self.integer(0, 99) < round(p * 100)

    def number(self, lo: float, hi: float) -> float:
        """A float in [lo, hi] on a 1/8 grid (readable in printed IR)."""
        return lo + self.integer(0, round((hi - lo) * 8)) / 8


@dataclass
class _V:
    """A value in the pool with its typical magnitude and a hard bound on |value| (inf if none)."""

    value: Value
    scale: float
    bound: float

    @property
    def shape(self) -> tuple:
        return self.value.shape

    @property
    def n(self) -> int:
        return self.value.shape[-1]


class _Gen:
    def __init__(self, ch: Chooser, name: str, max_ops: int, n_seqs: tuple[int, int], n_states: tuple[int, int],
                 max_delay: int, sizes: Sequence[int], smooth: bool, dtype: str, graph: rc.Graph | None = None,
                 prefix: str = ""):  # fmt: skip
        self.ch, self.sizes, self.smooth, self.dtype, self.max_delay = ch, list(sizes), smooth, dtype, max_delay
        self.g = graph if graph is not None else rc.Graph(name)
        self.prefix = prefix  # before every name: several cells can share one graph (`random_union`)
        self.pool: list[_V] = []
        self.counts: dict[str, int] = {}
        p = prefix
        self.seqs = [self.g.seq(f"{p}x{i}", ("B", ch.choice(self.sizes)), dtype) for i in range(ch.integer(*n_seqs))]
        n = ch.integer(*n_states)
        self.states = [self.g.state(f"{p}h{i}", ("B", ch.choice(self.sizes)), dtype) for i in range(n)]
        self.delays = [ch.integer(1, max_delay) for _ in self.states]
        self.max_ops = max_ops

    # -- helpers
    def param(self, prefix: str, shape: tuple) -> Value:
        k = self.counts[prefix] = self.counts.get(prefix, -1) + 1
        return self.g.param(f"{self.prefix}{prefix}{k}", shape, self.dtype)

    def pick(self, ok: Callable[[_V], bool] = lambda v: True, recent: bool = False) -> _V | None:
        """A pool value that passes `ok` (one of the last three such with `recent`), or None."""
        cands = [v for v in self.pool if ok(v)]
        if recent:
            cands = cands[::-1][:3]
        return self.ch.choice(cands) if cands else None

    def add(self, value: Value, scale: float, bound: float) -> _V:
        v = _V(value, scale, bound)
        self.pool.append(v)
        return v

    def project(self, v: _V, n: int) -> _V:
        """`v @ W` with a new param W: (v.n, n)."""
        w = self.param("W", (v.n, n))
        s = math.sqrt(v.n) * v.scale * _PARAM_SCALE
        return _V(v.value @ w, s, v.bound * v.n * 4 * _PARAM_SCALE)

    # -- the graph
    def build(self) -> rc.Cell:
        self.add_nodes()
        return self.g.build()

    def add_nodes(self) -> None:
        for x in self.seqs:
            self.add(x, 1.0, math.inf)
            if self.ch.chance(0.3):
                self.add(x.prev(self.ch.integer(1, self.max_delay)), 1.0, math.inf)
        for s, d in zip(self.states, self.delays, strict=True):
            self.add(s.prev(d), 1.0, math.inf)  # inits may be passed, of scale ~1
        n_ops = self.ch.integer(0, self.max_ops)
        # states are defined in order, interleaved with ops; a state read at delay 0 (after its
        # definition) feeds only later values, so no delay-0 cycle can form
        cut = sorted(self.ch.integer(0, n_ops) for _ in self.states)
        done = 0
        for i, s in enumerate(self.states):
            for _ in range(cut[i] - done):
                self.step()
            done = cut[i]
            self.define(i, s)
        for _ in range(n_ops - done):
            self.step()
        for k in range(self.ch.integer(1, 2)):
            self.g.output(f"{self.prefix}y{k}", self.pick(recent=True).value)  # type: ignore[union-attr]

    def define(self, i: int, s: rc.State) -> None:
        n, prev = s.shape[-1], s.prev(self.delays[i])
        src = self.project(self.pick(lambda v: len(v.shape) == 2, recent=True), n)  # type: ignore[arg-type]
        form = self.ch.choice(["elman", "gated", "squash"])
        if form == "squash":
            new = rc.sigmoid(src.value) if self.ch.chance(0.5) else rc.tanh(src.value)
        else:
            rec = prev @ self.param("U", (n, n)) + src.value + self.param("b", (n,))
            new = rc.tanh(rec)
            if form == "gated":
                gate_src = self.project(self.pick(lambda v: len(v.shape) == 2), n)  # type: ignore[arg-type]
                z = rc.sigmoid(gate_src.value)
                new = z * prev + (1.0 - z) * new
        s.define(new)
        self.add(s, 1.0, math.inf)  # its value this step (bounded after step 0; the init may be ~1)

    def step(self) -> None:
        """One random op over values of the pool (a few tries; an op with no fitting operands is skipped)."""
        families = ["unary", "binary", "binary", "matmul", "const", "div", "log", "reduce", "reduce",
                    "softmax", "concat", "split", "slice", "where", "exp", "unary"]  # fmt: skip
        for _ in range(4):
            fam = self.ch.choice(families)
            made = getattr(self, f"op_{fam}")()
            if made is not None and made.scale <= _MAX_SCALE:
                self.pool.append(made)
                return

    # -- op families: each returns a new _V, or None when the pool has nothing that fits
    def op_unary(self) -> _V | None:
        ops = ["tanh", "sigmoid", "softplus", "neg"] + ([] if self.smooth else ["relu"])
        op, v = self.ch.choice(ops), self.pick()
        if op in ("tanh", "sigmoid"):
            return _V(getattr(rc, op)(v.value), 0.5, 1.0)  # type: ignore[union-attr]
        if op == "softplus":
            return _V(rc.softplus(v.value), v.scale + 0.7, v.bound + 0.7)  # type: ignore[union-attr]
        return _V(getattr(rc, op)(v.value), v.scale, v.bound)  # type: ignore[union-attr]

    def op_exp(self) -> _V | None:
        """`exp(v)` of a value with a small hard bound, else `exp(tanh(v))`."""
        v = self.pick(lambda v: v.bound <= _EXP_BOUND)
        if v is None or self.ch.chance(0.5):
            v = self.pick()
            v = _V(rc.tanh(v.value), 0.5, 1.0)  # type: ignore[union-attr]
        return _V(rc.exp(v.value), math.exp(v.scale), math.exp(v.bound))

    def op_binary(self) -> _V | None:
        a, op = self.pick(), self.ch.choice(["add", "sub", "mul"])
        b = self.pick(lambda v: _fits(a.shape, v.shape))  # type: ignore[union-attr]
        if self.ch.chance(0.2) and len(a.shape) == 2:  # type: ignore[union-attr]
            b = _V(self.param("b", (a.n,)), _PARAM_SCALE, math.inf)  # type: ignore[union-attr]
        fn = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y}[op]
        if op == "mul":
            return _V(fn(a.value, b.value), a.scale * b.scale, a.bound * b.bound)  # type: ignore[union-attr]
        return _V(fn(a.value, b.value), a.scale + b.scale, a.bound + b.bound)  # type: ignore[union-attr]

    def op_const(self) -> _V | None:
        """An op with a Python number, or now and then a small array constant."""
        a = self.pick()
        c = self.ch.number(-2.0, 2.0)
        if self.ch.chance(0.25) and len(a.shape) == 2:  # type: ignore[union-attr]
            arr = [self.ch.number(-1.0, 1.0) for _ in range(a.n)]  # type: ignore[union-attr]
            return _V(a.value * rc.constant(arr, self.dtype), a.scale, a.bound)  # type: ignore[union-attr]
        if self.ch.chance(0.5):
            return _V(a.value * c, a.scale * max(abs(c), 0.1), a.bound * abs(c))  # type: ignore[union-attr]
        return _V(c + a.value if self.ch.chance(0.5) else a.value - c, a.scale + abs(c), a.bound + abs(c))  # type: ignore[union-attr]

    def op_div(self) -> _V | None:
        """`a / (1 + exp(u))` or `a / (2 + tanh(u))`: divisors >= 1."""
        a = self.pick()
        u = self.pick(lambda v: v.bound <= _EXP_BOUND and _fits(a.shape, v.shape))  # type: ignore[union-attr]
        if u is not None and self.ch.chance(0.5):
            den = 1.0 + rc.exp(u.value)
        else:
            u = self.pick(lambda v: _fits(a.shape, v.shape))  # type: ignore[union-attr]
            den = 2.0 + rc.tanh(u.value)  # type: ignore[union-attr]
        return _V(a.value / den, a.scale, a.bound)  # type: ignore[union-attr]

    def op_log(self) -> _V | None:
        """`log(1 + v*v)`: its argument is >= 1."""
        v = self.pick()
        return _V(rc.log(1.0 + v.value * v.value), math.log1p(v.scale**2), math.log1p(v.bound**2))  # type: ignore[union-attr]

    def op_matmul(self) -> _V | None:
        v = self.pick(lambda v: len(v.shape) == 2)
        return None if v is None else self.project(v, self.ch.choice(self.sizes))

    def op_reduce(self) -> _V | None:
        op = self.ch.choice(["sum", "mean"] + ([] if self.smooth else ["max"]))
        v = self.pick(lambda v: len(v.shape) == 2)
        if v is None:
            return None
        keep = self.ch.chance(0.8)
        out = getattr(rc, op)(v.value, axis=-1, keepdims=keep)
        grow = v.n if op == "sum" else 1
        return _V(out, v.scale * math.sqrt(grow), v.bound * grow)

    def op_softmax(self) -> _V | None:
        v = self.pick(lambda v: len(v.shape) == 2)
        if v is None:
            return None
        if self.ch.chance(0.5):
            return _V(rc.softmax(v.value), 0.5, 1.0)
        return _V(rc.log_softmax(v.value), v.scale + math.log(v.n + 1), 2 * v.bound + math.log(v.n + 1))

    def op_concat(self) -> _V | None:
        parts = [v for v in (self.pick(lambda v: len(v.shape) == 2) for _ in range(self.ch.integer(2, 3))) if v]
        if not parts or sum(p.n for p in parts) > 16:
            return None
        return _V(rc.concat([p.value for p in parts]), max(p.scale for p in parts), max(p.bound for p in parts))

    def op_split(self) -> _V | None:
        parts = self.ch.choice([2, 3, 4])
        v = self.pick(lambda v: len(v.shape) == 2 and v.n % parts == 0 and v.n > parts - 1)
        if v is None:
            return None
        pieces = rc.split(v.value, parts)
        return _V(pieces[self.ch.integer(0, parts - 1)], v.scale, v.bound)

    def op_slice(self) -> _V | None:
        v = self.pick(lambda v: len(v.shape) == 2 and v.n >= 2)
        if v is None:
            return None
        start = self.ch.integer(0, v.n - 1)
        stop = self.ch.integer(start + 1, v.n)
        return _V(rc.slice(v.value, start, stop), v.scale, v.bound)

    def op_where(self) -> _V | None:
        if self.smooth:
            return None
        a = self.pick()
        b = self.pick(lambda v: _fits(a.shape, v.shape))  # type: ignore[union-attr]
        cond = self.pick(lambda v: _fits(a.shape, v.shape))  # type: ignore[union-attr]
        out = rc.where(rc.relu(cond.value), a.value, b.value)  # type: ignore[union-attr]
        return _V(out, max(a.scale, b.scale), max(a.bound, b.bound))  # type: ignore[union-attr]


def _fits(a: tuple, b: tuple) -> bool:
    """`b` broadcasts against `a` without changing `a`'s shape."""
    try:
        return broadcast(a, b) == tuple(a)
    except rc.RnncompError:
        return False


def random_cell(
    source: int | np.random.Generator | Callable[..., Any],
    *,
    name: str = "random",
    max_ops: int = 12,
    n_seqs: tuple[int, int] = (1, 2),
    n_states: tuple[int, int] = (1, 3),
    max_delay: int = 3,
    sizes: Sequence[int] = (1, 2, 3, 4, 6, 8),
    smooth: bool = False,
    dtype: str = "f32",
) -> rc.Cell:
    """A random well-formed, verified cell; `source` is an int seed, a NumPy Generator or a Hypothesis `draw`."""
    return _Gen(Chooser(source), name, max_ops, n_seqs, n_states, max_delay, sizes, smooth, dtype).build()


def random_union(seeds: Sequence[int], *, name: str = "union", **options: Any) -> rc.Cell:
    """`random_cell(seed, **options)` for each seed, side by side in one cell (names prefixed `c<i>_`):
    they share no value, so one compile checks them all, and a wrong output or gradient names its part."""
    g = rc.Graph(name)
    for i, seed in enumerate(seeds):
        opts = {"max_ops": 12, "n_seqs": (1, 2), "n_states": (1, 3), "max_delay": 3, "sizes": (1, 2, 3, 4, 6, 8),
                "smooth": False, "dtype": "f32", **options}  # fmt: skip
        _Gen(Chooser(seed), name, graph=g, prefix=f"c{i}_", **opts).add_nodes()
    return g.build()


def cells(**options: Any) -> st.SearchStrategy[rc.Cell]:
    """A Hypothesis strategy of random cells; `options` are those of `random_cell`."""
    return st.composite(lambda draw: random_cell(draw, **options))()


__all__ = ["Chooser", "cells", "random_cell", "random_union"]
