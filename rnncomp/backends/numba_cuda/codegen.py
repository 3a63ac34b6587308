"""Code generation: a final Program becomes a module of `@cuda.jit` kernels and a host function.

The host function `program(rt, ...)` allocates every buffer first (kernels cannot allocate), then
launches kernels in the order of the schedule: each block (the program's top level, or a loop
body) is cut into units by passes/fuse.py (the kernel program's units): a fused elementwise group is one kernel
over its shape, any other op one kernel of its own (a tiled GEMM for matmul and matmul_tn). A loop
runs as a host `for` over its iterations, launching its body's kernels per step, with the carried
values in two buffers per state that swap after each iteration; where it can, a persistent kernel
(persistent.py) runs all its steps in one launch instead, chosen at run time by `rt.persistent`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ir import LoopView, Node, Program
from ir.dtypes import DType, as_dtype
from ir.names import name_nodes
from ir.ops import axes_of
from passes.fuse import Group, count_uses, kind, plan_block
from passes.plan import covers_all_slots, only_loop_buffers

from ..common.names import mark, plain
from ..common.values import Arg, Generated, Ref, Scope
from ..common.writer import Writer, comment_text, safe_name
from . import kernels, persistent
from .context import Block, Context, literal_source
from .device import NOMINAL_GPU, DeviceConfig
from .errors import CudaBackendError
from .gemm import dot, tiled

FUNCTION = "program"
GEMMS = ("matmul", "matmul_tn")
GATHERS = ("stack", "concat")  # ops whose operands can be stored straight into their result
PERSISTENT_MODES = (None, True, False)


class Codegen:
    """Walks a Program and writes its kernels and host function into a Context."""

    def __init__(self, prog: Program, dtype: DType, cfg: DeviceConfig, mode: bool | None):
        self.ctx = Context(prog, dtype, cfg)
        self.mode = mode  # persistent kernels: True (always), False (never), None (where they fit)
        self.loop_results: dict[int, list[Ref]] = {}
        self.uses: dict[int, int] = {}

    # ------------------------------------------------------------ values

    def constant(self, node: Node) -> Ref:
        value = np.asarray(node.attrs["value"], dtype=np.float64)
        dt: DType = node.attrs["dtype"]
        if value.ndim == 0:
            return Ref(self.ctx.lit(float(value), dt), scalar=True)
        name = self.ctx.host_name("const")
        self.ctx.args.append(Arg(plain(name), "const", value.astype(dt.numpy)))
        self.ctx.arg_types[plain(name)] = (dt.numpy.name, value.ndim)
        return Ref(name)

    def array(self, node: Node) -> Ref:
        """An array holding `node` (possibly a slot of a stacked one); a view or scalar is copied out once."""
        ref = self.ctx.stored(node)
        if ref is None:
            ref = self.new_copy(node, "v")
            self.ctx.blk.scope.set(node, ref)  # type: ignore[union-attr]
        return ref

    def new_copy(self, node: Node, prefix: str, name: str | None = None) -> Ref:
        buf = self.ctx.buffer(node.type, prefix, name)  # type: ignore[arg-type]
        self.copy(buf, node)
        return buf

    def copy(self, dst: Ref, node: Node) -> None:
        """A kernel writing `node` (read through views) into `dst`."""
        ctx = self.ctx
        label = ctx.describe(node)
        dims = ctx.dims(node)
        ctx.kernel(
            "copy", f"copy {label}", lambda: kernels.copy(ctx, dst, dims, lambda idx: ctx.read(node, idx)), label
        )

    def own(self, node: Node, prefix: str, only_reader: bool, name: str | None = None) -> Ref:
        """A whole buffer of `node` that may be overwritten or handed out: its own buffer when
        `only_reader` (nothing else reads it), else a copy (`name`: its host name, already made)."""
        ctx = self.ctx
        ref = ctx.stored(node)
        if ref is not None and ref.owned and not ref.prefix and only_reader:
            name = name or ctx.host_name(prefix)
            ctx.host.line(f"{name} = {ref.var}  # taken over: nothing else reads it")
            ctx.arg_types[plain(name)] = ctx.arg_types[plain(ref.var)]
            return Ref(name, owned=True)
        return self.new_copy(node, prefix, name)

    def take(self, node: Node, prefix: str, name: str | None = None) -> Ref:
        """A buffer a loop may overwrite: the operand's own if nothing else reads it, else a copy."""
        return self.own(node, prefix, self.uses.get(id(node), 0) == 1, name)

    def stacked(self, v: LoopView, node: Node) -> Ref:
        """A loop's stacked buffer: as `take`, but one of zeros that the loop writes whole is not
        filled first (passes/plan.py)."""
        if node.op == "zeros" and covers_all_slots(v, node):
            return self.ctx.buffer(node.type)  # type: ignore[arg-type]
        return self.take(node, "v")

    # ------------------------------------------------------------ blocks

    def block(self, nodes: list[Node], scope: Scope, results: list[Node], targets: dict[int, list[Ref]]) -> set[int]:
        """Emit a block's units in order. `targets`: places a value must (also) be stored; the first
        is its storage. Returns the ids of nodes whose targets were all written."""
        ctx = self.ctx
        for n in nodes:
            if n.op == "constant" and scope.get(n) is None:
                scope.set(n, self.constant(n))
        bound = {id(n) for n in nodes if scope.get(n) is not None}
        plan = plan_block(nodes, bound, results)
        outer, ctx.blk = ctx.blk, Block(scope, name_nodes(nodes))
        outer_uses, self.uses = self.uses, count_uses(nodes, results)
        try:
            gathers = self.gather_targets(nodes, bound, targets)
            written: set[int] = set()
            for unit in plan.units:
                if unit.group is not None:
                    self.group(unit.group, targets)
                    written |= {id(r) for r in unit.group.roots}
                    continue
                n = unit.node
                assert n is not None
                if n.op == "zeros" and n not in results and only_loop_buffers(n, plan.users[id(n)]):
                    scope.set(n, Ref(ctx.lit(0.0, n.type.dtype), scalar=True, const=True))  # type: ignore[union-attr]
                elif n.op == "loop":
                    self.loop(n)
                elif n.op == "item":
                    scope.set(n, self.loop_results[id(n.inputs[0].node)][n.attrs["index"]])
                elif n.op in GATHERS:
                    self.gather(n, targets[id(n)], gathers[id(n)])
                    written.add(id(n))
                else:
                    self.kernel_unit(n, targets.get(id(n), []))
                    written.add(id(n))
            return written
        finally:
            ctx.blk, self.uses = outer, outer_uses

    def gather_targets(self, nodes: list[Node], bound: set[int], targets: dict[int, list[Ref]]) -> dict[int, set[int]]:
        """Stacks and concatenations: their storage is chosen first, and operands computed in this
        block store straight into their part of it. Returns, per node, the operands still to copy."""
        pending: dict[int, set[int]] = {}
        for n in nodes:
            if n.op not in GATHERS or id(n) in bound:
                continue
            dest = targets.setdefault(id(n), [])
            if not dest:
                dest.append(self.ctx.buffer(n.type))  # type: ignore[arg-type]
            pending[id(n)] = set()
            for k, (u, part) in enumerate(zip(n.inputs, parts(n, dest[0]))):
                if id(u.node) not in bound and kind(u.node) in ("scalar", "kernel") and u.node.op not in GATHERS:
                    targets.setdefault(id(u.node), []).append(part)
                else:
                    pending[id(n)].add(k)
        return pending

    def gather(self, n: Node, dest: list[Ref], copies: set[int]) -> None:
        """The rest of a stack or concatenation: operands that were not stored in place, then extra targets."""
        for k, (u, part) in enumerate(zip(n.inputs, parts(n, dest[0]))):
            if k in copies:
                self.copy(part, u.node)
        self.ctx.blk.scope.set(n, dest[0])  # type: ignore[union-attr]
        for extra in dest[1:]:
            self.copy(extra, n)

    def group(self, g: Group, targets: dict[int, list[Ref]]) -> None:
        """A fused elementwise group as one kernel over its shape."""
        ctx = self.ctx
        stores = self.group_stores(g, targets)
        names = ", ".join(safe_name(ctx.blk.names.get(id(r), "%?")) for r in g.roots)  # type: ignore[union-attr]
        shape = ", ".join(map(str, g.shape))
        doc = f"fused: {len(g.members)} elementwise node(s) over [{shape}], storing {names}"
        ctx.kernel("fused", doc, lambda: self.group_body(g, stores))

    def group_stores(self, g: Group, targets: dict[int, list[Ref]]) -> list[tuple[Node, list[Ref]]]:
        """Where each root of a group is stored (its targets, else a new buffer); records the first."""
        stores = []
        for r in g.roots:
            refs = list(targets.get(id(r), [])) or [self.ctx.buffer(r.type)]  # type: ignore[arg-type]
            self.ctx.blk.scope.set(r, refs[0])  # type: ignore[union-attr]
            stores.append((r, refs))
        return stores

    def group_body(self, g: Group, stores: list[tuple[Node, list[Ref]]]) -> str:
        """The grid-stride loop of a fused group: members computed as scalars, roots stored."""
        ctx = self.ctx
        blk = ctx.blk
        assert blk is not None
        dims = [ctx.dim(d) for d in g.shape]
        blk.group, blk.memo = g, {}
        try:
            with ctx.grid_loop(dims) as idx:
                values = [ctx.member(r, idx) for r in g.roots]
                for (r, refs), v in zip(stores, values):
                    for ref in refs:
                        ctx.line(f"{ref.at(idx)} = {v}  # store {safe_name(blk.names.get(id(r), '%?'))}")
        finally:
            blk.group, blk.memo = None, {}
        return kernels.grid_1d(ctx, dims)

    def kernel_unit(self, n: Node, targets: list[Ref]) -> None:
        """One op as a kernel of its own; its first target (or a new buffer) holds the result."""
        ctx = self.ctx
        label = ctx.describe(n)
        out = targets[0] if targets else ctx.buffer(n.type)  # type: ignore[arg-type]
        operands = [u.node for u in n.inputs]
        if n.op in GEMMS and ctx.phases:
            chip = ctx.on_chip.get(id(operands[1])) if n.op == "matmul" else None
            where = f"weights on chip in {chip.var}" if chip else "one thread per output"
            ctx.kernel("gemm", f"{label}: {where}", lambda: dot(ctx, n, out, operands, chip), label)
        elif n.op in GEMMS:
            ctx.kernel("gemm", f"{label}: tiled GEMM", lambda: tiled(ctx, n, out, operands), label)
        else:
            emit = kernels.emitter(n)
            ctx.kernel(n.op, label, lambda: emit(ctx, n, out, operands), label)
        ctx.blk.scope.set(n, out)  # type: ignore[union-attr]
        for extra in targets[1:]:
            self.copy(extra, n)

    # ------------------------------------------------------------ loops

    def loop(self, node: Node) -> None:
        """A loop: its persistent kernel where one can be made (tried first at run time), else, and as
        the fallback, a host loop launching the body's kernels per step."""
        ctx = self.ctx
        v = LoopView(node)
        label = ctx.describe(node)
        host = ctx.host
        with host.owned_by(label):
            direction = "reverse" if v.reverse else "forward"
            host.comment(f"{label} [{direction}: {v.length} iterations of {v.stride} step(s) from step {v.start}]")
            n_iter, start = ctx.count(v.length, "n"), ctx.count(v.start, "start")
            states = list(zip(v.carry_in, v.carry_params))  # each state's buffers named after it: h_state, h_next
            cs = [self.take(u.node, "cs", ctx.host_name_for(p.name, "cs", "_state")) for u, p in states]
            ns = [ctx.buffer(p.type, "ns", ctx.host_name_for(p.name, "ns", "_next")) for _, p in states]  # type: ignore[arg-type]
            bufs = [self.stacked(v, u.node) for u in v.bufs]
            xs = [self.array(u.node) for u in v.xs]
            consts = [ctx.blk.scope.get(u.node) or self.array(u.node) for u in v.consts]  # type: ignore[union-attr]
        loop = Loop(v, label, n_iter, start, cs, ns, bufs, xs, consts)
        launch = persistent.emit(self, loop) if self.mode is not False else None
        if launch is not None:
            host.line(f"if not rt.persistent({launch}):")
            with host.indent():
                self.per_step(loop)
        else:
            self.per_step(loop)
        self.loop_results[id(node)] = cs + bufs

    def per_step(self, loop: Loop) -> None:
        """A host loop over the iterations, launching the body's kernels for each; the carried states
        live in cs/ns buffer pairs that swap after every iteration."""
        ctx = self.ctx
        it = ctx.host_name("it")
        base = ctx.host_name("b")
        ctx.host.line(f"for {it} in range({loop.n_iter}):")
        with ctx.host.indent():
            ctx.host.line(f"{base} = {loop.base(it)}")
            self.iteration(loop, base, {i: loop.ns[i] for i in self.computed_carries(loop.view)})
            pairs = [(c.var, n.var) for c, n in zip(loop.cs, loop.ns)]
            if pairs:
                lhs = ", ".join([c for c, _ in pairs] + [n for _, n in pairs])
                rhs = ", ".join([n for _, n in pairs] + [c for c, _ in pairs])
                ctx.host.line(f"{lhs} = {rhs}  # the new states become the current ones")

    def iteration(self, loop: Loop, base: str, carry_to: dict[int, Ref]) -> None:
        """One iteration's body from step `base`: the new value of carry i is written to carry_to[i]
        by the kernel computing it, or else copied into ns[i] at the end; stacked results go to
        their slots."""
        ctx, v = self.ctx, loop.view
        scope, slots = loop.scope(base)
        targets: dict[int, list[Ref]] = {id(v.carry_out[i]): [ref] for i, ref in carry_to.items()}
        for r, slot in slots:
            targets.setdefault(id(r), []).append(slot)
        nodes = v.body.nodes()
        written = self.block(nodes, scope, list(v.body.results), targets)
        outer, ctx.blk = ctx.blk, Block(scope, name_nodes(nodes))
        try:
            for r, slot in slots:
                if id(r) not in written:
                    self.copy(slot, r)
            for i, r in enumerate(v.carry_out):
                if i not in carry_to:
                    self.copy(loop.ns[i], r)
        finally:
            ctx.blk = outer

    @staticmethod
    def computed_carries(v: LoopView) -> set[int]:
        """Carries whose new value a body kernel can write straight into its buffer: computed in
        the body (not a param, constant or view) and the new value of no other carry."""
        params = {id(p) for p in v.body.params}
        out = set()
        for i, r in enumerate(v.carry_out):
            if id(r) in params or r.op == "constant" or sum(x is r for x in v.carry_out) != 1:
                continue
            if kind(r) in ("scalar", "kernel"):
                out.add(i)
        return out


@dataclass
class Loop:
    """A loop being emitted: its view, label, trip count and the host refs of its operands."""

    view: LoopView
    label: str
    n_iter: str
    start: str
    cs: list[Ref]  # current carried states
    ns: list[Ref]  # next carried states
    bufs: list[Ref]
    xs: list[Ref]
    consts: list[Ref]

    def base(self, it: str) -> str:
        """The first step of iteration `it`."""
        v = self.view
        order = f"({self.n_iter} - 1 - {it})" if v.reverse else it
        step = f"{order} * {v.stride}" if v.stride > 1 else order
        return step if self.start == "0" else f"{self.start} + {step}"

    def scope(self, base: str) -> tuple[Scope, list[tuple[Node, Ref]]]:
        """The body's params bound for an iteration starting at step `base`; and its stacked results'
        slots (result node, buf[step])."""
        v = self.view
        step = [base if j == 0 else f"({base} + {j})" for j in range(v.stride)]
        scope = Scope()
        for j, p in enumerate(v.t_params):
            scope.set(p, Ref(step[j], scalar=True))
        for p, ref in zip(v.carry_params, self.cs):
            scope.set(p, ref)
        for ps, ref in zip(v.x_params, self.xs):
            for j, p in enumerate(ps):
                scope.set(p, ref.slot(step[j]))
        for p, ref in zip(v.const_params, self.consts):
            scope.set(p, ref)
        slots = [(r, buf.slot(step[j])) for rs, buf in zip(v.y_results, self.bufs) for j, r in enumerate(rs)]
        return scope, slots


def parts(n: Node, dest: Ref) -> list[Ref]:
    """Where each operand of a stack or concatenation lies in its result `dest`."""
    if n.op == "stack":
        return [dest.slot(str(k)) for k in range(len(n.inputs))]
    (axis,), offset, out = axes_of(n), 0, []
    for u in n.inputs:
        width = u.node.type.shape[axis]  # type: ignore[union-attr]
        out.append(dest.part(axis, offset, offset + width))
        offset += width
    return out


# ---------------------------------------------------------------- the module


def generate(prog: Program, dtype: DType, cfg: DeviceConfig = NOMINAL_GPU, mode: bool | None = None) -> Generated:
    """Generate the module for `prog` computed in `dtype`, for a device like `cfg`."""
    return generate_with_context(prog, dtype, cfg, mode)[0]


def generate_with_context(
    prog: Program, dtype: DType, cfg: DeviceConfig = NOMINAL_GPU, mode: bool | None = None
) -> tuple[Generated, Context]:
    """`generate`, and the context that wrote it (its kernels, their parameters' types: ptx.py compiles them)."""
    if mode not in PERSISTENT_MODES:
        raise CudaBackendError(f"backend option 'persistent': expected True, False or None (auto), got {mode!r}")
    cg = Codegen(prog, dtype, cfg, mode)
    ctx = cg.ctx
    scope = Scope()
    taken: set[str] = set()
    for n in prog.inputs:
        name = input_name(n.name, taken)  # type: ignore[arg-type]
        ctx.args.append(Arg(name, "input", n.name))
        ctx.arg_types[name] = (n.type.dtype.numpy.name, len(n.type.shape))  # type: ignore[union-attr]
        scope.set(n, Ref(mark(name)))
    results = list(prog.outputs.values())
    cg.block(prog.nodes(), scope, results, {})
    ctx.blk = Block(scope, name_nodes(prog.nodes()))
    cg.uses = count_uses([], results)
    outs = [cg.own(n, "out", cg.uses.get(id(n), 0) == 1).var for n in results]
    ctx.host.line(f"return ({''.join(o + ', ' for o in outs)})")
    return assemble(ctx), ctx


def input_name(name: str, taken: set[str]) -> str:
    """`in_` and the input's name with every character outside [A-Za-z0-9_] replaced: an allowlist."""
    base = "in_" + "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name)
    out, k = base, 1
    while out in taken:
        out, k = f"{base}_{k}", k + 1
    taken.add(out)
    return out


def docstring(text: str) -> str:
    """Text that stays inside a triple-quoted docstring: printable ASCII, quotes and backslashes escaped."""
    return comment_text(text).replace("\\", "\\\\").replace('"', '\\"')


def assemble(ctx: Context) -> Generated:
    prog, cfg = ctx.prog, ctx.cfg
    m = Writer(0)
    m.comment(f"Generated by rnncomp's numba-cuda backend: program {safe_name(prog.name)}, {ctx.dtype}.")
    m.comment("Kernels first, each naming the IR nodes it computes; then the host function `program`,")
    m.comment("which allocates every buffer and launches the kernels in order. A cache entry: do not edit.")
    for text in ("", "import math", "", "import numpy as np", "from numba import cuda, float32, float64", ""):
        m.line(text)
    m.line(f"THREADS = {cfg.threads}  # threads per block of a grid-stride kernel")
    m.line(f"MAX_BLOCKS = {cfg.max_blocks}  # blocks of a grid-stride kernel at most; it strides over the rest")
    m.line(f"TILE = {cfg.tile}  # a GEMM block computes a TILE x TILE tile of the output")
    m.line(f"PERSISTENT_THREADS = {cfg.persistent_threads}  # threads per block of a persistent kernel")
    m.line(f"BLOCK_THREADS = {cfg.block_threads}  # threads of a one-block persistent kernel")
    for (text, dt), name in ctx.constants.items():
        m.line(f"{name} = {literal_source(text, dt)}")
    for text in _LAUNCH_HELPERS.splitlines():
        m.line(text)
    for h in sorted(ctx.helpers):
        m.line("")
        m.line("")
        for text in kernels.helper(h).strip("\n").splitlines():
            m.line(text)
    for k in ctx.kernels:
        m.line("")
        m.line("")
        m.line("@cuda.jit(cache=True)")
        m.line(f"def {k.name}({', '.join(map(plain, k.params))}):")
        with m.indent():
            m.line(f'"""{docstring(k.doc)}"""')
        m.extend(k.body)
    m.line("")
    m.line("")
    args = ["rt"] + [a.name for a in ctx.args]
    m.line(f"def {FUNCTION}({', '.join(args)}):")
    with m.indent():
        m.line('"""The whole program on the device: allocate, then launch; `rt` is the runtime (runner.py)."""')
        for a in ctx.args:
            if a.kind == "input":
                m.comment(f"{a.name}: input {safe_name(a.key)} : {prog.input(a.key).type}")
            elif a.kind == "dim":
                m.comment(f"{a.name}: dim {safe_name(a.key)}")
            elif a.kind == "count":
                m.comment(f"{a.name}: loop count {a.key}")
            else:
                m.comment(f"{a.name}: constant {a.key.dtype}{list(a.key.shape)}")
        m.comment("returns: " + ", ".join(safe_name(k) for k in prog.outputs))
    m.extend(ctx.alloc)
    m.extend(ctx.host)
    lines, owners = m.render()
    return Generated("\n".join(lines) + "\n", ctx.args, list(prog.outputs), owners)


_LAUNCH_HELPERS = '''

def grid_1d(n):
    """(blocks, threads) of a grid-stride kernel over n items."""
    return max(1, min(MAX_BLOCKS, (n + THREADS - 1) // THREADS)), THREADS


def grid_gemm(m, n):
    """(blocks, threads) of a tiled GEMM with an m x n output."""
    return (max(1, (n + TILE - 1) // TILE), max(1, (m + TILE - 1) // TILE)), (TILE, TILE)'''


def generate_source(prog: Program, dtype: Any, cfg: DeviceConfig = NOMINAL_GPU, mode: bool | None = None) -> str:
    """The generated module's text for `prog` (what `rnncomp dump --stage numba-cuda` prints)."""
    return generate(prog, as_dtype(dtype), cfg, mode).source


__all__ = ["FUNCTION", "Generated", "generate", "generate_source"]
