"""How each op is written in generated code: one entry per op in `EMIT`.

Three kinds of entry:
- `Scalar`: an elementwise op as a scalar expression of its operands' scalars; fused into loops
  (the table both printers share, common/scalars.py).
- `View`: an op that only re-indexes its operand (split, slice, step, ...): reads go through
  common/views.py's index; `array` gives a NumPy view when a whole array is needed (None: copy it out).
- `Kernel`: any other op, written as statements that fill a preallocated output buffer.
`input`, `constant`, `loop` and `item` are handled by codegen itself (they bind values).
Emitters see the generator as `ctx` (codegen.Generator: line, loops, dims, lit, fn, tmp, scratch,
contiguous, gemm, matmul), and operands and outputs with `.at(idx)` (the element at an index tuple of
expression strings) and `.array()` (an array expression).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ir import Node
from ir.dtypes import DType
from ir.ops import axes_of

from ..common.scalars import SCALARS, Index, Scalar
from ..common.views import axis_of, int_attr, int_dim, shifted, slice_start, split_start
from .chunking import scan_work
from .errors import NumbaBackendError


@dataclass(frozen=True)
class Kernel:
    fn: Callable[[Any, Node, Any, list[Any]], None]  # (ctx, node, out ref, operands)


# ---------------------------------------------------------------- views


@dataclass(frozen=True)
class View:
    """A view's NumPy spelling when a whole array is needed; reads go through common/views.py's index."""

    array: Callable[[Node, str], str] | None = None  # NumPy view expression of an array expression (None: copy)
    contiguous: Callable[[Node], bool] = lambda n: False  # whether it keeps C-contiguity
    needs_contiguous: bool = False  # `array` only works on a C-contiguous operand


def _offset_view(start: Callable[[Node], int]) -> View:
    def array(n: Node, a: str) -> str:
        ax, lo = axis_of(n), start(n)
        return f"{a}[{':, ' * ax}{lo}:{lo + int_dim(n.type.shape[ax])}]"

    def contiguous(n: Node) -> bool:
        return all(d == 1 for d in n.type.shape[: axis_of(n)])

    return View(array, contiguous)


def _transpose(n: Node, a: str) -> str:
    r = n.type.rank
    return f"{a}.T" if r == 2 else f"np.transpose({a}, {tuple(range(r - 2)) + (r - 1, r - 2)})"


VIEWS: dict[str, View] = {
    "split": _offset_view(split_start),
    "slice": _offset_view(slice_start),
    "step": View(lambda n, a: f"{a}[{int_attr(n, 'index')}]", lambda n: True),
    "transpose": View(_transpose),
    "expand_dims": View(None, lambda n: True),
    "broadcast_to": View(None),
}


# ---------------------------------------------------------------- kernels


def _fill(value: float) -> Kernel:
    def fn(ctx, n: Node, out, args: list) -> None:
        v = ctx.lit(value, n.type.dtype)
        with ctx.loops(ctx.dims(n)) as idx:
            ctx.line(f"{out.at(idx)} = {v}")

    return Kernel(fn)


def _shaped(ctx, a: str, shape: str) -> str:
    """A C-contiguous array expression seen with `shape` (shaped.py: what `.reshape` gives, compiled cheaper)."""
    ctx.helpers.add("shaped")
    return f"shaped({a}, {shape})"


def _matmul(ctx, n: Node, out, args: list) -> None:
    a, b = args
    adims, N = ctx.dims(a.node), ctx.dims(n)[-1]
    rows = ctx.product(adims[:-1])
    A = ctx.contiguous(a)
    a2 = A if a.node.type.rank == 2 else _shaped(ctx, A, f"({rows}, {adims[-1]})")
    o = out.array()
    out2 = o if n.type.rank == 2 else _shaped(ctx, o, f"({rows}, {N})")
    ctx.matmul(a2, b, out2)


def _matmul_tn(ctx, n: Node, out, args: list) -> None:
    a, b = args
    adims, bdims = ctx.dims(a.node), ctx.dims(b.node)
    rows = ctx.product(adims[:-1])
    A, B = ctx.contiguous(a), ctx.contiguous(b)
    a2 = A if a.node.type.rank == 2 else _shaped(ctx, A, f"({rows}, {adims[-1]})")
    b2 = B if b.node.type.rank == 2 else _shaped(ctx, B, f"({rows}, {bdims[-1]})")
    ctx.gemm(a2, b2, out.array(), "gemm_tn")


def _reduce_axes(n: Node) -> tuple[int, ...]:
    return axes_of(n)  # normalised by the op's record


def _reduced(idx: Index, axes: tuple[int, ...], keepdims: bool) -> Index:
    """The index into a reduced array (keepdims or not) for an index of the full operand."""
    if keepdims:
        return tuple("0" if k in axes else i for k, i in enumerate(idx))
    return tuple(i for k, i in enumerate(idx) if k not in axes)


def _reduce(kind: str) -> Kernel:
    """sum / mean / max: accumulate in C order over the operand into a buffer of the kept shape."""

    def fn(ctx, n: Node, out, args: list) -> None:
        (x,) = args
        axes, keep = _reduce_axes(n), n.attrs["keepdims"]
        dt = n.type.dtype
        acc_dt = DType.f64 if kind != "max" else dt
        acc = ctx.scratch(ctx.dims(n), acc_dt) if acc_dt != dt else out
        init = ctx.lit(0.0 if kind != "max" else float("-inf"), acc_dt)
        with ctx.loops(ctx.dims(n)) as idx:
            ctx.line(f"{acc.at(idx)} = {init}")
        with ctx.loops(ctx.dims(x.node)) as idx:
            r = acc.at(_reduced(idx, axes, keep))
            if kind == "max":
                v = ctx.tmp()
                ctx.line(f"{v} = {x.at(idx)}")
                ctx.line(f"if {v} > {r} or {v} != {v}:")  # NaN wins, as in np.max
                ctx.line(f"    {r} = {v}")
            else:
                ctx.line(f"{r} += {x.at(idx)}")
        if acc is out and kind != "mean":
            return
        count = ctx.product([d for k, d in enumerate(ctx.dims(x.node)) if k in axes])
        with ctx.loops(ctx.dims(n)) as idx:
            val = acc.at(idx) if kind != "mean" else f"{acc.at(idx)} / {count}"
            ctx.line(f"{out.at(idx)} = {val}")

    return Kernel(fn)


def _softmax(log: bool) -> Kernel:
    def fn(ctx, n: Node, out, args: list) -> None:
        (x,) = args
        dims = ctx.dims(n)
        ax = axis_of(n)
        rest = dims[:ax] + dims[ax + 1 :]
        m, s, v, k = ctx.tmp("m"), ctx.tmp("s"), ctx.tmp(), ctx.tmp("k")
        exp = ctx.fn("exp", n.type.dtype)
        with ctx.loops(rest) as idx:

            def at(ref) -> str:
                return ref.at(idx[:ax] + (k,) + idx[ax:])

            ctx.line(f"{m} = {ctx.lit(float('-inf'), n.type.dtype)}")
            ctx.line(f"for {k} in range({dims[ax]}):")
            ctx.line(f"    {v} = {at(x)}")
            ctx.line(f"    if {v} > {m} or {v} != {v}:")
            ctx.line(f"        {m} = {v}")
            ctx.line(f"{s} = 0.0")
            ctx.line(f"for {k} in range({dims[ax]}):")
            if log:
                ctx.line(f"    {s} += {exp}({at(x)} - {m})")
                ctx.line(f"{s} = math.log({s})")
                ctx.line(f"for {k} in range({dims[ax]}):")
                ctx.line(f"    {at(out)} = ({at(x)} - {m}) - {s}")
            else:
                ctx.line(f"    {v} = {exp}({at(x)} - {m})")
                ctx.line(f"    {at(out)} = {v}")
                ctx.line(f"    {s} += {v}")
                ctx.line(f"for {k} in range({dims[ax]}):")
                ctx.line(f"    {at(out)} = {at(out)} / {s}")

    return Kernel(fn)


def _copy_at(ctx, out, x, shift: Callable[[Index], Index]) -> None:
    with ctx.loops(ctx.dims(x.node)) as idx:
        ctx.line(f"{out.at(shift(idx))} = {x.at(idx)}")


def _concat(ctx, n: Node, out, args: list) -> None:
    ax, off = axis_of(n), 0
    for x in args:
        _copy_at(ctx, out, x, lambda idx, o=off: idx[:ax] + (shifted(idx[ax], o),) + idx[ax + 1 :])
        off += int_dim(x.node.type.shape[ax])


def _stack(ctx, n: Node, out, args: list) -> None:
    for k, x in enumerate(args):
        _copy_at(ctx, out, x, lambda idx, k=k: (str(k),) + idx)


def _shift(ctx, n: Node, out, args: list) -> None:
    trace, init = args
    T = ctx.dims(n)[0]
    t = ctx.tmp("s")
    rest = ctx.dims(n)[1:]
    src, first = (f"{t} + 1", f"{T} - 1") if n.attrs["reverse"] else (f"{t} - 1", "0")
    rng = f"range({T} - 1)" if n.attrs["reverse"] else f"range(1, {T})"
    ctx.line(f"for {t} in {rng}:")
    with ctx.indent(), ctx.loops(rest) as idx:
        ctx.line(f"{out.at((t,) + idx)} = {trace.at((src,) + idx)}")
    ctx.line(f"if {T} > 0:")
    with ctx.indent(), ctx.loops(rest) as idx:
        ctx.line(f"{out.at((first,) + idx)} = {init.at(idx)}")


def scan_index(shape: tuple, state: tuple, idx: Index) -> Index:
    """The index into a coefficient of `shape` (broadcast to the `state` shape) at the state's `idx`."""
    tail = idx[len(idx) - len(shape) :] if shape else ()
    off = len(state) - len(shape)
    return tuple("0" if d == 1 and state[off + k] != 1 else i for k, (d, i) in enumerate(zip(shape, tail)))


def scan_parts(n: Node, args: list) -> tuple:
    """linear_scan's operands: a, b, init, and its hi / lo bounds (None when absent)."""
    a, b, init, *masks = args
    hi = masks.pop(0) if n.attrs["hi"] else None
    lo = masks.pop(0) if n.attrs["lo"] else None
    return a, b, init, hi, lo


def _linear_scan(ctx, n: Node, out, args: list) -> None:
    """h[t] = a[t] * h[t-1] + b[t], the steps in order (a step of a row outside lo <= t < hi keeps h);
    time is the outer loop, so each step is one pass over (batch, features)."""
    a, b, init, hi, lo = scan_parts(n, args)
    dims, state = ctx.dims(n), init.node.type.shape
    T, rest = dims[0], dims[1:]
    rev = n.attrs["reverse"]
    if rest and all(_scan_shape(x.node.type.shape, n.type.shape) for x in (a, b)):
        _chunked_scan(ctx, n, out, (a, b, init, hi, lo))
        return

    def coef(x, tt: str, idx: Index) -> str:
        shape = x.node.type.shape
        if x.node.type.rank == len(state) + 1:
            return x.at((tt,) + scan_index(shape[1:], state, idx))
        return x.at(scan_index(shape, state, idx))

    def step(tt: str, prev: Callable[[Index], str]) -> None:
        with ctx.loops(rest) as idx:
            p = prev(idx)
            v = f"{coef(a, tt, idx)} * {p} + {coef(b, tt, idx)}"
            conds = ([f"{tt} < {hi.at(idx[:1])}"] if hi else []) + ([f"{tt} >= {lo.at(idx[:1])}"] if lo else [])
            ctx.line(f"{out.at((tt,) + idx)} = {v}" + (f" if {' and '.join(conds)} else {p}" if conds else ""))

    s, t = ctx.tmp("s"), ctx.tmp("t")
    ctx.line(f"if {T} > 0:")
    with ctx.indent():
        step(f"{T} - 1" if rev else "0", init.at)
    ctx.line(f"for {s} in range(1, {T}):")
    with ctx.indent():
        ctx.line(f"{t} = {T} - 1 - {s}" if rev else f"{t} = {s}")
        step(t, lambda idx: out.at((f"{t} + 1" if rev else f"{t} - 1",) + idx))


def _scan_shape(shape: tuple, out: tuple) -> tuple[bool, bool, bool] | None:
    """Which of (time, batch, features) a coefficient of `shape` spans in a scan whose output is `out`
    (T, B, ...): broadcast axes are False. None where it cannot be seen as a (T|1, B|1, F|1) array: a
    rank above out's, or features only partly broadcast (F is the flattened rest of the state)."""
    state = out[1:]
    if len(shape) > len(out) or not state:
        return None
    per_step = len(shape) == len(out)
    body = shape[1:] if per_step else shape
    padded = (1,) * (len(state) - len(body)) + tuple(body)
    if any(d != s and d != 1 for d, s in zip(padded, state)):
        return None
    feats = {d == s for d, s in zip(padded[1:], state[1:]) if s != 1}
    if len(feats) > 1:
        return None  # some feature axes spanned, others broadcast: no flat F view
    return per_step, padded[0] == state[0], feats == {True}


def _chunked_scan(ctx, n: Node, out, parts: tuple) -> None:
    """A scan whose coefficients are (T|1, B|1, F|1) arrays (per step or loop-invariant, broadcast over
    the batch or the features): scan.py's `scan_chunked`, split over time into one chunk per thread
    where the work pays (scan.py `chunks_for`), else the same loop on one."""
    a, b, init, hi, lo = parts
    T, *rest = ctx.dims(n)
    B, F = rest[0], ctx.product(rest[1:]) if len(rest) > 1 else "1"
    shape3 = f"({T}, {B}, {F})"

    def coefficient(x) -> str:
        spans = _scan_shape(x.node.type.shape, n.type.shape)
        dims = [d if on else "1" for d, on in zip((T, B, F), spans)]  # type: ignore[arg-type]
        return ctx.bind(_shaped(ctx, ctx.contiguous(x), f"({', '.join(dims)})"))

    A, Bc = coefficient(a), coefficient(b)
    H = ctx.bind(_shaped(ctx, ctx.contiguous(init), f"({B}, {F})"))
    Out = ctx.bind(_shaped(ctx, out.array(), shape3))
    none = "np.empty(0, np.int64)"
    bounds = [none if m is None else ctx.bind(_int64(ctx.contiguous(m), m)) for m in (hi, lo)]
    ctx.helpers.add("scan_chunked")
    rev = "True" if n.attrs["reverse"] else "False"
    ctx.line(f"scan_chunked({A}, {Bc}, {H}, {Out}, {bounds[0]}, {bounds[1]}, {rev}, {ctx.threads()}, {scan_work()})")


def _int64(expr: str, m) -> str:
    """A mask as the int64 vector scan.py's C ABI reads (an i32 one copied)."""
    return expr if m.node.type.dtype == DType.i64 else f"{expr}.astype(np.int64)"


def _last_step(ctx, n: Node, out, args: list) -> None:
    trace, init = args
    T = ctx.dims(trace.node)[0]
    last = "0" if n.attrs["reverse"] else f"{T} - 1"
    ctx.line(f"if {T} > 0:")
    with ctx.indent(), ctx.loops(ctx.dims(n)) as idx:
        ctx.line(f"{out.at(idx)} = {trace.at((last,) + idx)}")
    ctx.line("else:")
    with ctx.indent(), ctx.loops(ctx.dims(n)) as idx:
        ctx.line(f"{out.at(idx)} = {init.at(idx)}")


def _pad(ctx, n: Node, out, args: list) -> None:
    _fill(0.0).fn(ctx, n, out, args)
    ax, before = axis_of(n), int_attr(n, "before")
    _copy_at(ctx, out, args[0], lambda idx: idx[:ax] + (shifted(idx[ax], before),) + idx[ax + 1 :])


def _sum_to(ctx, n: Node, out, args: list) -> None:
    (x,) = args
    xs, target = x.node.type.shape, n.type.shape
    lead = len(xs) - len(target)
    acc = ctx.scratch(ctx.dims(n), DType.f64) if n.type.dtype != DType.f64 else out
    with ctx.loops(ctx.dims(n)) as idx:
        ctx.line(f"{acc.at(idx)} = 0.0")
    with ctx.loops(ctx.dims(x.node)) as idx:
        r = tuple("0" if d == 1 else idx[lead + k] for k, d in enumerate(target))
        ctx.line(f"{acc.at(r)} += {x.at(idx)}")
    if acc is not out:
        with ctx.loops(ctx.dims(n)) as idx:
            ctx.line(f"{out.at(idx)} = {acc.at(idx)}")


def _max_bwd(ctx, n: Node, out, args: list) -> None:
    x, y, g = args
    axes = _reduce_axes(n)
    keep = n.attrs["keepdims"]
    cdims = [d if k not in axes else "1" for k, d in enumerate(ctx.dims(x.node))]
    cnt = ctx.scratch(cdims, DType.f64)
    with ctx.loops(cdims) as idx:
        ctx.line(f"{cnt.at(idx)} = 0.0")
    with ctx.loops(ctx.dims(x.node)) as idx:
        r = _reduced(idx, axes, keep)
        ctx.line(f"if {x.at(idx)} == {y.at(r)}:")
        ctx.line(f"    {cnt.at(_reduced(idx, axes, True))} += 1.0")
    with ctx.loops(ctx.dims(x.node)) as idx:
        r = _reduced(idx, axes, keep)
        z = ctx.lit(0.0, n.type.dtype)
        share = f"{g.at(r)} / {cnt.at(_reduced(idx, axes, True))}"
        ctx.line(
            f"{out.at(idx)} = ({share} if {x.at(idx)} == {y.at(r)} else {z}) if {y.at(r)} == {y.at(r)} else {y.at(r)}"
        )


KERNELS: dict[str, Kernel] = {
    "zeros": _fill(0.0),
    "matmul": Kernel(_matmul),
    "matmul_tn": Kernel(_matmul_tn),
    "sum": _reduce("sum"),
    "mean": _reduce("mean"),
    "max": _reduce("max"),
    "softmax": _softmax(False),
    "log_softmax": _softmax(True),
    "concat": Kernel(_concat),
    "stack": Kernel(_stack),
    "shift": Kernel(_shift),
    "linear_scan": Kernel(_linear_scan),
    "last_step": Kernel(_last_step),
    "pad": Kernel(_pad),
    "sum_to": Kernel(_sum_to),
    "max_bwd": Kernel(_max_bwd),
}

BOUND = ("input", "constant", "loop", "item")  # handled by codegen: they bind values, not compute them

EMIT: dict[str, Scalar | View | Kernel] = {**SCALARS, **VIEWS, **KERNELS}

# Ops of the table this backend does not run, and why (tests/test_lowering_tables.py: every op is
# in EMIT, BOUND or here).
UNSUPPORTED: dict[str, str] = {
    "seq": "a cell's declaration (unrolling makes it a program input)",
    "param": "a cell's declaration (unrolling makes it a program input)",
    "static": "a cell's declaration (unrolling makes it a program input)",
    "state": "a cell's declaration (unrolling makes it a program input)",
    "dropout_mask": "a cell's mask (unrolling makes it philox_mask of the step and the seed words)",
}


def lowering(n: Node) -> Scalar | View | Kernel:
    """The table entry for `n`'s op; a clear error naming the op and the backend where there is none."""
    rule = EMIT.get(n.op)
    if rule is not None:
        return rule
    where = f"node {n.name or n.op} : {n.type}"
    if n.op in UNSUPPORTED:
        raise NumbaBackendError(f"numba-cpu does not support op {n.op!r} ({where}): {UNSUPPORTED[n.op]}")
    raise NumbaBackendError(
        f"numba-cpu has no code for op {n.op!r} ({where}); add its entry to EMIT in rnncomp/backends/numba_cpu/emit.py"
    )
