"""The emission context: names, dims and literals, where each value lives, and the kernel being written.

Host values are device arrays (an input `in_x`, a buffer `v3`, carried states `h_state`/`h_next`,
or `cs0`/`ns0` for an unnamed one, a constant array `const0`), dims (`d_B`), trip counts (`n0`,
`start0`) and step indices (`b0`).
Kernel code reads them by name, and a kernel's parameters are exactly the host names its code
mentions: host names are marked where they are made (common/names.py), so a kernel's body tells
which it mentions without being read back; kernel-local names (`e`, `i0`, `t3`, `acc`, ...) use
other spellings, so the two never collide. Elementwise members of a fused group are computed as
scalars where they are read. Variables of IR nodes are named after them (`h`, `c_state`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ir import Node, Program, TensorType
from ir import symexpr as sx
from ir.dtypes import DType
from ir.shapes import is_identifier
from passes.fuse import Group

from ..common.names import Namespace, ir_base, mark, names_in, plain
from ..common.scalars import SCALARS, operand_index
from ..common.values import Arg, Index, Ref, Scope
from ..common.views import VIEW_INDEX
from ..common.writer import Writer, describe, float_text
from .device import DeviceConfig
from .errors import CudaBackendError

HOST_PREFIXES = ("v", "cs", "ns", "out", "const", "n", "start", "b", "it", "d_")  # each followed by a number
NP_TYPE = {DType.f32: "np.float32", DType.f64: "np.float64", DType.i32: "np.int32", DType.i64: "np.int64"}
NUMBA_TYPE = {DType.f32: "float32", DType.f64: "float64", DType.i32: "int32", DType.i64: "int64"}


@dataclass
class Block:
    """The values of one block being emitted (the program's top level or a loop body)."""

    scope: Scope
    names: dict[int, str]
    group: Group | None = None  # the fused group being written, if any
    memo: dict = field(default_factory=dict)  # (id(member), index) -> kernel-local name


@dataclass
class Kernel:
    """A generated kernel: its name, docstring, parameters and body lines."""

    name: str
    doc: str
    params: list[str]
    body: Writer
    owner: str | None = None  # the IR node whose code it is (None: a fused group; its doc names the roots)
    launch: str = ""  # its launch configuration (`grid_1d(...)`, `grid_gemm(...)`; "" for a persistent kernel)
    threads: int = 0  # threads per block
    blocks: int = 0  # blocks of a persistent kernel's grid (0: a grid sized by the data at run time)
    dynamic_shared: int = 0  # bytes of dynamic shared memory per block, set at launch
    grid_syncs: int = 0  # a persistent kernel's grid-wide syncs per loop iteration
    steps: int = 1  # time steps per loop iteration (a persistent kernel of a k-unrolled loop: k)
    cost: Any = None  # a persistent kernel's cost.StepCost
    one_block: bool = False  # a persistent kernel of one block (no grid sync, no cooperative launch)


class Context:
    """Everything code generation writes: module constants, kernels, buffers and the host function."""

    def __init__(self, prog: Program, dtype: DType, cfg: DeviceConfig):
        self.prog, self.dtype, self.cfg = prog, dtype, cfg
        self.host = Writer(1)  # the host function's statements
        self.alloc = Writer(1)  # its buffer allocations, all before the first launch
        self.kernels: list[Kernel] = []
        self.constants: dict[tuple, str] = {}  # (text, dtype) -> module-level name
        self.helpers: set[str] = set()
        self.args: list[Arg] = []
        self.dim_names: dict[str, str] = {}
        self.counter: dict[str, int] = {}
        self.local_counter: dict[str, int] = {}
        self.host_ir = Namespace()  # host names made after IR nodes (`h_state`)
        self.local_ir: Namespace | None = None  # the kernel being written's locals named after IR nodes
        self.kw: Writer | None = None  # the kernel being written
        self.launch = ""  # the launch configuration of the kernel last written
        self.phases = False  # writing a persistent kernel: each would-be kernel is a phase of it
        self.syncs = 0  # grid syncs written into the persistent kernel being written
        self.one_block = False  # that kernel is one block: phases end with cuda.syncthreads(), not grid.sync()
        self.block_syncs = 0  # the block barriers written between its phases
        self.arg_types: dict[str, tuple[str, int]] = {}  # host array name (plain) -> (numpy dtype, ndim)
        self.on_chip: dict[int, Any] = {}  # id(weight node) -> gemm.OnChip, in a persistent kernel
        self.blk: Block | None = None

    # ------------------------------------------------------------ names, dims, literals

    def host_name(self, prefix: str) -> str:
        """A fresh host-side name (`v3`, `cs0`, `n1`, ...), marked: kernels take it as a parameter."""
        assert prefix in HOST_PREFIXES, prefix
        k = self.counter.get(prefix, 0)
        self.counter[prefix] = k + 1
        return mark(f"{prefix}{k}")

    def host_name_for(self, name: str | None, prefix: str, suffix: str) -> str:
        """A fresh host name for a buffer of IR node `name` (`h_state`: see common/names.py), marked;
        `host_name(prefix)` for a node without a usable name."""
        base = ir_base(name)
        if base is None:
            return self.host_name(prefix)
        out = self.host_ir.take(base + suffix)
        while self.local_ir is not None and out in self.local_ir.taken:  # made while a kernel is written
            out = self.host_ir.take(base + suffix)
        return mark(out)

    def local_for(self, name: str | None, prefix: str = "t") -> str:
        """A fresh kernel-local name for a value of IR node `name` (`h`), unique in the kernel and
        among host names; `local(prefix)` for a node without a usable name."""
        base = ir_base(name)
        if base is None or self.local_ir is None:
            return self.local(prefix)
        return self.local_ir.take(base)

    def local(self, prefix: str = "t") -> str:
        """A fresh kernel-local name (`t0`, `i3`, ...), numbered per kernel."""
        assert prefix not in HOST_PREFIXES, prefix
        k = self.local_counter.get(prefix, 0)
        self.local_counter[prefix] = k + 1
        return f"{prefix}{k}"

    def dim(self, d: int | str) -> str:
        if isinstance(d, int):
            return str(d)
        if d not in self.dim_names:
            self.dim_names[d] = mark(f"d_{d}") if is_identifier(d) else self.host_name("d_")
            self.args.append(Arg(plain(self.dim_names[d]), "dim", d))
        return self.dim_names[d]

    def dims(self, node: Node) -> list[str]:
        return [self.dim(d) for d in node.type.shape]  # type: ignore[union-attr]

    @staticmethod
    def product(dims: list[str]) -> str:
        dims = [d for d in dims if d != "1"]
        return " * ".join(dims) if dims else "1"

    def count(self, c: sx.Count, prefix: str) -> str:
        """A trip count or start: an int literal, or a host argument evaluated per call."""
        if isinstance(c, int):
            return str(c)
        name = self.host_name(prefix)
        self.args.append(Arg(plain(name), "count", c))
        return name

    def lit(self, value: float, dtype: DType) -> str:
        """A typed literal: ints inline, floats as module-level constants (so f32 math stays f32)."""
        if dtype in (DType.i32, DType.i64):
            return str(int(value))
        text = float_text(float(value))
        key = (text, dtype)
        if key not in self.constants:
            self.constants[key] = f"c{len(self.constants)}"
        return self.constants[key]

    def fn(self, name: str, dtype: DType) -> str:
        """The device function for an op on `dtype`: a `math` function or a helper of kernels.HELPERS."""
        if name in ("exp", "log", "tanh", "erf"):
            return f"math.{name}"
        helper = f"{name}_{'f32' if dtype == DType.f32 else 'f64'}"
        self.helpers.add(helper)
        return helper

    def row_base(self, node: Node) -> str | None:
        """None: every kernel here indexes the whole batch (numba-cpu's row blocks offset theirs)."""
        return None

    def zero(self) -> str:
        return self.lit(0.0, self.dtype)

    # ------------------------------------------------------------ buffers

    def buffer(self, t: TensorType, prefix: str = "v", name: str | None = None) -> Ref:
        """A device array allocated once, before the first launch (`name`: a host name already made)."""
        name = name or self.host_name(prefix)
        dims = [self.dim(d) for d in t.shape]
        shape = f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"
        self.alloc.line(f"{name} = cuda.device_array({shape}, {NP_TYPE[t.dtype]})")
        self.arg_types[plain(name)] = (t.dtype.numpy.name, len(dims))
        return Ref(name, owned=True)

    # ------------------------------------------------------------ kernel bodies

    def line(self, text: str) -> None:
        assert self.kw is not None, "kernel code written outside a kernel"
        self.kw.line(text)

    def indent(self):
        assert self.kw is not None
        return self.kw.indent()

    def unravel(self, flat: str, dims: list[str]) -> Index:
        """Index variables for a C-order flat index over `dims` (a dim of 1 gets index 0)."""
        idx: list[str] = ["0"] * len(dims)
        live = [k for k, d in enumerate(dims) if d != "1"]
        rest = flat
        for pos, k in enumerate(reversed(live)):
            i = self.local("i")
            if pos == len(live) - 1:
                self.line(f"{i} = {rest}")
            else:
                self.line(f"{i} = {rest} % {dims[k]}")
                nxt = self.local("r")
                self.line(f"{nxt} = {rest} // {dims[k]}")
                rest = nxt
            idx[k] = i
        return tuple(idx)

    @contextmanager
    def grid_loop(self, dims: list[str]) -> Iterator[Index]:
        """A grid-stride loop over every index of `dims`: each thread takes every gridsize-th one."""
        e = self.local("e")
        self.line(f"for {e} in range(cuda.grid(1), {self.product(dims)}, cuda.gridsize(1)):")
        with self.indent():
            yield self.unravel(e, dims)

    def kernel(self, label: str, doc: str, body: Callable[[], str], owner: str | None = None) -> None:
        """Write a kernel whose body `body()` emits (it returns the launch configuration), and launch
        it; inside a persistent kernel, write the body there as a phase, then synchronise the grid
        (the block, in a one-block kernel)."""
        if self.phases:
            assert self.kw is not None
            with self.kw.owned_by(owner):
                self.kw.comment(f"phase: {doc}")
                body()
                if self.one_block:  # the whole grid is this block: a block barrier orders the phases
                    self.line("cuda.syncthreads()")
                    self.block_syncs += 1
                else:
                    self.line("grid.sync()")
                    self.syncs += 1
            return
        name, params = self.define(label, doc, body, owner)
        with self.host.owned_by(owner):
            self.host.line(f"{name}[{self.launch}]({', '.join(params)})")

    def define(
        self, label: str, doc: str, body: Callable[[], str], owner: str | None = None, local: frozenset = frozenset()
    ) -> tuple[str, list[str]]:
        """Write a kernel (body and docstring); returns its name and parameters (the host names it
        mentions, less `local`: names it defines itself; marked). `self.launch` is what `body` returned."""
        outer, outer_counter, outer_ir = self.kw, self.local_counter, self.local_ir
        self.kw, self.local_counter, self.local_ir = Writer(1), {}, Namespace(outer=self.host_ir)
        lines = self.kw
        try:
            with lines.owned_by(owner):
                self.launch = body()
        finally:
            self.kw, self.local_counter, self.local_ir = outer, outer_counter, outer_ir
        name = f"k{len(self.kernels)}_{label}"
        params = [p for p in host_names(lines) if p not in local]
        threads = self.cfg.tile**2 if self.launch.startswith("grid_gemm") else self.cfg.threads
        self.kernels.append(Kernel(name, doc, params, lines, owner, self.launch, threads))
        return name, params

    # ------------------------------------------------------------ reading values

    def read(self, node: Node, idx: Index) -> str:
        """A scalar expression for `node` at `idx` (a fused member is computed on its first read)."""
        blk = self.blk
        assert blk is not None
        if blk.group is not None and id(node) in blk.group.members:
            return self.member(node, idx)
        ref = blk.scope.get(node)
        if ref is not None:
            return ref.at(idx)
        index = VIEW_INDEX.get(node.op)
        if index is None:
            raise CudaBackendError(f"numba-cuda internal error: {node!r} is read before it is computed")
        return self.read(node.inputs[0].node, index(node, idx))

    def member(self, node: Node, idx: Index) -> str:
        blk = self.blk
        assert blk is not None
        key = (id(node), idx)
        if key not in blk.memo:
            rule = SCALARS[node.op]
            args = [self.read(u.node, operand_index(rule, node, k, idx)) for k, u in enumerate(node.inputs)]
            label = self.describe(node)
            t = self.local_for(node.name)
            assert self.kw is not None
            with self.kw.owned_by(label):
                self.line(f"{t} = {rule.expr(self, node, args, idx)}  # {label}")
            blk.memo[key] = t
        return blk.memo[key]

    def describe(self, node: Node) -> str:
        return describe(node, self.blk.names if self.blk else {})

    def stored(self, node: Node) -> Ref | None:
        """The array holding `node` when it has one of its own (not a view, not a scalar)."""
        ref = self.blk.scope.get(node) if self.blk else None
        return ref if ref is not None and not ref.scalar else None


def host_names(body: Writer) -> list[str]:
    """The host names a kernel body mentions (its marked names: kernel-local ones are not marked),
    in order of first mention."""
    seen: dict[str, None] = {}
    for _, text, _ in body.lines:
        for name in names_in(text):
            seen.setdefault(name, None)
    return list(seen)


def literal_source(text: str, dtype: DType) -> str:
    """The module-level definition of a float constant."""
    return f"{NP_TYPE[dtype]}({text})"


__all__ = ["Block", "Context", "Kernel", "host_names", "literal_source"]
