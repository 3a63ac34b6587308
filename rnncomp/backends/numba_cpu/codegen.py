"""The generator: a Program's blocks become calls, in schedule order, to small `@njit` kernels.

`program` (the one entry function) allocates every buffer up front, runs loops and calls one
kernel per unit: a fused elementwise loop, an op's kernel, a copy. A kernel's text is built with
local names (arrays x0.., scalars y0.., dims n0..) bound at the call, so identical kernels (the
copies of an unrolled step) are one function: Numba compiles each once (see units.py).

A loop whose batch rows are independent (passes/rows.py) becomes one `parallel=True` kernel that
runs a block of rows per Numba thread through every step (rowloops.py); inside it GEMMs run on one
thread each, except where the rows go to one block and each step's recurrent GEMM is split by columns
across the threads instead (launch.step_parts, stepgemm.py). Elsewhere a large GEMM is split across
the threads (gemm.py); Numba's threads are the only ones: the BLAS never starts its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from ir import Node, Program, TensorType
from ir import symexpr as sx
from ir.dtypes import DType
from ir.shapes import is_identifier
from passes.rows import ROWS

from ..common.names import Namespace, ir_base, is_name, mark
from ..common.scalars import Scalar, operand_index
from ..common.values import Arg, Index, Ref
from ..common.views import VIEW_INDEX
from ..common.writer import Writer, describe, float_text
from .blocks import Block, Blocks, Operand, Place
from .emit import EMIT, View
from .errors import NumbaBackendError
from .rowloops import Part, small_weight, transposed
from .units import KernelText, Units

LOOP_ROWS = 3  # (gemm.py's: up to this many rows a loop nest beats BLAS)
CHUNK = 8  # terms of k a small product's loop nest adds per pass over the outputs


NP = {DType.f32: "np.float32", DType.f64: "np.float64", DType.i32: "np.int32", DType.i64: "np.int64"}
MATH = ("exp", "log", "sqrt", "erf")  # scalar functions written as math.<name> in both dtypes
HELPERS = {  # helper -> the module of this package that defines it
    "tanh_f32": "approx",
    "sigmoid_f32": "approx",
    "sigmoid_f64": "kernels",
    "softplus_f32": "kernels",
    "softplus_f64": "kernels",
    "rsqrt_f32": "kernels",
    "rsqrt_f64": "kernels",
    "pow_f32": "kernels",
    "pow_f64": "kernels",
    "gelu_f32": "kernels",
    "gelu_f64": "kernels",
    "gelu_tanh_f32": "kernels",
    "gelu_tanh_f64": "kernels",
    "philox_keep": "kernels",
    "gemm": "gemm",
    "gemm_nt": "gemm",
    "gemm_tn": "gemm",
    "pack_b": "gemm",
    "gemm_packed": "gemm",
    "gemm_step": "stepgemm",
    "rows_nt": "gemm",
    "scan_chunked": "scan",
    "shaped": "shaped",
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
        self.main_names = Namespace()  # `program`'s variables named after IR nodes
        self.counter: dict[str, int] = {}
        self.kernel: KernelText | None = None
        self.kernels: dict[tuple[str, ...], tuple[str, list[str], Writer]] = {}  # code -> (kind, params, text)
        self.calls: list[tuple[tuple[str, ...], list[str], str]] = []  # (kernel, arguments, label)
        self.kernel_writers: list[tuple[str, Writer, str]] = []
        self.abi: dict[str, tuple] = {}  # program's names a row block may be passed (see units.py)
        self.loop_depth = 0
        self.steps_in_program = False  # a loop's steps run in `program` itself (not as row blocks)
        self.loop_results: dict[int, list[Ref]] = {}
        self.blk: Block | None = None
        self.part: Part | None = None  # the row block being emitted (a row-parallel loop's body)
        self.packs: dict[int, tuple[str, Ref, bool]] = {}  # id(loop param) -> (pack_b result, operand, trans)
        self.free: dict[tuple, list[str]] = {}  # (dtype, shape) -> dead buffers (storage.py)

    # ------------------------------------------------------------ names, literals, dims

    def tmp(self, prefix: str = "t") -> str:
        """A fresh local name, marked (common/names.py); kernel names restart at 0, so equal kernels
        have equal text."""
        k = self.counter.get(prefix, 0)
        self.counter[prefix] = k + 1
        return mark(f"{prefix}{k}")

    def tmp_for(self, name: str | None, prefix: str = "t", suffix: str = "") -> str:
        """A fresh local name for a value of IR node `name` (`h`, `c_state`: see common/names.py),
        unique in the kernel being built; `tmp(prefix)` for a node without a usable name."""
        base = ir_base(name)
        if base is None:
            return self.tmp(prefix)
        ns = self.kernel.names if self.kernel is not None else self.main_names
        return mark(ns.take(base + suffix))

    def main_name(self, prefix: str) -> str:
        k = self.main_counter.get(prefix, 0)
        self.main_counter[prefix] = k + 1
        return f"{prefix}{k}"

    def dim(self, d: int | str) -> str:
        if isinstance(d, int):
            return str(d)
        if d == ROWS:
            if self.part is None:
                raise NumbaBackendError("numba-cpu internal error: a row block's extent outside its loop")
            return self.local(self.part.rows, "n", self.part.kernel.uid)
        if d not in self.dim_names:
            self.dim_names[d] = f"d_{d}" if is_identifier(d) else self.main_name("d")
            self.args.append(Arg(self.dim_names[d], "dim", d))
            self.abi[self.dim_names[d]] = ("int",)
        return self.local(self.dim_names[d], "n")

    def row_base(self, node: Node) -> str | None:
        """The first row of the row block being emitted, for a value with the batch at axis 0 (its
        index 0 is then the block's row: a dropout mask draws by the row in the whole batch)."""
        t = node.type
        if self.part is None or not isinstance(t, TensorType) or not t.shape or t.shape[0] != ROWS:
            return None
        return self.local(self.part.r0, "n", self.part.kernel.uid)

    def dims_of(self, t: TensorType) -> list[str]:
        return [self.dim(d) for d in t.shape]

    def dims(self, node: Node) -> list[str]:
        return self.dims_of(node.type)  # type: ignore[arg-type]

    def value(self, expr: str) -> str:
        """A dim or count expression of `program` as the kernel being built sees it."""
        return expr if expr.isdigit() else self.local(expr, "n")

    def product(self, dims: list[str]) -> str:
        return " * ".join(dims) if dims else "1"

    def count(self, c: sx.Count, prefix: str) -> str:
        if isinstance(c, int):
            return str(c)
        name = self.main_name(prefix)
        self.args.append(Arg(name, "count", c))
        self.abi[name] = ("int",)
        return name

    def int_name(self, prefix: str) -> str:
        """A fresh int variable of `program` (a row block may be passed it)."""
        name = self.main_name(prefix)
        self.abi[name] = ("int",)
        return name

    def address_arg(self, function: str) -> str:
        """A parameter of `program`: the address of a block cfunc, from the runner."""
        name = f"f_{function}"
        self.args.append(Arg(name, "address", function))
        return name

    def lit(self, value: float, dtype: DType) -> str:
        """A typed literal: float64 and ints as Python literals, float32 as a module constant."""
        if dtype in (DType.i32, DType.i64):
            return str(int(value))
        text = float_text(float(value))
        if dtype == DType.f64:
            return text
        key = (text, dtype)
        if key not in self.consts:
            self.consts[key] = name = f"c{len(self.consts)}"
            self.const_lines.append(f"{name} = {NP[dtype]}({text})")
        return self.consts[key]

    def fn(self, name: str, dtype: DType) -> str:
        """The scalar function for an op on `dtype`: a `math` function or a helper (see HELPERS)."""
        if name in MATH or (name == "tanh" and dtype != DType.f32):
            return f"math.{name}"
        helper = f"{name}_{'f32' if dtype == DType.f32 else 'f64'}"
        self.helpers.add(helper)
        return helper

    # ------------------------------------------------------------ text of refs

    def at(self, ref: Ref, idx: Index) -> str:
        """`ref`'s element at `idx` (in a kernel: through its parameters)."""
        if ref.scalar:
            return ref.var if ref.const else self.local(ref.var, "y", ref.home)
        pre = tuple(self.local(p, "y", ref.home) for p in ref.prefix)  # (a stack's slot k too: one kernel for all k)
        full, base = pre + ref.index(tuple(idx)), self.local(ref.var, "x", ref.home)
        return f"{base}[{', '.join(full)}]" if full else f"{base}[()]"

    def arr(self, ref: Ref) -> str:
        """`ref` as an array expression (in a kernel: a parameter)."""
        return self.local(ref.array(), "x", ref.home)

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
        """A buffer of `program`, allocated by the runner (its shape is computed there); inside a
        row block, that block's rows of it."""
        if self.part is not None:
            return self.part.buffer(self, t)
        again = self.reused(t)
        if again is not None:
            return again
        name = self.main_name("v")
        self.args.append(Arg(name, "buffer", t))  # the runner passes it in, from its pool
        self.abi[name] = ("array", t.dtype.value, t.rank)
        self.alloc.comment(f"{name}: {t}")
        return Ref(name, owned=True)

    def scratch(self, dims: list[str], dtype: DType) -> Place:
        """A buffer for a kernel's own use (dims as the kernel sees them: symbols are mapped back)."""
        shape = tuple(self._symbol(self.main_expr(d)) for d in dims)
        return Place(self, self.buffer(TensorType(dtype, shape)))

    def _symbol(self, d: str) -> int | str:
        if d.isdigit():
            return int(d)
        if self.part is not None and d == self.part.rows:  # a row block's extent, seen from its own kernel
            return ROWS
        for sym, name in self.dim_names.items():
            if name == d:
                return sym
        raise NumbaBackendError(f"numba-cpu internal error: scratch dim {d!r} is not a dim")

    def bind(self, expr: str) -> str:
        """`expr` as a plain name (so loops do not re-evaluate it)."""
        if is_name(expr):
            return expr
        name = self.tmp("a")
        self.w.line(f"{name} = {expr}")
        return name

    @contextmanager
    def inside(self, kernel: KernelText, counter: dict[str, int]) -> Iterator[None]:
        """Names as an enclosing kernel sees them (for lines written into it from a nested one)."""
        saved, (self.kernel, self.counter) = (self.kernel, self.counter), (kernel, counter)
        try:
            yield
        finally:
            self.kernel, self.counter = saved

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

    def gemm(self, A: str, B: str, out: str, kind: str = "gemm") -> None:
        """out = A @ B by gemm.py's `kind` (gemm, gemm_nt: B transposed, gemm_tn: A transposed): a loop
        nest when small, else BLAS (a cheap run-time branch, so symbolic sizes need nothing more)."""
        self.helpers.add(kind)
        self.w.line(f"{kind}({self.bind(A)}, {self.bind(B)}, {self.bind(out)}, {self.threads()}, BLAS)")

    def matmul(self, A: str, b: Operand, out: str) -> None:
        """out = A @ b for a right operand b as it comes: packed before its loop, a transposed
        array (BLAS reads it transposed: no copy), or any other array (made contiguous). A small
        weight of known shape in a loop also gets a loop nest for a few rows, written out here: at
        B = 1 a recurrent step's product is cheaper than any call (1x32 @ 32x128 in 0.12 us, 0.34 through
        gemm.py's generic loop)."""
        A, out = self.bind(A), self.bind(out)
        packed = self.packs.get(id(b.node))
        base = packed[1] if packed else transposed(self, b.node)
        trans = packed[2] if packed else base is not None
        weight = self.arr(base) if base is not None else self.contiguous(b)
        K, N = b.node.type.shape  # type: ignore[union-attr]
        small = self.loop_depth > 0 and small_weight(b.node.type)  # type: ignore[arg-type]
        if small:
            self.w.line(f"if {A}.shape[0] <= {LOOP_ROWS}:")
            with self.w.indent():
                self.row_product(A, weight, out, K, N, trans, self.lit(0.0, b.node.type.dtype))  # type: ignore[union-attr]
            self.w.line("else:")
            self.w.depth += 1
        if packed is not None:
            args = f"{A}, {self.local(packed[0], 'x')}, {weight}, {out}, {trans}"
            if self.part is not None and self.part.step is not None:  # a step's slices (stepgemm.py)
                self.helpers.add("gemm_step")
                self.w.line(f"gemm_step({args}, {self.value(self.part.step)}, BLAS)")
            else:
                self.helpers.add("gemm_packed")
                self.w.line(f"gemm_packed({args}, {self.threads()}, BLAS)")
        else:
            self.gemm(A, weight, out, "gemm_nt" if trans else "gemm")
        if small:
            self.w.depth -= 1

    def row_product(self, A: str, weight: str, out: str, K: int, N: int, trans: bool, zero: str) -> None:
        """out = A @ weight for A's few rows, as a loop nest. A weight stored (K, N): each row's
        products go over k in chunks of CHUNK, whose A values are held in locals while one pass over
        the N outputs adds the chunk's terms (LLVM vectorises it over N; 30% faster than a dot
        product per output at 1x32 @ 32x128). A transposed weight (N, K): a dot product per output,
        along its contiguous rows, in gemm.rows_nt: it may reassociate its sums to vectorise them along
        k, which generated code may not (approx.FASTMATH); a product's summation order is free (BLAS
        picks its own), an elementwise expression's is not."""
        w, i, j = self.w, self.tmp("i"), self.tmp("i")
        if trans:
            self.helpers.add("rows_nt")
            w.line(f"rows_nt({A}, {weight}, {out}, {zero})")
            return
        w.line(f"for {i} in range({A}.shape[0]):")
        with w.indent():
            w.line(f"for {j} in range({N}):")
            w.line(f"    {out}[{i}, {j}] = {zero}")
            whole = K - K % CHUNK
            for start, stop, step in ((0, whole, CHUNK), (whole, K, 1)):
                if start == stop:
                    continue
                kc, hs = self.tmp("i"), [self.tmp() for _ in range(step)]
                stride = f", {step}" if step > 1 else ""
                w.line(f"for {kc} in range({start}, {stop}{stride}):")
                with w.indent():
                    at = [kc] + [f"{kc} + {q}" for q in range(1, step)]
                    for h, k in zip(hs, at):
                        w.line(f"{h} = {A}[{i}, {k}]")
                    terms = " + ".join(f"{h} * {weight}[{k}, {j}]" for h, k in zip(hs, at))
                    w.line(f"for {j} in range({N}):")
                    w.line(f"    {out}[{i}, {j}] += {terms}")

    def threads(self) -> str:
        """How many threads a GEMM may split across: one inside a row block, else Numba's count."""
        if self.part is not None:
            return "1"
        if not any(a.kind == "threads" for a in self.args):
            self.args.append(Arg("n_threads", "threads", None))  # Numba's thread count, from the runner
            self.abi["n_threads"] = ("int",)
        return self.local("n_threads", "n")

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
        index = VIEW_INDEX.get(node.op)
        if index is None:
            raise NumbaBackendError(f"numba-cpu internal error: {node!r} is read before it is computed")
        sub = index(node, idx)
        if node.op == "step":  # a full unroll's step: a parameter, so every step's kernel is one kernel
            sub = (self.local(sub[0], "y"),) + sub[1:]
        return self.read(node.inputs[0].node, sub)

    def member(self, node: Node, idx: Index) -> str:
        blk = self.blk
        assert blk is not None
        key = (id(node), idx)
        if key not in blk.memo:
            rule = EMIT[node.op]  # the shared scalar table, as numba-cpu's EMIT holds it
            assert isinstance(rule, Scalar)
            args = [self.read(u.node, operand_index(rule, node, k, idx)) for k, u in enumerate(node.inputs)]
            label = describe(node, blk.names)
            t = self.tmp_for(node.name)
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
