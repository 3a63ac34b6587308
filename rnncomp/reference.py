"""The oracle: a cell run step by step in float64 NumPy, exactly as DESIGN.md's Semantics say.

Slow and obvious on purpose: every backend and unroll mode is tested against `run`. Each node is
evaluated with its op's `numpy` function (the normative meaning of the op); every float dtype is
taken as f64, so constants and casts to a float type keep their exact float64 value.
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np

from ir import ArgumentError, Cell, Node, RnncompError, Use, VerifyError, get_op, verify_cell
from ir.dimexpr import is_plain
from ir.dtypes import DType
from ir.mask_ops import mask_values
from ir.names import label, name_nodes
from ir.philox import seed_key
from ir.shapes import Shape, substitute, symbols_of
from ir.specialize import check_whole
from ir.types import TensorType

from .arguments import solve_expressions

RESERVED = ("lengths", "strict", "steps", "seed")


class NonFiniteError(RnncompError, FloatingPointError):
    """`strict=True` found a NaN or an infinity in a node's value."""


def run(
    cell: Cell,
    /,
    lengths: Any = None,
    *,
    strict: bool = False,
    steps: int | None = None,
    seed: int | None = None,
    **arrays: Any,
) -> dict[str, np.ndarray]:
    """Run `cell` over a whole sequence; return per-step outputs stacked `(T, ...)` and final states.

    Arguments: every seq as a time-major array `(T, *declared)`, every param and static as declared
    (a static holds one value per batch row, read unchanged at every step), and
    optionally a state's init under the state's name (zeros when absent). A read with delay d at a
    step t < d reads the source's init (zeros for a seq). `steps=T` gives the length of a cell
    without seqs. `strict=True` raises `NonFiniteError` when a node's value holds a NaN or an inf.

    `lengths` (shape (B,), integers in [0, T]) applies TensorFlow dynamic_rnn's copy-through rule:
    every row is computed at every step, then for row b and t >= L_b per-step outputs are set to 0
    and each recurrent source keeps its value from step L_b - 1 (its init if L_b = 0). This defines
    the history past L_b: the value of state h (or of a seq x read with a delay) at a step s >= L_b
    is the frozen value, so a read h[t-d] with t-d >= L_b sees h[L_b - 1]. Only dead rows read it,
    so it shows in live rows only through ops that mix the batch (a sum over axis 0, say).
    With `lengths`, every state, delayed seq and output must have the batch as its leading dim.

    `seed` (an int) draws the dropout / zoneout masks (ir/mask_ops.py: step t's mask of each site);
    without it every mask takes its expectation (dropout the identity, zoneout p*old + (1-p)*new).
    """
    if not isinstance(cell, Cell):
        got = type(cell).__name__
        raise ArgumentError(f"cell: expected an rnncomp Cell (from @rc.cell or rc.Graph.build()), got {got}")
    verify_cell(cell)
    env, src = _bind(cell, arrays, steps)
    T = env["T"]
    inits = _inits(cell, arrays, env)
    lens = None if lengths is None else _lengths(cell, lengths, env, src)
    words = (0, 0, 0, 0) if seed is None else (*seed_key(seed), 0, 1)
    return _Run(cell, env, strict, words).go(T, _floats(cell, arrays), inits, lens)


# ---------------------------------------------------------------- arguments


def _bind(cell: Cell, arrays: dict[str, Any], steps: int | None) -> tuple[dict[str, int], dict[str, str]]:
    """Check names and shapes of seqs, params and inits; return the bound symbols and who bound each."""
    shapes = _declared(cell)
    required = [n.name for n in cell.inputs]
    clash = [k for k in shapes if k in RESERVED]
    if clash:
        raise ArgumentError(
            f"cell {cell.name!r} names an argument {clash[0]!r}, a keyword run() reserves {RESERVED}: rename it"
        )
    for name in arrays:
        if name not in shapes:
            hint = _closest(name, list(shapes))
            raise ArgumentError(f"unknown argument {name!r}{hint}; cell {cell.name!r} takes {list(shapes)}")
    for name in required:
        if name not in arrays:
            raise ArgumentError(f"missing argument {name!r} of shape {_show(shapes[name], {})}")
    env: dict[str, int] = {}
    src: dict[str, str] = {}
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ArgumentError(f"steps: expected an int >= 0, got {steps!r}")
        env["T"], src["T"] = int(steps), "steps"
    elif not cell.seqs:
        raise ArgumentError(f"cell {cell.name!r} has no sequence input, so the length is unknown: pass steps=T")
    for name in shapes:  # declared order, so messages say which argument bound a symbol first
        if name in arrays:
            _check_shape(name, _array(name, arrays[name]), shapes[name], env, src)
    roles = {n.name: n.op for n in cell.inputs}
    given = {k: (roles.get(k, "init"), shapes[k]) for k in shapes if k in arrays}
    solve_expressions(given, {k: np.asarray(arrays[k]) for k in given}, env, src)  # dim expressions: 4*H binds H
    try:
        check_whole(cell, env, src)
    except VerifyError as e:
        raise ArgumentError(f"cell {cell.name!r}: {e}") from None
    return env, src


def _declared(cell: Cell) -> dict[str, Shape]:
    """Every argument the cell takes and its full shape: seqs `(T, ...)`, params, statics, then inits."""
    out: dict[str, Shape] = {n.name: ("T",) + n.type.shape for n in cell.seqs}  # type: ignore[misc,operator,union-attr]
    out.update({n.name: n.type.shape for n in cell.params})  # type: ignore[misc,union-attr]
    out.update({n.name: n.type.shape for n in cell.statics})  # type: ignore[misc,union-attr]
    out.update({k: t.shape for k, t in cell.state_types.items()})
    return out


def _closest(name: str, options: list[str]) -> str:
    near = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _tuple(shape: tuple) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _show(shape: Shape, env: dict[str, int]) -> str:
    """`(T, B, 16) = (7, 3, 16)`: a declared shape, and its value when its symbols are bound."""
    try:
        bound = substitute(shape, env)
    except RnncompError:  # a dim expression that is not a whole number: the caller says so
        return _tuple(shape)
    if bound == shape or any(isinstance(d, str) for d in bound):
        return _tuple(shape)
    return f"{_tuple(shape)} = {_tuple(bound)}"


def _array(name: str, value: Any) -> np.ndarray:
    try:
        a = np.asarray(value)
    except Exception as e:  # noqa: BLE001  (anything that is not array-like)
        raise ArgumentError(f"{name}: expected an array, got {type(value).__name__} ({e})") from None
    if a.dtype.kind not in "biuf":
        raise ArgumentError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    return a


def _check_shape(name: str, a: np.ndarray, shape: Shape, env: dict[str, int], src: dict[str, str]) -> None:
    """Bind the symbols of `shape` from `a`'s dims, then require `a.shape` to equal the bound shape."""
    if a.ndim != len(shape):
        raise ArgumentError(f"{name}: expected rank {len(shape)} {_show(shape, env)}, got shape {_tuple(a.shape)}")
    for d, n in zip(shape, a.shape, strict=True):
        if isinstance(d, str) and is_plain(d) and d not in env:
            env[d], src[d] = n, name
    plain = tuple(d if is_plain(d) else n for d, n in zip(shape, a.shape))  # expressions: checked by solve_expressions
    want = substitute(plain, env)
    if want != a.shape:
        why = [
            f"{d} = {env[d]} from {src[d]}"
            for d, n in zip(plain, a.shape, strict=True)
            if isinstance(d, str) and env[d] != n
        ]
        raise ArgumentError(
            f"{name}: expected {_show(shape, env)}, got {_tuple(a.shape)}" + (f" ({'; '.join(why)})" if why else "")
        )


def _floats(cell: Cell, arrays: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every array as the oracle computes with it: float64 for float types, int64 for int types."""
    out = {}
    for name, value in arrays.items():
        a, dtype = np.asarray(value), _dtype_of(cell, name)
        if not dtype.is_float and a.dtype.kind not in "iu":
            raise ArgumentError(f"{name}: expected an integer array for {dtype}, got dtype {a.dtype}")
        out[name] = a.astype(np.float64 if dtype.is_float else np.int64)
    return out


def _dtype_of(cell: Cell, name: str) -> DType:
    for n in cell.inputs:
        if n.name == name:
            return n.type.dtype  # type: ignore[union-attr]
    return cell.state_types[name].dtype


def _inits(cell: Cell, arrays: dict[str, Any], env: dict[str, int]) -> dict[str, np.ndarray]:
    """The init of each state: the passed array, else zeros of its declared (bound) shape."""
    out = {}
    for name, t in cell.state_types.items():
        if name in arrays:
            continue
        unbound = sorted(symbols_of(t.shape) - env.keys())
        if unbound:
            raise ArgumentError(
                f"{name}: cannot make the zero init of shape {_tuple(t.shape)}: {unbound[0]} is not bound by any "
                f"argument; pass {name}=... (an array of that shape)"
            )
        out[name] = _zeros(t, env)
    return out


def _zeros(t: TensorType, env: dict[str, int], lead: tuple[int, ...] = ()) -> np.ndarray:
    """Zeros of a (bound) type, float64 or int64 as the oracle computes."""
    return np.zeros(lead + substitute(t.shape, env), dtype=np.float64 if t.dtype.is_float else np.int64)


def _lengths(cell: Cell, value: Any, env: dict[str, int], src: dict[str, str]) -> np.ndarray:
    """Check `lengths`: integers, shape (B,), each in [0, T]; every batched value leads with B."""
    a = _array("lengths", value)
    if a.dtype.kind not in "iu":
        raise ArgumentError(f"lengths: expected an integer array of shape (B,), got dtype {a.dtype}")
    batch = _batch_dim(cell)
    _check_shape("lengths", a, (batch,), env, src)
    T = env["T"]
    bad = a[(a < 0) | (a > T)]
    if bad.size:
        raise ArgumentError(f"lengths: every length must lie in [0, T] = [0, {T}], got {int(bad[0])}")
    B = a.shape[0]
    for what, node in _batched(cell):
        shape = substitute(node.type.shape, env)  # type: ignore[union-attr]
        if not shape or shape[0] != B:
            raise ArgumentError(
                f"lengths: {what} has shape {_show(node.type.shape, env)}, whose leading dim is not the batch "  # type: ignore[union-attr]
                f"B = {B}; with lengths= every state, delayed seq and output must be batch-major"
            )
    return a.astype(np.int64)


def _batch_dim(cell: Cell) -> int | str:
    """The batch dim as declared: the leading dim of the first seq or state that has one, else `B`."""
    lead = [n.type.shape[0] for n in cell.seqs + list(cell.states.values()) if n.type.shape]  # type: ignore[union-attr]
    return lead[0] if lead else "B"


def _batched(cell: Cell) -> list[tuple[str, Node]]:
    """The values copy-through applies to: states, seqs read with a delay, outputs."""
    delayed = {id(u.node) for n in cell.nodes() for u in n.inputs if u.delay}
    out = [(f"state {k!r}", n) for k, n in cell.states.items()]
    out += [(f"seq {n.name!r}", n) for n in cell.seqs if id(n) in delayed]
    return out + [(f"output {k!r}", n) for k, n in cell.outputs.items()]


# ---------------------------------------------------------------- evaluation


class _Run:
    """One evaluation: the cell's nodes in order, the history of each recurrent source, the outputs."""

    def __init__(self, cell: Cell, env: dict[str, int], strict: bool, words=(0, 0, 0, 0)):
        self.cell, self.env, self.strict, self.words = cell, env, strict, words
        self.nodes = cell.nodes()
        self.names = name_nodes(self.nodes)
        delayed = {id(u.node) for n in self.nodes for u in n.inputs if u.delay}
        self.delayed_seqs = [s for s in cell.seqs if id(s) in delayed]

    def go(self, T: int, arrays: dict[str, np.ndarray], inits: dict[str, np.ndarray], lens) -> dict[str, np.ndarray]:
        cell = self.cell
        init = {id(n): arrays.get(k, inits.get(k)) for k, n in cell.states.items()}
        init.update({id(s): _zeros(s.type, self.env) for s in self.delayed_seqs})  # type: ignore[arg-type]
        hist: dict[int, list[np.ndarray]] = {i: [] for i in init}  # recurrent source -> its values at steps 0..t-1
        outs: dict[str, list[np.ndarray]] = {k: [] for k in cell.outputs}
        with np.errstate(all="ignore"):  # a cell may overflow on purpose; strict checks values instead
            for t in range(T):
                live = None if lens is None else t < lens
                cur = self.step(t, arrays, init, hist, live)
                for i in hist:
                    last = hist[i][-1] if hist[i] else init[i]
                    hist[i].append(_mask(live, cur[i], last))
                for k, n in cell.outputs.items():
                    outs[k].append(_mask(live, cur[id(n)], np.zeros_like(cur[id(n)])))
        result = {k: self.stack(cell.outputs[k], v) for k, v in outs.items()}
        for k, n in cell.states.items():
            result[k] = hist[id(n)][-1] if T else init[id(n)]
        return result

    def step(self, t: int, arrays, init, hist, live) -> dict[int, np.ndarray]:
        """Every node's value at step t (before copy-through)."""
        cur: dict[int, np.ndarray] = {}
        for node in self.nodes:
            if node.op in ("seq", "param", "static"):
                value = arrays[node.name][t] if node.op == "seq" else arrays[node.name]  # type: ignore[index]
            elif node.op == "dropout_mask":
                a = node.attrs
                shape = substitute(a["shape"], self.env)
                value = mask_values(t, self.words, a["p"], a["site"], a["sequence"], a["zoneout"], shape, np.float64)
            else:
                value = self.apply(node, [self.read(u, t, cur, init, hist) for u in node.inputs])
            if self.strict:
                self.check_finite(node, t, value, live)
            cur[id(node)] = value
        return cur

    @staticmethod
    def read(use: Use, t: int, cur, init, hist) -> np.ndarray:
        """An operand: this step's value (delay 0), else the source at step t - d (its init before step 0)."""
        if use.delay == 0:
            return cur[id(use.node)]
        s = t - use.delay
        return init[id(use.node)] if s < 0 else hist[id(use.node)][s]

    def apply(self, node: Node, ins: list[np.ndarray]) -> np.ndarray:
        """The op's NumPy meaning, with float dtype attributes taken as f64; its shape checked against the type."""
        attrs = {k: DType.f64 if isinstance(v, DType) and v.is_float else v for k, v in node.attrs.items()}
        if "shape" in attrs:  # broadcast_to, sum_to: symbolic dims are bound by now
            attrs["shape"] = substitute(attrs["shape"], self.env)
        value = np.asarray(get_op(node.op).numpy(*ins, **attrs))
        want = substitute(node.type.shape, self.env)  # type: ignore[union-attr]
        if value.shape != want:
            raise VerifyError(
                f"reference: node {self.describe(node)} gave shape {_tuple(value.shape)} but its type "
                f"{node.type} says {_tuple(want)}: the op's type rule and NumPy meaning disagree"
            )
        return value

    def check_finite(self, node: Node, t: int, value: np.ndarray, live) -> None:
        """Raise NonFiniteError on a NaN or inf in a live row (every row when the value has no batch)."""
        if value.dtype.kind != "f":
            return
        rows = value[live] if live is not None and value.ndim and value.shape[0] == live.shape[0] else value
        if not np.all(np.isfinite(rows)):
            bad = rows[~np.isfinite(rows)].flat[0]
            raise NonFiniteError(f"reference (strict): node {self.describe(node)} holds {bad} at step {t}")

    def describe(self, node: Node) -> str:
        """`%0 (log), output 'y'`: the node as the printer names it, and the results it is."""
        roles = [f"output {k!r}" for k, n in self.cell.outputs.items() if n is node]
        return ", ".join([label(node, self.names)] + roles)

    def stack(self, node: Node, values: list[np.ndarray]) -> np.ndarray:
        return np.stack(values) if values else _zeros(node.type, self.env, (0,))  # type: ignore[arg-type]


def _mask(live: np.ndarray | None, value: np.ndarray, dead: np.ndarray) -> np.ndarray:
    """Copy-through: `value` in live rows, `dead` in the others."""
    if live is None:
        return value
    return np.where(live.reshape((-1,) + (1,) * (value.ndim - 1)), value, dead)


__all__ = ["NonFiniteError", "RESERVED", "run"]
