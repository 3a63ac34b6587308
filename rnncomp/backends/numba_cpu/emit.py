"""How each op is written in generated code: one entry per op in `EMIT`.

Three kinds of entry:
- `Scalar`: an elementwise op as a scalar expression of its operands' scalars; fused into loops.
- `View`: an op that only re-indexes its operand (split, slice, step, ...): reads go through
  `index`; `array` gives a NumPy view when a whole array is needed (None: copy it out).
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

import numpy as np

from ir import Node
from ir.dtypes import DType
from ir.ops import axes_of

from .errors import NumbaBackendError

Index = tuple[str, ...]


@dataclass(frozen=True)
class Scalar:
    expr: Callable[[Any, Node, list[str], Index], str]  # (ctx, node, operand scalars, index) -> expression
    index: Callable[[Node, int, Index], Index] | None = None  # operand k's index; default: broadcasting


@dataclass(frozen=True)
class View:
    index: Callable[[Node, Index], Index]  # the operand's index for an index of the result
    array: Callable[[Node, str], str] | None = None  # NumPy view expression of an array expression
    contiguous: Callable[[Node], bool] = lambda n: False  # whether it keeps C-contiguity
    injective: bool = True  # distinct result indices read distinct operand elements
    needs_contiguous: bool = False  # `array` only works on a C-contiguous operand


@dataclass(frozen=True)
class Kernel:
    fn: Callable[[Any, Node, Any, list[Any]], None]  # (ctx, node, out ref, operands)


def broadcast_index(op_shape: tuple, out_shape: tuple, idx: Index) -> Index:
    """NumPy broadcasting: an operand's index for an index of the result ("0" on stretched dims)."""
    off = len(out_shape) - len(op_shape)
    return tuple("0" if d == 1 else idx[off + k] for k, d in enumerate(op_shape))


def _add(i: str, k: int) -> str:
    return i if k == 0 else f"{k} + {i}" if i != "0" else str(k)


# ---------------------------------------------------------------- scalars


def _fn(name: str) -> Callable[[Any, Node, list[str], Index], str]:
    return lambda ctx, n, a, idx: f"{ctx.fn(name, n.type.dtype)}({a[0]})"


def _binary(sym: str) -> Scalar:
    return Scalar(lambda ctx, n, a, idx: f"{a[0]} {sym} {a[1]}")


def _pow(ctx, n: Node, a: list[str], idx: Index) -> str:
    """x ** p; x ** 0.5 is sqrt(x), as NumPy's power (-inf ** 0.5 is NaN there, not C's inf)."""
    p, dt = n.attrs["exponent"], n.type.dtype
    if p == 0.5:
        return f"{ctx.fn('sqrt', dt)}({a[0]})"
    return f"{ctx.fn('pow', dt)}({a[0]}, {ctx.lit(p, dt)})"


def _gelu(ctx, n: Node, a: list[str], idx: Index) -> str:
    return f"{ctx.fn('gelu_tanh' if n.attrs['tanh_approx'] else 'gelu', n.type.dtype)}({a[0]})"


def _pick(test: str) -> Scalar:
    """minimum (test <=) / maximum (>=): a NaN operand wins, as in np.minimum / np.maximum."""
    return Scalar(lambda ctx, n, a, idx: f"{a[0]} if {a[0]} {test} {a[1]} or {a[0]} != {a[0]} else {a[1]}")


def _compare(sym: str) -> Scalar:
    """A comparison as 0/1 of the result's dtype (NaN compares false, except !=)."""

    def expr(ctx, n: Node, a: list[str], idx: Index) -> str:
        dt = n.type.dtype
        return f"{ctx.lit(1.0, dt)} if {a[0]} {sym} {a[1]} else {ctx.lit(0.0, dt)}"

    return Scalar(expr)


def _relu(ctx, n: Node, a: list[str], idx: Index) -> str:
    z = ctx.lit(0.0, n.type.dtype)
    return f"{z} if {a[0]} <= {z} else {a[0]}"  # NaN fails the test and passes through


def _select_index(n: Node, k: int, idx: Index) -> Index:
    if k == 0:
        return ()
    if k == 1:
        return idx[:1]
    return broadcast_index(n.inputs[k].node.type.shape, n.type.shape, idx)


_CAST = {DType.f32: "np.float32", DType.f64: "np.float64", DType.i32: "np.int32", DType.i64: "np.int64"}

SCALARS: dict[str, Scalar] = {
    "identity": Scalar(lambda ctx, n, a, idx: a[0]),
    "neg": Scalar(lambda ctx, n, a, idx: f"-{a[0]}"),
    "tanh": Scalar(_fn("tanh")),
    "sigmoid": Scalar(_fn("sigmoid")),
    "exp": Scalar(_fn("exp")),
    "log": Scalar(_fn("log")),
    "softplus": Scalar(_fn("softplus")),
    "relu": Scalar(_relu),
    "add": _binary("+"),
    "sub": _binary("-"),
    "mul": _binary("*"),
    "div": _binary("/"),
    "where": Scalar(lambda ctx, n, a, idx: f"{a[1]} if {a[0]} != 0 else {a[2]}"),
    "cast": Scalar(lambda ctx, n, a, idx: f"{_CAST[n.attrs['to']]}({a[0]})"),
    "select_active": Scalar(lambda ctx, n, a, idx: f"{a[2]} if {a[0]} < {a[1]} else {a[3]}", _select_index),
    "sqrt": Scalar(_fn("sqrt")),
    "rsqrt": Scalar(_fn("rsqrt")),
    "abs": Scalar(lambda ctx, n, a, idx: f"abs({a[0]})"),
    "erf": Scalar(_fn("erf")),
    "pow": Scalar(_pow),
    "gelu": Scalar(_gelu),
    "minimum": _pick("<="),
    "maximum": _pick(">="),
    "less": _compare("<"),
    "greater": _compare(">"),
    "less_equal": _compare("<="),
    "greater_equal": _compare(">="),
    "equal": _compare("=="),
    "not_equal": _compare("!="),
}


# ---------------------------------------------------------------- views


def _int(n: Node, attr: str) -> int:
    """An int attribute, checked: attributes are written into code, so nothing else may pass."""
    v = n.attrs[attr]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise NumbaBackendError(f"{n.op}: attribute {attr}={v!r} is not an int")
    return int(v)


def _int_dim(d: Any) -> int:
    if isinstance(d, bool) or not isinstance(d, int):
        raise NumbaBackendError(f"a concrete dim was expected, got {d!r}")
    return d


def _axis(n: Node) -> int:
    (ax,) = axes_of(n)  # the op's one `axis`, normalised by its record
    return ax


def _offset_view(start: Callable[[Node], int]) -> View:
    def index(n: Node, idx: Index) -> Index:
        ax = _axis(n)
        return idx[:ax] + (_add(idx[ax], start(n)),) + idx[ax + 1 :]

    def array(n: Node, a: str) -> str:
        ax, lo = _axis(n), start(n)
        return f"{a}[{':, ' * ax}{lo}:{lo + _int_dim(n.type.shape[ax])}]"

    def contiguous(n: Node) -> bool:
        return all(d == 1 for d in n.type.shape[: _axis(n)])

    return View(index, array, contiguous)


def _split_start(n: Node) -> int:
    return _int(n, "index") * _int_dim(n.type.shape[_axis(n)])


def _expand_index(n: Node, idx: Index) -> Index:
    axes = axes_of(n)
    return tuple(i for k, i in enumerate(idx) if k not in axes)


VIEWS: dict[str, View] = {
    "split": _offset_view(_split_start),
    "slice": _offset_view(lambda n: _int(n, "start")),
    "step": View(
        lambda n, idx: (str(_int(n, "index")),) + idx,
        lambda n, a: f"{a}[{_int(n, 'index')}]",
        lambda n: True,
    ),
    "transpose": View(
        lambda n, idx: idx[:-2] + (idx[-1], idx[-2]),
        lambda n, a: (
            f"{a}.T"
            if n.type.rank == 2
            else f"np.transpose({a}, {tuple(range(n.type.rank - 2)) + (n.type.rank - 1, n.type.rank - 2)})"
        ),
    ),
    "expand_dims": View(_expand_index, None, lambda n: True),
    "broadcast_to": View(
        lambda n, idx: broadcast_index(n.inputs[0].node.type.shape, n.type.shape, idx), None, injective=False
    ),
}


# ---------------------------------------------------------------- kernels


def _fill(value: float) -> Kernel:
    def fn(ctx, n: Node, out, args: list) -> None:
        v = ctx.lit(value, n.type.dtype)
        with ctx.loops(ctx.dims(n)) as idx:
            ctx.line(f"{out.at(idx)} = {v}")

    return Kernel(fn)


def _matmul(ctx, n: Node, out, args: list) -> None:
    a, b = args
    adims, N = ctx.dims(a.node), ctx.dims(n)[-1]
    rows = ctx.product(adims[:-1])
    A = ctx.contiguous(a)
    a2 = A if a.node.type.rank == 2 else f"{A}.reshape(({rows}, {adims[-1]}))"
    o = out.array()
    out2 = o if n.type.rank == 2 else f"{o}.reshape(({rows}, {N}))"
    ctx.matmul(a2, b, out2)


def _matmul_tn(ctx, n: Node, out, args: list) -> None:
    a, b = args
    adims, bdims = ctx.dims(a.node), ctx.dims(b.node)
    rows = ctx.product(adims[:-1])
    A, B = ctx.contiguous(a), ctx.contiguous(b)
    a2 = A if a.node.type.rank == 2 else f"{A}.reshape(({rows}, {adims[-1]}))"
    b2 = B if b.node.type.rank == 2 else f"{B}.reshape(({rows}, {bdims[-1]}))"
    ctx.gemm(a2, b2, out.array(), "gemm_tn")


def _reduced(idx: Index, axes: tuple[int, ...], keepdims: bool) -> Index:
    """The index into a reduced array (keepdims or not) for an index of the full operand."""
    if keepdims:
        return tuple("0" if k in axes else i for k, i in enumerate(idx))
    return tuple(i for k, i in enumerate(idx) if k not in axes)


def _reduce(kind: str) -> Kernel:
    """sum / mean / max: accumulate in C order over the operand into a buffer of the kept shape."""

    def fn(ctx, n: Node, out, args: list) -> None:
        (x,) = args
        axes, keep = axes_of(n), n.attrs["keepdims"]
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
        ax = _axis(n)
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
    ax, off = _axis(n), 0
    for x in args:
        _copy_at(ctx, out, x, lambda idx, o=off: idx[:ax] + (_add(idx[ax], o),) + idx[ax + 1 :])
        off += _int_dim(x.node.type.shape[ax])


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


def _pad(ctx, n: Node, out, args: list) -> None:
    _fill(0.0).fn(ctx, n, out, args)
    ax, before = _axis(n), _int(n, "before")
    _copy_at(ctx, out, args[0], lambda idx: idx[:ax] + (_add(idx[ax], before),) + idx[ax + 1 :])


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
    axes = axes_of(n)
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
        ctx.line(
            f"{out.at(idx)} = {g.at(r)} / {cnt.at(_reduced(idx, axes, True))} if {x.at(idx)} == {y.at(r)} else {z}"
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
    "state": "a cell's declaration (unrolling makes it a program input)",
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
