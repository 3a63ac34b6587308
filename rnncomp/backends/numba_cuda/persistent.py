"""Persistent kernels: a whole loop, every step, in one launch (Persistent RNNs, Diamos et al. 2016).

The kernel keeps the weights a body multiplies by (matmuls whose right operand is a loop
invariant) on chip, in shared memory, copied there once before the first step. Every other unit of
the body (fused elementwise group, reduction, copy) is a phase, the same code a kernel of its own
would run, and the phases are ordered by a barrier after each, so a phase sees everything the
previous ones wrote. The grid is sized by the work:
- one block, when the weights fit one block's shared memory (static arrays up to 48 KB, beyond that
  one dynamic array, up to what a block may request: 227 KB on an H100/H200, 163 KB on an A100):
  the block holds every weight whole, its `BLOCK_THREADS` threads stride over each phase, and
  `cuda.syncthreads()` is the barrier; no grid-wide sync, no cooperative launch;
- otherwise a cooperative grid of one block per multiprocessor: each weight is split by columns
  over the blocks, block b computes exactly the columns it holds, and the grid synchronises
  (`cuda.cg.this_grid().sync()`) after each phase; chosen at run time when the grid fits
  `max_cooperative_grid_blocks` (one block in the simulator).
A carried state is overwritten in place when its new value is computed by a fused group whose every
read of the old value is at the thread's own index or in an earlier phase; otherwise the new value
goes to the state's second buffer and is copied back after the body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ir import LoopView, Node
from ir.names import name_nodes
from passes.fuse import VIEWS, BlockPlan, plan_block
from passes.plan import in_place

from ..common.writer import safe_name
from .context import NUMBA_TYPE, Block
from .cost import estimate
from .errors import CudaBackendError
from .gemm import DYNAMIC, OnChip, load_on_chip
from .kernels import copy

if TYPE_CHECKING:
    from .codegen import Codegen, Loop


def emit(cg: Codegen, loop: Loop) -> str | None:
    """Write the persistent kernel of `loop` and return the arguments of `rt.persistent(...)` that
    launch it; None where it cannot be one (an error if the backend option forces it)."""
    ctx, v = cg.ctx, loop.view
    name = safe_name(ctx.blk.names.get(id(v.node), "%?"))  # type: ignore[union-attr]
    names = name_nodes(v.body.nodes())
    why = unsuitable(v)
    chips: dict[int, OnChip] = {}
    dynamic, one = 0, False
    if why is None:
        cfg, size = ctx.cfg, ctx.dtype.numpy.itemsize
        if cfg.block_threads:  # the whole body in one block, when its weights fit that block
            chips, dynamic, why = on_chip(v, 1, cfg.shared_bytes, cfg.shared_optin, size)
            one = why is None
        if not one:
            chips, dynamic, why = on_chip(v, cfg.sm_count, cfg.shared_bytes, cfg.shared_optin, size)
    if why is not None:
        if cg.mode is True:
            raise CudaBackendError(f"backend option persistent=True, but loop {name} cannot run as one kernel: {why}")
        return None
    plan = body_plan(v)
    computed = cg.computed_carries(v)
    inplace = {i for i in computed if in_place(v, plan, i)}
    base, it = ctx.host_name("b"), "it"

    def body() -> str:
        if not one:
            ctx.line("grid = cuda.cg.this_grid()")
        scope, _ = loop.scope(base)
        outer, ctx.blk = ctx.blk, Block(scope, names)
        try:
            if dynamic:
                ctx.line(f"{DYNAMIC} = cuda.shared.array(0, {NUMBA_TYPE[ctx.dtype]})  # {dynamic} bytes, set at launch")
            for chip in chips.values():
                load_on_chip(ctx, chip, lambda k, c, w=chip.weight: ctx.read(w, (k, c)), NUMBA_TYPE[ctx.dtype])
            if chips:
                ctx.line("cuda.syncthreads()")
        finally:
            ctx.blk = outer
        ctx.line(f"for {it} in range({loop.n_iter}):")
        with ctx.indent():
            ctx.line(f"{base} = {loop.base(it)}")
            ctx.phases, ctx.on_chip, ctx.one_block = True, chips, one
            try:
                carry_to = {i: (loop.cs[i] if i in inplace else loop.ns[i]) for i in computed}
                cg.iteration(loop, base, carry_to)
                for i, (cur, nxt) in enumerate(zip(loop.cs, loop.ns)):
                    if i not in inplace:
                        dims = ctx.dims(v.carry_params[i])
                        state = safe_name(names[id(v.carry_out[i])])
                        ctx.kernel(
                            "copy",
                            f"the new {state} becomes the current one",
                            lambda c=cur, n=nxt, d=dims: copy(ctx, c, d, n.at),
                        )
            finally:
                ctx.phases, ctx.on_chip, ctx.one_block = False, {}, False
        return ""

    held = ", ".join(f"{w.K}x{w.cols} of a {w.K}x{w.N} weight" for w in chips.values()) or "none"
    where = f"dynamic shared memory, {dynamic} bytes" if dynamic else "static shared memory"
    form = "one block, a block barrier between phases" if one else "a cooperative grid, a grid sync after each phase"
    doc = f"{loop.label}: every step in one launch ({form}). Held on chip per block ({where}): {held}."
    ctx.syncs = ctx.block_syncs = 0
    kernel, params = ctx.define("loop", doc, body, loop.label, local=frozenset({base}))
    blocks = 1 if one else ctx.cfg.sm_count
    k = ctx.kernels[-1]
    copies = [p for i, p in enumerate(v.carry_params) if i not in inplace]
    k.cost = estimate(plan, list(v.body.results), set(chips), ctx.dtype.numpy.itemsize, copies, v.stride)
    k.cost.grid_syncs, k.cost.block_syncs = ctx.syncs, ctx.block_syncs
    k.threads, k.blocks, k.dynamic_shared, k.grid_syncs, k.steps, k.one_block = (
        ctx.cfg.block_threads if one else ctx.cfg.persistent_threads,
        blocks,
        dynamic,
        ctx.syncs,
        v.stride,
        one,
    )
    threads = "BLOCK_THREADS" if one else "PERSISTENT_THREADS"
    return f"{kernel}, ({blocks}, {threads}, {dynamic}), {name!r}, {', '.join(params)}"


def unsuitable(v: LoopView) -> str | None:
    """Why a loop cannot be one kernel, or None."""
    if any(n.op == "loop" for n in v.body.nodes()):
        return "its body holds another loop"
    return None


def on_chip(
    v: LoopView, blocks: int, static: int, optin: int, itemsize: int
) -> tuple[dict[int, OnChip], int, str | None]:
    """The weights the kernel keeps in shared memory (matmul right operands that are loop invariants
    of concrete shape), each split by columns over `blocks`: in static shared arrays when they fit
    `static` bytes, else in one dynamic shared array of up to `optin` bytes (requested at launch);
    the dynamic array's bytes (0: static); and why they do not fit, if they do not."""
    consts = {id(p) for p in v.const_params}
    found: list[tuple[Node, int, int, int]] = []  # (weight, K, N, columns a block holds)
    named: list[str] = []
    for n in v.body.nodes():
        w = n.inputs[1].node if n.op == "matmul" else None
        if w is None or any(f[0] is w for f in found):
            continue
        base = w
        while base.op in VIEWS and id(base) not in consts:
            base = base.inputs[0].node
        K, N = w.type.shape  # type: ignore[union-attr]
        if id(base) not in consts or not isinstance(K, int) or not isinstance(N, int):
            continue
        found.append((w, K, N, -(-N // blocks)))
        named.append(f"{safe_name(base.name or '%?')} ({K}x{N})")
    need = sum(K * cols for _, K, _, cols in found) * itemsize
    if need > optin:
        return (
            {},
            0,
            (
                f"its recurrent weights {', '.join(named)} need {need} bytes of shared memory per block when split "
                f"over {blocks} block(s), more than the {optin} bytes a block may hold"
            ),
        )
    dynamic = need > static
    chips: dict[int, OnChip] = {}
    offset = 0
    for k, (w, K, N, cols) in enumerate(found):
        chips[id(w)] = OnChip(DYNAMIC, K, N, cols, w, offset) if dynamic else OnChip(f"w{k}", K, N, cols, w)
        offset += K * cols
    return chips, (need if dynamic else 0), None


def body_plan(v: LoopView) -> BlockPlan:
    """The body's units, as `Codegen.block` will schedule them (params and constants are given)."""
    nodes = v.body.nodes()
    bound = {id(p) for p in v.body.params} | {id(n) for n in nodes if n.op == "constant"}
    return plan_block(nodes, bound, list(v.body.results))


__all__ = ["emit", "on_chip"]
