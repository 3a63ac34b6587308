"""The `unroll` pass: a cyclic Cell becomes an acyclic Program for a length T.

Modes: "full" (T copies, straight-line; needs a concrete T), an int k >= 2 (a loop whose body
holds k copies, then a loop of one step for the T mod k remainder), "loop" (a body of one step).
A static (one value per batch row, the same at every step) is a program input and a loop invariant,
as a param is. Every recurrent source (a state, or a sequence input read with a delay) carries its last D values,
D being the largest delay it is read at; `masked=True` adds a `lengths` input and applies the
copy-through rule of DESIGN.md at every step; `reverse=True` runs the steps from T-1 down to 0.
A cell with dropout masks gets a `seed` input (ir/mask_ops.py): each step's copy of a `dropout_mask`
is `philox_mask(t, seed)`, its value a function of the step and the seed words alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ir import Cell, Node, PassError, Program, RnncompError, TensorType, Use
from ir import symexpr as sx
from ir.dtypes import DType
from ir.limits import check_unroll_steps
from ir.mask_ops import SEED, SEED_WORDS
from ir.program import input_node, make_loop
from ir.shapes import is_identifier

from .registry import Analyses, IRKind, Pass, register_pass
from .roles import trace

LENGTHS = "lengths"
LENGTHS_LO = "lengths_lo"  # truncated BPTT: steps before it are inactive too


@dataclass
class _Plan:
    """What unrolling needs to know about a cell, computed once."""

    cell: Cell
    order: list[Node]  # compute nodes in evaluation order
    recurrent: list[Node]  # states' defining nodes and delayed seqs
    depth: dict[int, int]  # id(recurrent source) -> largest delay it is read at
    batch: object = None
    names: dict[int, str] = field(default_factory=dict)  # id(recurrent source) -> its name
    traces: list[str] = field(default_factory=list)  # states whose carried value is stacked per step
    unbatched: str | None = None  # why lengths cannot apply, if they cannot
    raw: set[str] = field(default_factory=set)  # outputs not zeroed past a row's length

    def out_types(self) -> dict[str, TensorType]:
        """Per-step results: the cell's outputs, then `trace@s` for each traced state."""
        out = {k: n.type for k, n in self.cell.outputs.items()}
        out.update({trace(s): self.cell.states[s].type for s in self.traces})
        return out  # type: ignore[return-value]


def _plan(cell: Cell, traces=()) -> _Plan:
    nodes = cell.nodes()
    sources = {id(n) for n in cell.inputs}
    order = [n for n in nodes if id(n) not in sources]
    depth: dict[int, int] = {}
    for n in order:
        for u in n.inputs:
            if u.delay:
                depth[id(u.node)] = max(depth.get(id(u.node), 0), u.delay)
    names = {id(n): k for k, n in cell.states.items()}
    names.update({id(s): s.name for s in cell.seqs})  # type: ignore[misc]
    rec = [n for n in list(cell.states.values()) + cell.seqs if id(n) in depth]
    for s in cell.states.values():  # a state nobody reads back still has a carried final value
        if id(s) not in depth:
            depth[id(s)] = 1
            rec.append(s)
    lead = [n.type.shape[0] for n in cell.seqs + list(cell.states.values()) if n.type.shape]  # type: ignore[union-attr]
    batch = lead[0] if lead else None
    return _Plan(cell, order, rec, depth, batch, names, list(traces), _unbatched(cell, batch))


def has_masks(cell: Cell) -> bool:
    """Whether the cell draws dropout / zoneout masks (and so takes a `seed` input once unrolled)."""
    return any(n.op == "dropout_mask" for n in cell.nodes())


def _unbatched(cell: Cell, batch) -> str | None:
    """Copy-through by lengths works per batch row: why it cannot here (a state or output not led by it)."""
    for kind, items in (("state", cell.states), ("output", cell.outputs)):
        for name, n in items.items():
            if batch is not None and (not n.type.shape or n.type.shape[0] != batch):  # type: ignore[union-attr]
                return f"{kind} {name!r} has type {n.type}, whose leading dim is not the batch {batch!r}"
    return None


class _Steps:
    """Emits copies of the cell, one per step, threading the carried history of each recurrent source."""

    def __init__(
        self, plan: _Plan, masked: bool, lengths: Node | None, lo: Node | None = None, seed: Node | None = None
    ):
        self.p, self.masked, self.lengths, self.lo, self.seed = plan, masked, lengths, lo, seed
        self._zero: dict[DType, Node] = {}

    def select(self, t: Node, active: Node, inactive: Node, name: str | None = None) -> Node:
        """`active` for rows where lo <= t < lengths, else `inactive` (copy-through / zero)."""
        out = Node("select_active", [Use(t), Use(self.lengths), Use(active), Use(inactive)], {}, active.type, name)  # type: ignore[arg-type]
        if self.lo is not None:
            out.name = None
            out = Node("select_active", [Use(t), Use(self.lo), Use(inactive), Use(out)], {}, active.type, name)
        return out

    def zero(self, dt: DType) -> Node:
        if dt not in self._zero:
            self._zero[dt] = Node("constant", (), {"value": 0.0, "dtype": dt}, TensorType(dt, ()))
        return self._zero[dt]

    def copy(
        self, t: Node, label: str, seq_val, param_val, hist: dict[int, list[Node]]
    ) -> tuple[dict[int, Node], dict[str, Node]]:
        """One step: returns the new history and the step's (masked) per-step outputs."""
        p = self.p
        vals: dict[int, Node] = {}

        def value(n: Node) -> Node:
            if id(n) in vals:
                return vals[id(n)]
            if n.op == "seq":
                return seq_val(n)
            if n.op in ("param", "static"):  # a static is a loop invariant too, one value per row
                return param_val(n)
            raise PassError(f"unroll: node {n!r} has no value at this step")

        for n in p.order:
            ins = [Use(value(u.node)) if u.delay == 0 else Use(hist[id(u.node)][u.delay - 1]) for u in n.inputs]
            name = f"{n.name}@{label}" if n.name and not (self.masked and id(n) in hist) else None
            if n.op == "dropout_mask":  # this step's mask: a function of the step and the seed words
                vals[id(n)] = Node("philox_mask", [Use(t), Use(self.seed)], n.attrs, n.type, name)  # type: ignore[arg-type]
                continue
            vals[id(n)] = Node(n.op, ins, n.attrs, n.type, name)
        new_hist = {}
        for r in p.recurrent:
            cur = value(r)
            if self.masked:
                cur = self.select(t, cur, hist[id(r)][0], f"{p.names[id(r)]}@{label}" if r.op != "seq" else None)
            new_hist[id(r)] = [cur] + hist[id(r)][:-1]
        outs = {}
        for k, n in p.cell.outputs.items():
            y = value(n)
            if self.masked and k not in p.raw:
                y = self.select(t, y, self.zero(y.type.dtype))  # type: ignore[union-attr]
            outs[k] = y
        for s in p.traces:
            outs[trace(s)] = new_hist[id(p.cell.states[s])][0]
        return new_hist, outs


def unroll(
    cell: Cell,
    length: int | str,
    mode: str | int = "loop",
    reverse: bool = False,
    masked: bool = False,
    traces=(),
    window: bool = False,
    raw=(),
) -> Program:
    """Unroll `cell` over `length` steps (an int, or a symbol such as "T") in the given mode.

    `traces` names states whose value at every step is also returned, stacked, as `trace@<state>`
    (under `masked`, the carried copy-through value): the grad pass saves states this way. Outputs
    named in `raw` are not zeroed past a row's length (residuals: the backward ignores those steps).
    """
    plan = _plan(cell, traces)
    plan.raw = set(raw)
    T = sx.count(length)
    if isinstance(T, sx.Sym) and not (len(T.symbols) == 1 and T.text in T.symbols):
        raise PassError(f"unroll: a symbolic length must be a plain symbol such as 'T', got {length!r}")
    dim_T = T if isinstance(T, int) else T.text
    inputs, roles = [], {}
    seq_in, param_in, init_in = {}, {}, {}
    for s in cell.seqs:
        seq_in[id(s)] = input_node(s.name, s.type.with_shape((dim_T,) + s.type.shape))  # type: ignore[union-attr,operator]
        roles[s.name] = "seq"
    for q in cell.params + cell.statics:
        param_in[id(q)] = input_node(q.name, q.type)  # type: ignore[arg-type]
        roles[q.name] = q.op  # "param" or "static"
    for name, node in cell.states.items():
        init_in[id(node)] = input_node(name, cell.state_types.get(name, node.type))  # type: ignore[arg-type]
        roles[name] = "init"
    inputs = list(seq_in.values()) + list(param_in.values()) + list(init_in.values())
    lengths = None
    if masked:
        if plan.batch is None:
            raise PassError(
                f"unroll: cell {cell.name!r} has no batch dim (no seq or state has a leading dim), "
                "so lengths do not apply"
            )
        if plan.unbatched:
            raise PassError(f"unroll: lengths apply per batch row, but {plan.unbatched}")
        lengths = input_node(LENGTHS, TensorType(DType.i64, (plan.batch,)))  # type: ignore[arg-type]
        inputs.append(lengths)
        roles[LENGTHS] = "lengths"
    lo = None
    if window:
        lo = input_node(LENGTHS_LO, TensorType(DType.i64, (plan.batch,)))  # type: ignore[arg-type]
        inputs.append(lo)
        roles[LENGTHS_LO] = "lengths"
    seed = None
    if has_masks(cell):
        seed = input_node(SEED, TensorType(DType.i64, (SEED_WORDS,)))
        inputs.append(seed)
        roles[SEED] = "seed"
    steps = _Steps(plan, masked, lengths, lo, seed)

    def first_hist() -> dict[int, list[Node]]:
        h = {}
        for r in plan.recurrent:
            if r.op == "seq":
                z = Node("zeros", (), {"shape": r.type.shape, "dtype": r.type.dtype}, r.type)  # type: ignore[union-attr]
                h[id(r)] = [z] * plan.depth[id(r)]
            else:
                h[id(r)] = [init_in[id(r)]] * plan.depth[id(r)]
        return h

    if mode == "full":
        if not isinstance(T, int):
            raise PassError("unroll: mode 'full' needs a concrete length (compile specialises a symbolic T per call)")
        _bounded(T, "a full unroll")
        outputs = _full(plan, steps, T, reverse, seq_in, param_in, first_hist())
    else:
        k = 1 if mode == "loop" else mode
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise PassError(f"unroll: mode must be 'full', 'loop' or an int k >= 1, got {mode!r}")
        _bounded(k, "an unroll factor")
        outputs = _looped(plan, T, dim_T, k, reverse, seq_in, param_in, lengths, lo, first_hist(), seed)
    return Program(f"{cell.name}", inputs, roles, outputs)


def _bounded(steps: int, what: str) -> None:
    try:
        check_unroll_steps(steps, f"unroll: {what}")
    except RnncompError as e:
        raise PassError(str(e)) from None


def _full(plan, steps: _Steps, T: int, reverse: bool, seq_in, param_in, hist) -> dict[str, Node]:
    types = plan.out_types()
    per_step: dict[str, list[Node]] = {k: [None] * T for k in types}  # type: ignore[list-item]
    sliced: dict[tuple[int, int], Node] = {}

    for t in range(T - 1, -1, -1) if reverse else range(T):

        def seq_val(s: Node, t=t) -> Node:
            if (id(s), t) not in sliced:
                sliced[(id(s), t)] = Node("step", [Use(seq_in[id(s)])], {"index": t}, s.type, f"{s.name}@{t}")
            return sliced[(id(s), t)]

        tn = Node("constant", (), {"value": float(t), "dtype": DType.i64}, TensorType(DType.i64, ()))
        hist, outs = steps.copy(tn, str(t), seq_val, lambda q: param_in[id(q)], hist)
        for k, y in outs.items():
            per_step[k][t] = y
    result: dict[str, Node] = {}
    for k, ys in per_step.items():
        t = types[k]
        if T:
            result[k] = Node("stack", [Use(y) for y in ys], {}, t.with_shape((T,) + t.shape))
        else:
            result[k] = Node("zeros", (), {"shape": (0,) + t.shape, "dtype": t.dtype}, t.with_shape((0,) + t.shape))
    for name, node in plan.cell.states.items():
        result[name] = hist[id(node)][0]
    return result


def _looped(plan, T, dim_T, k: int, reverse: bool, seq_in, param_in, lengths, lo, hist, seed=None) -> dict[str, Node]:
    cell = plan.cell
    # Carried values (flattened history), stacked inputs, buffers and invariants of every loop.
    carry = [(r, d) for r in plan.recurrent for d in range(plan.depth[id(r)])]
    carry_vals = [hist[id(r)][d] for r, d in carry]
    xs = [
        s
        for s in cell.seqs
        if any(u.delay == 0 and u.node is s for n in plan.order for u in n.inputs)
        or id(s) in plan.depth
        or any(o is s for o in cell.outputs.values())  # a seq that is itself an output
    ]
    bufs = []
    out_types = plan.out_types()
    for t1 in out_types.values():
        t = t1.with_shape((dim_T,) + t1.shape)
        bufs.append(Node("zeros", (), {"shape": t.shape, "dtype": t.dtype}, t))
    consts = [param_in[id(q)] for q in cell.params + cell.statics] + [n for n in (lengths, lo, seed) if n is not None]

    q, r = sx.floordiv(T, k), sx.mod(T, k)
    if k == 1:
        pieces = [(1, T, 0)]
    elif reverse:  # the remainder is the lowest steps, processed last
        pieces = [(k, q, r), (1, r, 0)]
    else:
        pieces = [(k, q, 0), (1, r, sx.mul(q, k))]
    for stride, count, start in pieces:
        if count == 0:
            continue
        t_params, c_groups, x_groups, y_groups, k_groups = _body(
            plan, stride, carry, xs, consts, lengths is not None, reverse
        )
        loop = make_loop(
            t_params,
            [(v, p, r) for v, (p, r) in zip(carry_vals, c_groups)],
            [(seq_in[id(s)], ps) for s, ps in zip(xs, x_groups)],
            [(b, ys) for b, ys in zip(bufs, y_groups)],
            [(c, p) for c, p in zip(consts, k_groups)],
            length=count,
            start=start,
            stride=stride,
            reverse=reverse,
        )
        types = loop.type.items  # type: ignore[union-attr]
        parts = [Node("item", [Use(loop)], {"index": i}, t) for i, t in enumerate(types)]
        carry_vals, bufs = parts[: len(carry)], parts[len(carry) :]
    result = dict(zip(out_types, bufs))
    first = {id(r): i for i, (r, d) in enumerate(carry) if d == 0}  # a dict: a delay d makes d carries
    for name, node in cell.states.items():
        result[name] = carry_vals[first[id(node)]]
    return result


def _body(plan, k: int, carry, xs, consts, masked: bool, reverse: bool) -> tuple[list, list, list, list, list]:
    """The loop body: k copies of the cell over carried history, x slices and invariants; as its
    step params and the groups of make_loop: (param, new value) per carry, params per x, results per
    stacked output, a param per invariant."""
    t_params = [input_node(f"t@{j}", TensorType(DType.i64, ())) for j in range(k)]
    c_params = [input_node(f"{plan.names[id(r)]}@t-{d + 1}", r.type) for r, d in carry]
    x_params = {(id(s), j): input_node(f"{s.name}@{j}", s.type) for s in xs for j in range(k)}
    k_params = [input_node(c.name, c.type) for c in consts]
    by_name = {c.name: p for c, p in zip(consts, k_params)}
    steps = _Steps(plan, masked, by_name.get(LENGTHS), by_name.get(LENGTHS_LO), by_name.get(SEED))
    hist: dict[int, list[Node]] = {}
    for (r, _), prm in zip(carry, c_params):
        hist.setdefault(id(r), []).append(prm)
    ys: dict[str, list[Node]] = {name: [None] * k for name in plan.out_types()}  # type: ignore[list-item]
    order = range(k - 1, -1, -1) if reverse else range(k)
    for j in order:
        hist, outs = steps.copy(
            t_params[j], str(j), lambda s, j=j: x_params[(id(s), j)], lambda q: by_name[q.name], hist
        )
        for name, y in outs.items():
            ys[name][j] = y
    c_groups = [(p, hist[id(r)][d]) for p, (r, d) in zip(c_params, carry)]
    x_groups = [[x_params[(id(s), j)] for j in range(k)] for s in xs]
    return t_params, c_groups, x_groups, list(ys.values()), k_params


def check_unroll_options(p: Any) -> None:
    """The options every unrolling pass shares: a length (int >= 0 or a symbol) and a mode."""
    length, mode = p.length, p.mode
    if isinstance(length, int) and length < 0 or isinstance(length, str) and not is_identifier(length):
        raise PassError(f"pass {p.name!r}: option 'length' must be an int >= 0 or a symbol such as T, got {length!r}")
    if mode not in ("full", "loop") and not (isinstance(mode, int) and mode >= 1):
        raise PassError(f"pass {p.name!r}: option 'mode' must be 'full', 'loop' or an int k >= 1, got {mode!r}")


@dataclass(frozen=True)
class UnrollOptions(Pass):
    """The options of every pass that unrolls a cell into a Program (`unroll` and the training passes)."""

    takes, gives = IRKind.cell, IRKind.program
    length: int | str = "T"
    mode: int | str = "loop"
    reverse: bool = False
    masked: bool = False

    def check(self) -> None:
        check_unroll_options(self)

    @property
    def loop_mode(self) -> int | str:
        """`mode` as `unroll` takes it: 1 step per iteration is the loop."""
        return "loop" if self.mode == 1 else self.mode


@register_pass
@dataclass(frozen=True)
class Unroll(UnrollOptions):
    """Cell -> Program: the cell unrolled over `length` steps (see `unroll`)."""

    name = "unroll"

    def apply(self, cell: Cell, analyses: Analyses) -> Program:
        return unroll(cell, self.length, self.loop_mode, self.reverse, self.masked)
