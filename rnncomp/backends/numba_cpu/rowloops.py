"""Row-parallel loops: a loop whose batch rows are independent (passes/rows.py) runs as one
`parallel=True` kernel, a block of rows per Numba thread through every step of the sequence.

    np0 = blocks_for(n_threads, d_B, n0 * d_B * 4224, ROW_WORK); w0 = (d_B + np0 - 1) // np0
    rows_0(...):                             # parallel=True, small: compiles fast
        for p0 in prange(np0):                # one block of rows per thread
            rows_0_block(p0, ...)
    rows_0_block(p0, ...):
        m0 = p0 * w0; m1 = min(d_B, m0 + w0); m2 = m1 - m0
        a0 = x0[m0:m1]  ...                   # the block's rows of each state and buffer
        for it0 in range(n0):                 # the time loop, with no barrier between steps
            a5 = x3[b0, m0:m1]  ...           # this step's rows of each sequence slice
            <the body over m2 rows: its kernels, GEMMs on one thread each>

Blocks write disjoint rows of shared buffers, so nothing needs a lock; a buffer without rows (a
kernel's scratch of another shape) is private to each block. How many blocks: one per thread, but
only as many as each gets ROW_WORK multiply-adds of the loop's estimated work (launch.blocks_for;
`row_step_work` estimates a row's step: 4224 for an LSTM at H=32, a 32x128 product and 128 gates).

Where the rows cannot usefully be split (a block of a few rows, or blocks that would each stream a
weight too big for a core's cache at every step) but a step's recurrent products are big enough,
the loop runs as one block and each step's products with a loop-invariant weight are split by
columns across the threads instead (launch.step_parts decides, from `recurrent_sizes`; stepgemm.py):

    st0 = step_parts(n_threads, d_B, d_B * (512 * 2048), (4 * 512 * 2048), STEP_WORK)
    np0 = blocks_for(1 if st0 > 1 else n_threads, d_B, ..., ROW_WORK)
    ... gemm_step(h_state, pk0, Wh, out, False, st0, BLAS)   # in the block, each step
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ir import Node, TensorType
from passes.rows import ROWS

from ..common.values import Ref
from ..common.writer import Writer
from .units import BLOCK, KernelText

if TYPE_CHECKING:
    from .codegen import Generator

SMALL_WEIGHT = 1 << 16  # k*n up to which a matmul also gets a loop nest of its own for a few rows


def small_weight(t: TensorType) -> bool:
    """Whether a right operand of this type gets a loop nest for a few rows (in a loop's body)."""
    K, N = t.shape
    return isinstance(K, int) and isinstance(N, int) and K * N <= SMALL_WEIGHT


@dataclass
class Part:
    """The row block being emitted: its bounds (kernel-local names) and where its views go."""

    rows: str  # the block's row count
    r0: str
    r1: str
    dim: int | str  # the whole batch extent
    kernel: KernelText  # the block function
    counter: dict[str, int]  # its local names
    writer: Writer
    pos: int  # where the block's views of buffers are inserted (before its time loop)
    depth: int
    step: str | None = None  # program's count of column slices of each step's recurrent GEMMs (stepgemm.py)

    def _insert(self, text: str) -> None:
        self.writer.lines.insert(self.pos, (self.depth, text, self.writer.owner))
        self.pos += 1

    def buffer(self, gen: Generator, t: TensorType) -> Ref:
        """This block's rows of a buffer of `program` (or, without rows, a buffer of its own)."""
        with gen.inside(self.kernel, self.counter):
            name = gen.tmp("a")
            if t.shape and t.shape[0] == ROWS:
                gen.part = None
                try:
                    whole = gen.buffer(t.with_shape((self.dim,) + t.shape[1:]))
                finally:
                    gen.part = self
                self._insert(f"{name} = {gen.arr(whole)}[{self.r0}:{self.r1}]")
            else:
                dims = "".join(f"{gen.dim(d)}, " for d in t.shape)
                self._insert(f"{name} = np.empty(({dims}), np.{t.dtype.numpy.__name__})")
        return Ref(name, owned=True, home=self.kernel.uid)

    def rows_of(self, gen: Generator, ref: Ref, state: Node | None = None) -> Ref:
        """The block's rows of an array with the batch at axis 0 (a `state`, named after it; `lengths`)."""
        name = gen.tmp_for(state.name, "a", "_state") if state is not None else gen.tmp("a")
        gen.w.line(f"{name} = {gen.arr(ref)}[{self.r0}:{self.r1}]")
        return Ref(name, contiguous=ref.contiguous, owned=ref.owned, home=gen.home())

    def step_rows(self, gen: Generator, ref: Ref, step: str) -> Ref:
        """The block's rows of one step of a stacked (T, B, ...) array."""
        name = gen.tmp("a")
        gen.w.line(f"{name} = {gen.arr(ref)}[{step}, {self.r0}:{self.r1}]")
        return Ref(name, contiguous=ref.contiguous, home=gen.home())


def row_step_work(gen: Generator, nodes) -> str:
    """The work of one row through one step of a row block's body, in multiply-adds: K*N per row of
    a matmul, an element for any other op (an expression: a symbolic extent is `program`'s dim)."""
    fixed, terms = 0, []
    for n in nodes:
        t = n.type
        if not isinstance(t, TensorType) or not t.shape or t.shape[0] != ROWS:
            continue
        dims = [d for d in t.shape[1:] if d != ROWS]
        if n.op == "matmul":
            dims.append(n.inputs[0].node.type.shape[-1])  # type: ignore[union-attr]
        size, names = 1, []
        for d in dims:
            if isinstance(d, int):
                size *= d
            else:
                names.append(gen.dim(d))
        if names:
            terms.append(gen.product([str(size)] + names))
        else:
            fixed += size
    text = " + ".join(([str(fixed)] if fixed or not terms else []) + terms)
    return f"({text})" if terms else text


def recurrent_sizes(gen: Generator, v) -> tuple[str, str] | None:
    """The loop's products with a loop-invariant weight (`h @ Wh`): their multiply-adds per row and
    step, and their weights' bytes (expressions), or None where it has none."""
    consts = {id(p) for p in v.const_params}
    work, size = [], []
    for n in v.body.nodes():
        if n.op != "matmul" or id(n.inputs[1].node) not in consts or n.inputs[0].node is n.inputs[1].node:
            continue
        K, N = n.inputs[1].node.type.shape
        work.append(gen.product([gen.dim(K), gen.dim(N)]))
        size.append(gen.product([str(np.dtype(n.type.dtype.numpy).itemsize), gen.dim(K), gen.dim(N)]))
    if not work:
        return None
    return f"({' + '.join(work)})", f"({' + '.join(size)})"


def open_part(gen: Generator, dim: int | str, parts: str, width: str, step: str | None = None) -> Part:
    """The bounds of block BLOCK of `parts` blocks of `width` rows (in the block function being built);
    `step`: how many column slices its step GEMMs run in."""
    assert gen.kernel is not None
    gen.kernel.over = gen.value(parts)
    r0, r1, n = gen.tmp("m"), gen.tmp("m"), gen.tmp("m")
    gen.w.line(f"{r0} = {BLOCK} * {gen.value(width)}")
    gen.w.line(f"{r1} = min({gen.dim(dim)}, {r0} + {gen.value(width)})")
    gen.w.line(f"{n} = {r1} - {r0}")
    return Part(n, r0, r1, dim, gen.kernel, gen.counter, gen.w, len(gen.w.lines), gen.w.depth, step)


def transposed(gen: Generator, node: Node) -> Ref | None:
    """The array a 2-D `transpose` node reads, when C-contiguous (BLAS then reads it transposed)."""
    if node.op != "transpose" or node.type.rank != 2:  # type: ignore[union-attr]
        return None
    base = gen.array(node.inputs[0].node)
    return base if base.contiguous and not base.scalar else None
