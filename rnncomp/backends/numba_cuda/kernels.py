"""Kernel bodies for the ops that are neither fused elementwise nor GEMMs, and the device helpers.

Every body here is a grid-stride loop over its output (one thread per output element; a reduction
loops over what it reduces), so the same code serves a kernel of its own and a phase of a
persistent kernel. An emitter writes the body into the context's current kernel and returns the
launch configuration a kernel of its own needs. Operands are read through `ctx.read`, which
resolves views (split, slice, step, transpose, ...) into index arithmetic on the stored array.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from ir import Node
from ir.dtypes import DType
from ir.ops import axes_of

from ..common import helpers
from ..common.values import Index, Ref
from .context import Context
from .errors import CudaBackendError
from .scan import linear_scan

Emitter = Callable[[Context, Node, Ref, list[Node]], str]


def _prelude(name: str) -> str:
    """The module constants and device functions helper `name` calls (common/helpers.py PRELUDE)."""
    consts, fns = helpers.PRELUDE.get(name, ((), ()))
    lines = [f"{k} = np.uint64({v})\n" for k, v in consts]
    return "".join(lines) + "".join("@cuda.jit(device=True)\n" + inspect.getsource(f) + "\n\n" for f in fns)


HELPERS: dict[str, str] = {  # name -> the device function's source: common/helpers.py's one definition
    name: _prelude(name) + "@cuda.jit(device=True)\n" + inspect.getsource(f) for name, f in helpers.HELPERS.items()
}


def grid_1d(ctx: Context, dims: list[str]) -> str:
    return f"grid_1d({ctx.product(dims)})"


def copy(ctx: Context, out: Ref, dims: list[str], src: Callable[[Index], str]) -> str:
    """out[idx] = src(idx) over `dims`."""
    with ctx.grid_loop(dims) as idx:
        ctx.line(f"{out.at(idx)} = {src(idx)}")
    return grid_1d(ctx, dims)


def _axis(n: Node) -> int:
    (ax,) = axes_of(n)  # the op's one `axis`, normalised by its record
    return ax


def _with(idx: Index, ax: int, value: str) -> Index:
    return idx[:ax] + (value,) + idx[ax + 1 :]


def _zeros(ctx: Context, n: Node, out: Ref, args: list[Node]) -> str:
    return copy(ctx, out, ctx.dims(n), lambda idx: ctx.lit(0.0, n.type.dtype))  # type: ignore[union-attr]


def _branches(ctx: Context, cases: list[tuple[str | None, Callable[[], None]]]) -> None:
    """if/elif/else over (condition, body) pairs; a None condition is the final else."""
    for k, (cond, body) in enumerate(cases):
        ctx.line("else:" if cond is None else f"{'if' if k == 0 else 'elif'} {cond}:")
        with ctx.indent():
            body()


def _concat(ctx: Context, n: Node, out: Ref, args: list[Node]) -> str:
    ax, dims = _axis(n), ctx.dims(n)
    with ctx.grid_loop(dims) as idx:
        cases, lo = [], 0
        for k, x in enumerate(args):
            hi = lo + x.type.shape[ax]  # type: ignore[union-attr]
            src = _with(idx, ax, f"{idx[ax]} - {lo}" if lo else idx[ax])

            def body(x=x, src=src) -> None:
                ctx.line(f"{out.at(idx)} = {ctx.read(x, src)}")

            cases.append((None if k == len(args) - 1 else f"{idx[ax]} < {hi}", body))
            lo = hi
        _branches(ctx, cases)
    return grid_1d(ctx, dims)


def _pad(ctx: Context, n: Node, out: Ref, args: list[Node]) -> str:
    ax, before, dims = _axis(n), n.attrs["before"], ctx.dims(n)
    size = args[0].type.shape[ax]  # type: ignore[union-attr]
    with ctx.grid_loop(dims) as idx:
        i = idx[ax]
        inside = f"{before} <= {i} < {before + size}"
        value = ctx.read(args[0], _with(idx, ax, f"{i} - {before}" if before else i))
        _branches(
            ctx,
            [
                (inside, lambda: ctx.line(f"{out.at(idx)} = {value}")),
                (None, lambda: ctx.line(f"{out.at(idx)} = {ctx.zero()}")),
            ],
        )
    return grid_1d(ctx, dims)


def _shift(ctx: Context, n: Node, out: Ref, args: list[Node]) -> str:
    trace, init = args
    dims = ctx.dims(n)
    with ctx.grid_loop(dims) as idx:
        s, rest = idx[0], idx[1:]
        first, prev = (f"{dims[0]} - 1", f"{s} + 1") if n.attrs["reverse"] else ("0", f"{s} - 1")
        _branches(
            ctx,
            [
                (f"{s} == {first}", lambda: ctx.line(f"{out.at(idx)} = {ctx.read(init, rest)}")),
                (None, lambda: ctx.line(f"{out.at(idx)} = {ctx.read(trace, (prev,) + rest)}")),
            ],
        )
    return grid_1d(ctx, dims)


def _last_step(ctx: Context, n: Node, out: Ref, args: list[Node]) -> str:
    trace, init = args
    T = ctx.dims(trace)[0]
    last = "0" if n.attrs["reverse"] else f"{T} - 1"
    with ctx.grid_loop(ctx.dims(n)) as idx:
        _branches(
            ctx,
            [
                (f"{T} > 0", lambda: ctx.line(f"{out.at(idx)} = {ctx.read(trace, (last,) + idx)}")),
                (None, lambda: ctx.line(f"{out.at(idx)} = {ctx.read(init, idx)}")),
            ],
        )
    return grid_1d(ctx, ctx.dims(n))


def reduce_axes(n: Node) -> tuple[int, ...]:
    return axes_of(n)  # normalised by the op's record


@contextmanager
def _loops(ctx: Context, dims: list[str]) -> Iterator[list[str]]:
    """Nested serial loops (inside one thread) over `dims`; yields their index variables."""
    with ExitStack() as stack:
        idx = []
        for d in dims:
            r = ctx.local("j")
            ctx.line(f"for {r} in range({d}):")
            stack.enter_context(ctx.indent())
            idx.append(r)
        yield idx


def _reduce(kind: str) -> Emitter:
    """sum / mean / max over `axis`: one thread per output element loops over the reduced axes."""

    def emit(ctx: Context, n: Node, out: Ref, args: list[Node]) -> str:
        (x,) = args
        axes, keep = reduce_axes(n), n.attrs["keepdims"]
        xdims = ctx.dims(x)
        acc_dt = n.type.dtype if kind == "max" else DType.f64  # type: ignore[union-attr]
        init = ctx.lit(float("-inf") if kind == "max" else 0.0, acc_dt)
        with ctx.grid_loop(ctx.dims(n)) as idx:
            acc = ctx.local("acc")
            ctx.line(f"{acc} = {init}")
            with _loops(ctx, [xdims[a] for a in axes]) as red:
                kept = iter(idx) if not keep else iter(i for k, i in enumerate(idx) if k not in axes)
                rit = iter(red)
                full = tuple(next(rit) if k in axes else next(kept) for k in range(len(xdims)))
                v = ctx.local("t")
                ctx.line(f"{v} = {ctx.read(x, full)}")
                if kind == "max":
                    ctx.line(f"if {v} > {acc} or {v} != {v}:  # NaN wins, as in np.max")
                    ctx.line(f"    {acc} = {v}")
                else:
                    ctx.line(f"{acc} += {v}")
            if kind == "mean":
                ctx.line(f"{acc} = {acc} / ({ctx.product([xdims[a] for a in axes])})")
            ctx.line(f"{out.at(idx)} = {acc}")
        return grid_1d(ctx, ctx.dims(n))

    return emit


def _sum_to(ctx: Context, n: Node, out: Ref, args: list[Node]) -> str:
    (x,) = args
    xs, target = x.type.shape, n.type.shape  # type: ignore[union-attr]
    lead = len(xs) - len(target)
    reduced = [k for k in range(len(xs)) if k < lead or (target[k - lead] == 1 and xs[k] != 1)]
    xdims = ctx.dims(x)
    with ctx.grid_loop(ctx.dims(n)) as idx:
        acc = ctx.local("acc")
        ctx.line(f"{acc} = {ctx.lit(0.0, DType.f64)}")
        with _loops(ctx, [xdims[k] for k in reduced]) as red:
            rit = iter(red)
            full = tuple(next(rit) if k in reduced else ("0" if xs[k] == 1 else idx[k - lead]) for k in range(len(xs)))
            ctx.line(f"{acc} += {ctx.read(x, full)}")
        ctx.line(f"{out.at(idx)} = {acc}")
    return grid_1d(ctx, ctx.dims(n))


def _softmax(log: bool) -> Emitter:
    """softmax / log_softmax along `axis`, stably (x - max); one thread per row."""

    def emit(ctx: Context, n: Node, out: Ref, args: list[Node]) -> str:
        (x,) = args
        dims, ax = ctx.dims(n), _axis(n)
        rest = dims[:ax] + dims[ax + 1 :]
        with ctx.grid_loop(rest) as r:
            m, s, v, k = ctx.local("m"), ctx.local("s"), ctx.local("t"), ctx.local("j")
            at = r[:ax] + (k,) + r[ax:]
            ctx.line(f"{m} = {ctx.lit(float('-inf'), n.type.dtype)}")  # type: ignore[union-attr]
            ctx.line(f"for {k} in range({dims[ax]}):")
            ctx.line(f"    {v} = {ctx.read(x, at)}")
            ctx.line(f"    if {v} > {m} or {v} != {v}:")
            ctx.line(f"        {m} = {v}")
            ctx.line(f"{s} = {ctx.zero()}")
            ctx.line(f"for {k} in range({dims[ax]}):")
            if log:
                ctx.line(f"    {s} += math.exp({ctx.read(x, at)} - {m})")
                ctx.line(f"{s} = math.log({s})")
                ctx.line(f"for {k} in range({dims[ax]}):")
                ctx.line(f"    {out.at(at)} = ({ctx.read(x, at)} - {m}) - {s}")
            else:
                ctx.line(f"    {v} = math.exp({ctx.read(x, at)} - {m})")
                ctx.line(f"    {out.at(at)} = {v}")
                ctx.line(f"    {s} += {v}")
                ctx.line(f"for {k} in range({dims[ax]}):")
                ctx.line(f"    {out.at(at)} = {out.at(at)} / {s}")
        return grid_1d(ctx, rest)

    return emit


def _max_bwd(ctx: Context, n: Node, out: Ref, args: list[Node]) -> str:
    """The cotangent of max, shared equally between tied maxima: one thread per reduced group."""
    x, y, g = args
    axes, keep = reduce_axes(n), n.attrs["keepdims"]
    xdims = ctx.dims(x)
    kept = [d for k, d in enumerate(xdims) if k not in axes]
    with ctx.grid_loop(kept) as gidx:
        cnt = ctx.local("acc")
        ctx.line(f"{cnt} = 0")
        for count_pass in (True, False):
            with _loops(ctx, [xdims[a] for a in axes]) as red:
                rit, kit = iter(red), iter(gidx)
                full = tuple(next(rit) if k in axes else next(kit) for k in range(len(xdims)))
                small = tuple("0" if k in axes else i for k, i in enumerate(full)) if keep else gidx
                hit = f"{ctx.read(x, full)} == {ctx.read(y, small)}"
                if count_pass:
                    ctx.line(f"if {hit}:")
                    ctx.line(f"    {cnt} += 1")
                else:
                    m = ctx.read(y, small)  # a NaN max: NaN over the group, as the oracle
                    share = f"({ctx.read(g, small)} / {cnt} if {hit} else {ctx.zero()})"
                    ctx.line(f"{out.at(full)} = {share} if {m} == {m} else {m}")
    return grid_1d(ctx, kept)


KERNELS: dict[str, Emitter] = {
    "zeros": _zeros,
    "concat": _concat,
    "pad": _pad,
    "shift": _shift,
    "linear_scan": linear_scan,
    "last_step": _last_step,
    "sum": _reduce("sum"),
    "mean": _reduce("mean"),
    "max": _reduce("max"),
    "sum_to": _sum_to,
    "softmax": _softmax(False),
    "log_softmax": _softmax(True),
    "max_bwd": _max_bwd,
}

# Ops of the table this backend does not run, and why. Every op is fused (numba_cpu/emit.py SCALARS),
# a view (VIEWS), bound by codegen, a GEMM or gather of codegen.py, in KERNELS, or here
# (tests/test_lowering_tables.py checks it).
UNSUPPORTED: dict[str, str] = {
    "seq": "a cell's declaration (unrolling makes it a program input)",
    "param": "a cell's declaration (unrolling makes it a program input)",
    "static": "a cell's declaration (unrolling makes it a program input)",
    "state": "a cell's declaration (unrolling makes it a program input)",
    "dropout_mask": "a cell's mask (unrolling makes it philox_mask of the step and the seed words)",
}


def emitter(n: Node) -> Emitter:
    """The kernel body of `n`'s op; a clear error naming the op and the backend where there is none."""
    if n.op in KERNELS:
        return KERNELS[n.op]
    where = f"node {n.name or n.op} : {n.type}"
    if n.op in UNSUPPORTED:
        raise CudaBackendError(f"numba-cuda does not support op {n.op!r} ({where}): {UNSUPPORTED[n.op]}")
    raise CudaBackendError(
        f"numba-cuda has no kernel for op {n.op!r} ({where}); "
        "add its entry to KERNELS in rnncomp/backends/numba_cuda/kernels.py"
    )


def helper(name: str) -> str:
    """The source of device helper `name`; a clear error if a scalar entry asks for one that is missing."""
    if name not in HELPERS:
        raise CudaBackendError(
            f"numba-cuda has no device function {name!r} (an op's scalar code in numba_cpu/emit.py calls it); "
            "add it to HELPERS in rnncomp/backends/numba_cuda/kernels.py"
        )
    return HELPERS[name]
