"""The linear_scan op, h[t] = a[t] * h[t-1] + b[t], on numba-cuda: parallel over time in its own kernel.

A block holds G (batch, feature) elements and C chunks of time for each (C * G threads). Each thread
composes its chunk's steps into one affine map (A = prod a, B); a Hillis-Steele scan of those maps
in shared memory gives each chunk its incoming carry; each thread then reruns its chunk from that
carry, writing h. Inside a persistent kernel (a phase, no block of its own) one thread per element
runs the steps in order. A step of a row outside lo <= t < hi keeps h (the identity map).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ir import Node

from ..common.values import Index, Ref
from .context import NUMBA_TYPE, Context

MAX_CHUNKS = 32  # chunks of time per element at most: a warp's worth


def chunks(threads: int) -> tuple[int, int]:
    """(C, G): chunks of time per element and elements per block, C * G == threads."""
    c = math.gcd(threads, MAX_CHUNKS)
    return c, threads // c


def _scan_index(shape: tuple, state: tuple, idx: Index) -> Index:
    """The index into a coefficient of `shape` (broadcast to the `state` shape) at the state's `idx`."""
    tail = idx[len(idx) - len(shape) :] if shape else ()
    off = len(state) - len(shape)
    return tuple("0" if d == 1 and state[off + k] != 1 else i for k, (d, i) in enumerate(zip(shape, tail)))


class _Scan:
    """What both kernels read: the operands, the step -> time map and the per-row bounds."""

    def __init__(self, ctx: Context, n: Node, args: list[Node]):
        self.ctx, self.reverse = ctx, n.attrs["reverse"]
        self.a, self.b, self.init, *masks = args
        self.hi = masks.pop(0) if n.attrs["hi"] else None
        self.lo = masks.pop(0) if n.attrs["lo"] else None
        self.state = self.init.type.shape  # type: ignore[union-attr]
        dims = ctx.dims(n)
        self.T, self.rest = dims[0], dims[1:]

    def coef(self, x: Node, tt: str, idx: Index) -> str:
        shape = x.type.shape  # type: ignore[union-attr]
        if len(shape) == len(self.state) + 1:
            return self.ctx.read(x, (tt,) + _scan_index(shape[1:], self.state, idx))
        return self.ctx.read(x, _scan_index(shape, self.state, idx))

    def steps(self, first: str, last: str, idx: Index, update: Callable[[str, Index], None]) -> str:
        """for each step in [first, last): `update(t, idx)`'s lines, under the row's bounds; returns t
        (the caller writes the rest of the loop body one indent deeper)."""
        ctx = self.ctx
        s, tt = ctx.local("j"), ctx.local("t")
        ctx.line(f"for {s} in range({first}, {last}):")
        with ctx.indent():
            ctx.line(f"{tt} = {self.T} - 1 - {s}" if self.reverse else f"{tt} = {s}")
            conds = ([f"{tt} < {ctx.read(self.hi, idx[:1])}"] if self.hi else []) + (
                [f"{tt} >= {ctx.read(self.lo, idx[:1])}"] if self.lo else []
            )
            if conds:
                ctx.line(f"if {' and '.join(conds)}:")
                with ctx.indent():
                    update(tt, idx)
            else:
                update(tt, idx)
            return tt


def sequential(ctx: Context, n: Node, out: Ref, args: list[Node]) -> str:
    """One thread per (batch, feature) element runs the steps in order."""
    sc = _Scan(ctx, n, args)
    with ctx.grid_loop(sc.rest) as idx:
        h = ctx.local("acc")
        ctx.line(f"{h} = {ctx.read(sc.init, idx)}")

        def step(tt: str, idx: Index) -> None:
            ctx.line(f"{h} = {sc.coef(sc.a, tt, idx)} * {h} + {sc.coef(sc.b, tt, idx)}")

        tt = sc.steps("0", sc.T, idx, step)
        with ctx.indent():
            ctx.line(f"{out.at((tt,) + idx)} = {h}")
    return f"grid_1d({ctx.product(sc.rest)})"


def parallel(ctx: Context, n: Node, out: Ref, args: list[Node]) -> str:
    """C chunks of time per element, their affine maps scanned in shared memory (module docstring)."""
    sc = _Scan(ctx, n, args)
    C, G = chunks(ctx.cfg.threads)
    dt, one, zero = NUMBA_TYPE[ctx.dtype], ctx.lit(1.0, ctx.dtype), ctx.zero()
    N = ctx.product(sc.rest)
    sa, sb, tid, c, g, L, s0, s1, nb, eb, e, ok = (
        ctx.local(p) for p in ("sa", "sb", "tid", "ch", "el", "chlen", "ts", "te", "nb", "eb", "e", "ok")
    )
    A, Bv, pa, pb, h = (ctx.local(p) for p in ("A", "B", "pa", "pb", "acc"))
    line = ctx.line
    line(f"{sa} = cuda.shared.array({C * G}, {dt})  # chunk maps h -> A h + B, [chunk, element]")
    line(f"{sb} = cuda.shared.array({C * G}, {dt})")
    line(f"{tid} = cuda.threadIdx.x")
    line(f"{c} = {tid} // {G}  # this thread's chunk of time")
    line(f"{g} = {tid} % {G}  # its element in the block")
    line(f"{L} = ({sc.T} + {C - 1}) // {C}")
    line(f"{s0} = min({c} * {L}, {sc.T})")
    line(f"{s1} = min({s0} + {L}, {sc.T})")
    line(f"{nb} = ({N} + {G - 1}) // {G}")
    line(f"for {eb} in range(cuda.blockIdx.x, {nb}, cuda.gridDim.x):  # the same trip count block-wide")
    with ctx.indent():
        line(f"{e} = {eb} * {G} + {g}")
        line(f"{ok} = {e} < {N}")
        idx = ctx.unravel(e, sc.rest)
        line(f"{A} = {one}")
        line(f"{Bv} = {zero}")
        line(f"if {ok}:")
        with ctx.indent():

            def compose(tt: str, idx: Index) -> None:
                a = ctx.local("t")
                line(f"{a} = {sc.coef(sc.a, tt, idx)}")
                line(f"{Bv} = {a} * {Bv} + {sc.coef(sc.b, tt, idx)}")
                line(f"{A} = {a} * {A}")

            sc.steps(s0, s1, idx, compose)
        line(f"{sa}[{tid}] = {A}")
        line(f"{sb}[{tid}] = {Bv}")
        line("cuda.syncthreads()")
        off = 1
        while off < C:  # inclusive scan over chunks: chunk c's map after all of 0..c
            line(f"if {c} >= {off}:")
            line(f"    {pa} = {sa}[{tid} - {off * G}]")
            line(f"    {pb} = {sb}[{tid} - {off * G}]")
            line("cuda.syncthreads()")
            line(f"if {c} >= {off}:")
            line(f"    {Bv} = {A} * {pb} + {Bv}")
            line(f"    {A} = {A} * {pa}")
            line(f"    {sa}[{tid}] = {A}")
            line(f"    {sb}[{tid}] = {Bv}")
            line("cuda.syncthreads()")
            off *= 2
        line(f"if {ok}:")
        with ctx.indent():
            line(f"{h} = {ctx.read(sc.init, idx)}")
            line(f"if {c} > 0:  # the carry into this chunk: every earlier chunk applied to init")
            line(f"    {h} = {sa}[{tid} - {G}] * {h} + {sb}[{tid} - {G}]")

            def step(tt: str, idx: Index) -> None:
                line(f"{h} = {sc.coef(sc.a, tt, idx)} * {h} + {sc.coef(sc.b, tt, idx)}")

            tt = sc.steps(s0, s1, idx, step)
            with ctx.indent():
                line(f"{out.at((tt,) + idx)} = {h}")
        line("cuda.syncthreads()  # before the next elements reuse the shared maps")
    return f"grid_1d({N} * {C})"


def linear_scan(ctx: Context, n: Node, out: Ref, args: list[Node]) -> str:
    """The parallel kernel; the sequential body inside a persistent kernel (its phases share one grid)."""
    return sequential(ctx, n, out, args) if ctx.phases else parallel(ctx, n, out, args)
