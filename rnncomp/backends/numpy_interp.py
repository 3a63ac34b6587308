"""The numpy backend: an interpreter over Program, node by node. Slow and obvious, like the oracle."""

from __future__ import annotations

from typing import Any

import numpy as np

from ir import LoopView, Node, Program, Region, RnncompError
from ir import symexpr as sx
from ir.ops import get_op
from ir.shapes import substitute

HANDLED = ("input", "loop")  # bound to arguments, or run by the interpreter itself; other ops run their `numpy`
UNSUPPORTED: dict[str, str] = {  # ops of the table this backend does not run, and why
    "seq": "a cell's declaration (unrolling makes it a program input)",
    "param": "a cell's declaration (unrolling makes it a program input)",
    "static": "a cell's declaration (unrolling makes it a program input)",
    "state": "a cell's declaration (unrolling makes it a program input)",
    "dropout_mask": "a cell's mask (unrolling makes it philox_mask of the step and the seed words)",
}


class NumpyBackendError(RnncompError):
    """The numpy backend cannot run an op (one without NumPy semantics in its record)."""


def run_program(prog: Program, arrays: dict[str, np.ndarray], symbols: dict[str, int]) -> dict[str, np.ndarray]:
    """Evaluate `prog` on input arrays (by input name) with symbols bound; returns its outputs."""
    vals: dict[int, Any] = {id(n): arrays[n.name] for n in prog.inputs}  # type: ignore[index]
    _eval(prog.nodes(), vals, symbols)
    return {k: vals[id(n)] for k, n in prog.outputs.items()}


def _eval(nodes: list[Node], vals: dict[int, Any], symbols: dict[str, int]) -> None:
    for n in nodes:
        if id(n) in vals:
            continue
        if n.op == "loop":
            vals[id(n)] = _loop(n, [vals[id(u.node)] for u in n.inputs], symbols)
            continue
        attrs = n.attrs
        if "shape" in attrs:  # zeros, sum_to, broadcast_to: symbolic dims bound at run time
            attrs = {**attrs, "shape": substitute(attrs["shape"], symbols)}
        fn = get_op(n.op).numpy
        if n.op in UNSUPPORTED:
            raise NumpyBackendError(f"the numpy backend does not support op {n.op!r}: {UNSUPPORTED[n.op]}")
        if fn is None:
            raise NumpyBackendError(
                f"the numpy backend does not support op {n.op!r} (node {n.name or n.op} : {n.type}): "
                "its record in the op table has no `numpy` function"
            )
        vals[id(n)] = fn(*[vals[id(u.node)] for u in n.inputs], **attrs)


class _Body:
    """A body's node order, computed once per loop run."""

    def __init__(self, body: Region):
        self.params, self.results, self.nodes = body.params, body.results, body.nodes()

    def __call__(self, args: list[Any], symbols: dict[str, int]) -> list[Any]:
        vals = {id(p): a for p, a in zip(self.params, args)}
        _eval(self.nodes, vals, symbols)
        return [vals[id(r)] for r in self.results]


def _loop(node: Node, ops: list[Any], symbols: dict[str, int]) -> tuple:
    v = LoopView(node)
    c, x, b, k = v.n_carry, v.n_xs, v.n_buf, v.stride
    carries = ops[:c]
    xs = ops[c : c + x]
    bufs = [np.array(a, copy=True) for a in ops[c + x : c + x + b]]
    consts = ops[c + x + b :]
    length, start = sx.evaluate(v.length, symbols), sx.evaluate(v.start, symbols)
    body = _Body(v.body)
    for i in range(length):
        base = start + ((length - 1 - i) if v.reverse else i) * k
        args = [np.int64(base + j) for j in range(k)] + list(carries)
        args += [xs_i[base + j] for xs_i in xs for j in range(k)] + list(consts)
        res = body(args, symbols)
        carries = res[:c]
        for bi in range(b):
            for j in range(k):
                bufs[bi][base + j] = res[c + bi * k + j]
    return tuple(carries) + tuple(bufs)
