"""The generator: a Program's blocks become calls, in schedule order, to small `@njit` kernels.

`program` (the one entry function) allocates every buffer up front, runs loops and calls one
kernel per unit: a fused elementwise loop, an op's kernel, a copy. A kernel's text is built with
local names (arrays x0.., scalars y0.., dims n0..) bound at the call, so identical kernels (the
copies of an unrolled step) are one function: Numba compiles each once (see units.py).

Not yet: `prange` over the batch. GEMMs run on OpenBLAS's threads, which keep spinning for a while
after each call; a parallel fused loop would fight them for the same cores. Parallel elementwise
work pays once BLAS threads are coordinated with ours (e.g. one pool, or single-threaded BLAS
inside a batch-parallel step).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import numpy as np

from ir import Node, Program, TensorType
from ir import symexpr as sx
from ir.dtypes import DType
from ir.shapes import is_identifier

from .blocks import Block, Blocks, Operand, Place
from .emit import EMIT, Scalar, View, broadcast_index
from .errors import NumbaBackendError
from .units import KernelText, Units
from .values import Arg, Index, Ref
from .writer import Writer, describe

NP = {DType.f32: "np.float32", DType.f64: "np.float64", DType.i32: "np.int32", DType.i64: "np.int64"}
HELPERS = {  # helper -> the module of this package that defines it
    "tanh_f32": "approx",
    "sigmoid_f32": "approx",
    "sigmoid_f64": "kernels",
    "softplus_f32": "kernels",
    "softplus_f64": "kernels",
    "gemm": "kernels",
    "gemm_tn": "kernels",
}


class Generator(Units, Blocks):
    """Generates one module: `program`'s body, its buffers, arguments, kernels and constants."""

    def __init__(self, prog: Program, dtype: DType):
        self.prog, self.dtype = prog, dtype
        self.w = Writer(1)  # where statements go: `program`'s body, or the kernel being built
        self.alloc = Writer(1)
        self.args: list[Arg] = []
        self.dim_names: dict[str, str] = {}
        self.helpers: set[str] = set()
        self.consts: dict[tuple, str] = {}
        self.const_lines: list[str] = []
        self.main_counter: dict[str, int] = {}
        self.counter: dict[str, int] = {}
        self.kernel: KernelText | None = None
        self.kernels: dict[tuple[str, ...], tuple[str, list[str], Writer]] = {}  # code -> (kind, params, text)
        self.calls: list[tuple[tuple[str, ...], list[str], str]] = []  # (kernel, arguments, label)
        self.kernel_writers: list[tuple[str, Writer]] = []
        self.loop_results: dict[int, list[Ref]] = {}
        self.blk: Block | None = None

    # ------------------------------------------------------------ names, literals, dims

    def tmp(self, prefix: str = "t") -> str:
        """A fresh local name (kernel names restart at 0, so equal kernels have equal text)."""
        k = self.counter.get(prefix, 0)
        self.counter[prefix] = k + 1
        return f"{prefix}{k}"

    def main_name(self, prefix: str) -> str:
        k = self.main_counter.get(prefix, 0)
        self.main_counter[prefix] = k + 1
        return f"{prefix}{k}"

    def dim(self, d: int | str) -> str:
        if isinstance(d, int):
            return str(d)
        if d not in self.dim_names:
            self.dim_names[d] = f"d_{d}" if is_identifier(d) else self.main_name("d")
            self.args.append(Arg(self.dim_names[d], "dim", d))
        return self.local(self.dim_names[d], "n")

    def dims_of(self, t: TensorType) -> list[str]:
        return [self.dim(d) for d in t.shape]

    def dims(self, node: Node) -> list[str]:
        return self.dims_of(node.type)  # type: ignore[arg-type]

    def product(self, dims: list[str]) -> str:
        return " * ".join(dims) if dims else "1"

    def count(self, c: sx.Count, prefix: str) -> str:
        if isinstance(c, int):
            return str(c)
        name = self.main_name(prefix)
        self.args.append(Arg(name, "count", c))
        return name

    def lit(self, value: float, dtype: DType) -> str:
        """A typed literal: float64 and ints as Python literals, float32 as a module constant."""
        if dtype in (DType.i32, DType.i64):
            return str(int(value))
        v = float(value)
        text = repr(v) if np.isfinite(v) else ("math.nan" if np.isnan(v) else ("-" if v < 0 else "") + "math.inf")
        if dtype == DType.f64:
            return text
        key = (text, dtype)
        if key not in self.consts:
            self.consts[key] = name = f"c{len(self.consts)}"
            self.const_lines.append(f"{name} = {NP[dtype]}({text})")
        return self.consts[key]

    def fn(self, name: str, dtype: DType) -> str:
        """The scalar function for an op on `dtype`: a `math` function or a helper (see HELPERS)."""
        if name in ("exp", "log") or (name == "tanh" and dtype != DType.f32):
            return f"math.{name}"
        helper = f"{name}_{'f32' if dtype == DType.f32 else 'f64'}"
        self.helpers.add(helper)
        return helper

    # ------------------------------------------------------------ text of refs

    def at(self, ref: Ref, idx: Index) -> str:
        """`ref`'s element at `idx` (in a kernel: through its parameters)."""
        if ref.scalar:
            return ref.var if ref.const else self.local(ref.var, "y")
        if self.kernel is None:
            full, base = ref.prefix + tuple(idx), ref.var
        else:
            pre = tuple(p if p.isdigit() else self.local(p, "y") for p in ref.prefix)
            full, base = pre + tuple(idx), self.local(ref.var, "x")
        return f"{base}[{', '.join(full)}]" if full else f"{base}[()]"

    def arr(self, ref: Ref) -> str:
        """`ref` as an array expression (in a kernel: a parameter)."""
        return self.local(ref.array(), "x")

    # ------------------------------------------------------------ emission (the ctx of emit.py)

    def line(self, text: str) -> None:
        self.w.line(text)

    def indent(self):
        return self.w.indent()

    @contextmanager
    def loops(self, dims: list[str]) -> Iterator[Index]:
        """Nested `for` loops over `dims` (a dim of 1 gets index 0 and no loop); yields the index."""
        idx = []
        with ExitStack() as stack:
            for d in dims:
                if d == "1":
                    idx.append("0")
                    continue
                i = self.tmp("i")
                self.w.line(f"for {i} in range({d}):")
                stack.enter_context(self.w.indent())
                idx.append(i)
            yield tuple(idx)

    def buffer(self, t: TensorType) -> Ref:
        """A buffer of `program`, allocated by the runner (its shape is computed there)."""
        name = self.main_name("v")
        self.args.append(Arg(name, "buffer", t))  # the runner passes it in, from its pool
        self.alloc.comment(f"{name}: {t}")
        return Ref(name, owned=True)

    def scratch(self, dims: list[str], dtype: DType) -> Place:
        """A buffer for a kernel's own use (dims as the kernel sees them: symbols are mapped back)."""
        inv = {v: k for k, v in (self.kernel.by_expr.items() if self.kernel else [])}
        shape = tuple(self._symbol(inv.get(d, d)) for d in dims)
        return Place(self, self.buffer(TensorType(dtype, shape)))

    def _symbol(self, d: str) -> int | str:
        if d.isdigit():
            return int(d)
        for sym, name in self.dim_names.items():
            if name == d:
                return sym
        raise NumbaBackendError(f"numba-cpu internal error: scratch dim {d!r} is not a dim")

    def bind(self, expr: str) -> str:
        """`expr` as a plain name (so loops do not re-evaluate it)."""
        if expr.isidentifier():
            return expr
        name = self.tmp("a")
        self.w.line(f"{name} = {expr}")
        return name

    @contextmanager
    def main_level(self) -> Iterator[None]:
        """Names as `program` sees them (for allocations made while a kernel is being built)."""
        saved, self.kernel = self.kernel, None
        try:
            yield
        finally:
            self.kernel = saved

    def copy(self, dst: Ref, shape: tuple, src: Callable[[Index], str], label: str = "copy") -> None:
        """dst = src over `shape` (an IR shape), as its own kernel."""

        def body() -> None:
            with self.loops([self.dim(d) for d in shape]) as idx:
                self.w.line(f"{self.at(dst, idx)} = {src(idx)}")

        self.unit("copy", label, body)

    def contiguous(self, x: Operand) -> str:
        """A C-contiguous array expression for an operand (copied out when it is a strided view)."""
        ref = self.array(x.node)
        if ref.contiguous:
            return self.arr(ref)
        buf = self.buffer(x.node.type)  # type: ignore[arg-type]
        with self.loops(self.dims(x.node)) as idx:
            self.w.line(f"{self.at(buf, idx)} = {self.read(x.node, idx)}")
        return self.arr(buf)

    def gemm(self, M: str, K: str, N: str, A: str, B: str, out: str, transpose_a: bool) -> None:
        """out[M, N] = A @ B (A is [K, M] if transpose_a), by kernels.gemm: a loop nest when small,
        else BLAS (the choice is a cheap run-time branch, so symbolic sizes need nothing more)."""
        name = "gemm_tn" if transpose_a else "gemm"
        self.helpers.add(name)
        if not any(a.kind == "threads" for a in self.args):
            self.args.append(Arg("n_threads", "threads", None))  # Numba's thread count, from the runner
        threads = self.local("n_threads", "n")
        self.w.line(f"{name}({self.bind(A)}, {self.bind(B)}, {self.bind(out)}, {threads})")

    # ------------------------------------------------------------ reading values

    def read(self, node: Node, idx: Index) -> str:
        """A scalar expression for `node` at `idx` (fused members are computed on first read)."""
        blk = self.blk
        assert blk is not None
        if blk.group is not None and id(node) in blk.group.members:
            return self.member(node, idx)
        ref = blk.scope.get(node)
        if ref is not None:
            return self.at(ref, idx)
        view = EMIT.get(node.op)
        if not isinstance(view, View):
            raise NumbaBackendError(f"numba-cpu internal error: {node!r} is read before it is computed")
        return self.read(node.inputs[0].node, view.index(node, idx))

    def member(self, node: Node, idx: Index) -> str:
        blk = self.blk
        assert blk is not None
        key = (id(node), idx)
        if key not in blk.memo:
            rule = EMIT[node.op]
            assert isinstance(rule, Scalar)
            args = []
            for k, u in enumerate(node.inputs):
                shape = u.node.type.shape  # type: ignore[union-attr]
                oidx = rule.index(node, k, idx) if rule.index else broadcast_index(shape, node.type.shape, idx)  # type: ignore[union-attr]
                args.append(self.read(u.node, oidx))
            label = describe(node, blk.names)
            t = self.tmp()
            with self.w.owned_by(label):
                self.w.line(f"{t} = {rule.expr(self, node, args, idx)}  # {label}")
            blk.memo[key] = t
        return blk.memo[key]

    def array(self, node: Node) -> Ref:
        """An array ref for `node`: its storage, a NumPy view of it, or a copy when no view exists."""
        blk = self.blk
        assert blk is not None
        ref = blk.scope.get(node)
        if ref is not None and not ref.scalar:
            return ref
        t: TensorType = node.type  # type: ignore[assignment]
        if ref is not None:  # a scalar needed as a 0-d array
            buf = self.buffer(t)
            self.unit(
                "copy", describe(node, blk.names), lambda: self.w.line(f"{self.at(buf, ())} = {self.at(ref, ())}")
            )
            blk.scope.set(node, buf)
            return buf
        view = EMIT.get(node.op)
        if not isinstance(view, View):
            raise NumbaBackendError(f"numba-cpu internal error: {node!r} has no array")
        base = self.array(node.inputs[0].node)
        if view.array is not None and (base.contiguous or not view.needs_contiguous):
            return Ref(view.array(node, base.array()), contiguous=base.contiguous and view.contiguous(node))
        buf = self.buffer(t)
        self.copy(buf, t.shape, lambda idx: self.read(node, idx), describe(node, blk.names))
        blk.scope.set(node, buf)
        return buf
