"""GEMMs: `matmul` (a[..., K] @ b[K, N], every leading row of a at once: the hoisted input
projection is one GEMM over T*B rows) and `matmul_tn` (a^T b contracted over all leading rows:
the weight gradient dW = A^T dZ over T*B rows).

`tiled` is a kernel of its own: TILE x TILE threads per block, each computing one output from
TILE-wide slices of A and B staged in shared memory. `dot` is a phase of a persistent kernel: one
thread per output, and when the weight is kept on chip, each block computes the columns it holds.
Operands are read through `ctx.read`, so a transposed, split or time-sliced operand costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

from ir import Node

from ..common.values import Index, Ref
from .context import NUMBA_TYPE, Context


@dataclass
class Gemm:
    """out[m, n] = sum_k A(m, k) * B(k, n), with how each index becomes operand indices."""

    M: str
    K: str
    N: str
    m_index: Callable[[str], Index]  # writes what turns row m into a's/out's leading indices
    k_index: Callable[[str], Index]  # writes what turns k into indices of the contracted axes
    a: Callable[[Index, Index], str]
    b: Callable[[Index, str], str]
    out: Callable[[Index, str], str]


def gemm_of(ctx: Context, n: Node, out: Ref, args: list[Node]) -> Gemm:
    a, b = args
    adims, bdims = ctx.dims(a), ctx.dims(b)
    lead = adims[:-1]
    if n.op == "matmul":
        return Gemm(
            ctx.product(lead),
            adims[-1],
            bdims[-1],
            lambda m: ctx.unravel(m, lead),
            lambda k: (k,),
            lambda mi, ki: ctx.read(a, mi + ki),
            lambda ki, col: ctx.read(b, ki + (col,)),
            lambda mi, col: out.at(mi + (col,)),
        )
    return Gemm(  # matmul_tn: contract the leading axes of a[..., M] and b[..., N]
        adims[-1],
        ctx.product(lead),
        bdims[-1],
        lambda m: (m,),
        lambda k: ctx.unravel(k, lead),
        lambda mi, ki: ctx.read(a, ki + mi),
        lambda ki, col: ctx.read(b, ki + (col,)),
        lambda mi, col: out.at(mi + (col,)),
    )


def tiled(ctx: Context, n: Node, out: Ref, args: list[Node]) -> str:
    """A kernel of its own: shared-memory tiles of A and B, one output per thread."""
    g = gemm_of(ctx, n, out, args)
    dt, zero = NUMBA_TYPE[n.type.dtype], ctx.zero()  # type: ignore[union-attr]
    line = ctx.line
    line(f"sa = cuda.shared.array((TILE, TILE), {dt})  # A[rows of this block, k0:k0+TILE]")
    line(f"sb = cuda.shared.array((TILE, TILE), {dt})  # B[k0:k0+TILE, columns of this block]")
    line("tx = cuda.threadIdx.x")
    line("ty = cuda.threadIdx.y")
    line("row = cuda.blockIdx.y * TILE + ty")
    line("col = cuda.blockIdx.x * TILE + tx")
    mi = g.m_index("row")
    line(f"acc = {zero}")
    line(f"for k0 in range(0, {g.K}, TILE):")
    with ctx.indent():
        line("ka = k0 + tx")
        line(f"if row < {g.M} and ka < {g.K}:")
        with ctx.indent():
            line(f"sa[ty, tx] = {g.a(mi, g.k_index('ka'))}")
        line("else:")
        line(f"    sa[ty, tx] = {zero}")
        line("kb = k0 + ty")
        line(f"if kb < {g.K} and col < {g.N}:")
        with ctx.indent():
            line(f"sb[ty, tx] = {g.b(g.k_index('kb'), 'col')}")
        line("else:")
        line(f"    sb[ty, tx] = {zero}")
        line("cuda.syncthreads()")
        line("for kk in range(TILE):")
        line("    acc += sa[ty, kk] * sb[kk, tx]")
        line("cuda.syncthreads()")
    line(f"if row < {g.M} and col < {g.N}:")
    line(f"    {g.out(mi, 'col')} = acc")
    return f"grid_gemm({g.M}, {g.N})"


@dataclass(frozen=True)
class OnChip:
    """A weight kept in shared memory by a persistent kernel: block b holds its columns
    [b*cols, (b+1)*cols) as a (K, cols) array: `var` itself (static shared memory), or from
    element `offset` on in the kernel's dynamic shared array `var` (a flat array)."""

    var: str
    K: int
    N: int
    cols: int
    weight: Node = field(compare=False)  # the body's node of the weight (a loop invariant)
    offset: int | None = None  # None: a static array of its own

    def at(self, k: str, c: str) -> str:
        """The element (k, c) of this block's columns."""
        if self.offset is None:
            return f"{self.var}[{k}, {c}]"
        return f"{self.var}[{self.offset} + {k} * {self.cols} + {c}]"


DYNAMIC = "dyn"  # the name of a persistent kernel's dynamic shared array


def load_on_chip(ctx: Context, w: OnChip, read: Callable[[str, str], str], dtype: str) -> None:
    """The prologue of a persistent kernel: copy this block's columns of a weight into shared memory."""
    line = ctx.line
    if w.offset is None:
        line(f"{w.var} = cuda.shared.array(({w.K}, {w.cols}), {dtype})")
    line(f"for e in range(cuda.threadIdx.x, {w.K * w.cols}, cuda.blockDim.x):")
    with ctx.indent():
        line(f"kk = e // {w.cols}")
        line(f"cl = e - kk * {w.cols}")
        line(f"col = cuda.blockIdx.x * {w.cols} + cl")
        line(f"if col < {w.N}:")
        line(f"    {w.at('kk', 'cl')} = {read('kk', 'col')}")


def dot(ctx: Context, n: Node, out: Ref, args: list[Node], chip: OnChip | None) -> str:
    """A persistent-kernel phase: one thread per output; with `chip`, each block computes the
    columns whose weights it holds, reading them from shared memory."""
    g = gemm_of(ctx, n, out, args)
    line = ctx.line
    with ExitStack() as nest:
        if chip is not None:
            line(f"for e in range(cuda.threadIdx.x, {ctx.product([g.M, str(chip.cols)])}, cuda.blockDim.x):")
            nest.enter_context(ctx.indent())
            line(f"row = e // {chip.cols}")
            line(f"cl = e - row * {chip.cols}")
            line(f"col = cuda.blockIdx.x * {chip.cols} + cl")
            line(f"if col < {g.N}:")
            nest.enter_context(ctx.indent())
        else:
            line(f"for e in range(cuda.grid(1), {ctx.product([g.M, g.N])}, cuda.gridsize(1)):")
            nest.enter_context(ctx.indent())
            line(f"row = e // {g.N}")
            line(f"col = e - row * {g.N}")
        mi = g.m_index("row")
        line(f"acc = {ctx.zero()}")
        line(f"for kk in range({g.K}):")
        with ctx.indent():
            ki = g.k_index("kk")
            b = chip.at("kk", "cl") if chip is not None else g.b(ki, "col")
            line(f"acc += {g.a(mi, ki)} * {b}")
        line(f"{g.out(mi, 'col')} = acc")
    return ""  # a phase: launched with its persistent kernel
