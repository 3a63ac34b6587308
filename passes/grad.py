"""The `grad` pass: backpropagation through time, derived on the cell and unrolled like the forward.

Reverse-mode differentiation of one step gives a *backward cell*: its per-step inputs are the saved
residuals, the forward's sequence inputs and the output cotangents; its states are the adjoints of
the forward states (`dstate@s`, read one step later in time, so the backward cell runs reversed; the
init of `dstate@s` is the cotangent of the final state s). Unrolling it with the forward's mode
(full, k or loop) and `reverse=not reverse` yields the backward Program: a reverse Loop with carried
adjoints. The forward saves only what the rules read (`NEEDS`), recomputing cheap unary ops of values
it has anyway; states are saved once, as their per-step trace, and their previous values are a shift
of it. Weight gradients of `matmul(a, W)` and input gradients of `matmul(x, W)` leave the recurrence:
the backward loop stacks dZ, and after it dW = A^T dZ and dX = dZ W^T are single GEMMs over T*B rows.
A static's cotangent is summed over the steps inside the backward loop (a state `sum@u`, init zeros);
for `u @ W` the loop sums dZ, and du = (sum dZ) W^T, dW = u^T (sum dZ) follow it: nothing is (T, B, F).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ir import Cell, Node, PassError, Program, TensorType, Use
from ir.dtypes import DType
from ir.mask_ops import SEED, SEED_WORDS
from ir.ops import get_op

from .grad_rules import NEEDS, Builder, get_rule
from .registry import Analyses, register_pass
from .rewrite import inline_program
from .roles import Role, Slot, cotangent, dstate, trace
from .row_sums import add_row_sums, row_sum_gradient
from .shadows import normalize_delays
from .unroll import LENGTHS, LENGTHS_LO, UnrollOptions, unroll


@dataclass
class GradPlan:
    """Everything both halves of training share: the forward to run and the backward cell."""

    cell: Cell  # the forward cell with every delay <= 1 (shadow states for longer delays)
    residuals: dict[str, Node]  # Slot(RESIDUAL, i).name -> forward node saved per step
    roots: dict[str, str]  # shadow state -> the state or seq it delays ("" for user states)
    seq_shadows: set[str]  # shadow states that delay a sequence input (init zeros)
    bwd: Cell  # the backward cell
    dx: dict[str, list[str]] = field(default_factory=dict)  # seq -> per-step outputs to stack
    dx_gemm: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # seq -> [(dZ output, W param)]
    dp: dict[str, list[str]] = field(default_factory=dict)  # param -> per-step outputs to sum
    dp_gemm: dict[str, list[tuple]] = field(default_factory=dict)  # param -> [(A stack name, dZ output, mask | None)]
    dp_rows: dict[str, list[tuple]] = field(default_factory=dict)  # param -> its row sums in the loop (row_sums.py)
    ds: dict[str, str] = field(default_factory=dict)  # static -> the backward state summing its cotangent
    ds_gemm: list[tuple] = field(default_factory=list)  # [(state summing dZ, static u, W, mask | None)]: Z = u @ W
    user_states: list[str] = field(default_factory=list)
    slots: dict[str, Slot] = field(default_factory=dict)  # every name grad made -> what it holds (roles.py)
    wrt: frozenset[str] | None = None  # the params, seqs, statics and state inits given gradients (None: all)

    def wants(self, name: str) -> bool:
        """Whether the backward computes the gradient of argument `name`."""
        return self.wrt is None or name in self.wrt

    @property
    def traced(self) -> list[str]:
        """States saved as per-step traces: the user's, and each delayed seq's first shadow.

        (Under lengths a delayed seq's previous value is its carried, copy-through value, not the
        input's previous row; other shadows are shifts of these traces.)
        """
        return self.user_states + [s for s in self.seq_shadows if self.slots[s].depth == 0]

    def saved(self) -> dict[str, TensorType]:
        """Per-step values the forward keeps for the backward: residuals and state traces."""
        out = {k: n.type for k, n in self.residuals.items()}
        out.update({trace(s): self.cell.states[s].type for s in self.traced})
        return out  # type: ignore[return-value]


# ---------------------------------------------------------------- the backward cell


class _Derive:
    """Builds the backward cell of a delay-<=1 cell by a reverse walk over one step."""

    def __init__(self, cell: Cell, roots: dict[str, str]):
        self.cell, self.roots, self.b = cell, roots, Builder()
        self.seqs: dict[str, Node] = {}
        self.params = {p.name: Node("param", (), {}, p.type, p.name) for p in cell.params}
        self.statics = {s.name: Node("static", (), {}, s.type, s.name) for s in cell.statics}
        self.sums: dict[str, list[Node]] = {}  # a SUM state's name -> the per-step terms it adds up
        self.residuals: dict[str, Node] = {}
        self._res_of: dict[int, Node] = {}
        self._recomputed: dict[int, Node] = {}
        self.outputs: dict[str, Node] = {}
        self.state_of = {id(v): k for k, v in cell.states.items()}
        self.placeholders = {s: Node("state", (), {}, t, dstate(s)) for s, t in cell.state_types.items()}
        self.slots: dict[str, Slot] = {}  # the names made here -> what they hold
        self._known: dict[int, Slot] = {}  # id(forward node) -> its residual in a fuller derivation

    def seq(self, slot: Slot | str, t: TensorType) -> Node:
        """The backward cell's seq for `slot` (or a forward seq's own name), recorded in `slots`."""
        name = slot if isinstance(slot, str) else slot.name
        if not isinstance(slot, str):
            self.slots[name] = slot
        if name not in self.seqs:
            self.seqs[name] = Node("seq", (), {}, t, name)
        return self.seqs[name]

    def residual(self, src: Node) -> str:
        """Save `src` at every step: its residual's name (a fuller derivation's, if it had one)."""
        slot = self._known.get(id(src)) or Slot(Role.RESIDUAL, str(len(self.residuals)))
        self.residuals[slot.name] = src
        self._res_of[id(src)] = self.seq(slot, src.type)  # type: ignore[arg-type]
        return slot.name

    def value(self, src: Node, delay: int = 0) -> Node:
        """The forward value of `src` read at `delay`, as a node of the backward cell."""
        if delay:
            return self.seq(Slot(Role.PREV, self.state_of[id(src)]), src.type)  # type: ignore[arg-type]
        if src.op == "seq":
            return self.seq(src.name, src.type)  # type: ignore[arg-type]
        if src.op == "param":
            return self.params[src.name]  # type: ignore[index]
        if src.op == "static":
            return self.statics[src.name]  # type: ignore[index]
        if src.op == "constant":
            return Node("constant", (), src.attrs, src.type)
        if id(src) in self.state_of:
            return self.seq(Slot(Role.TRACE, self.state_of[id(src)]), src.type)  # type: ignore[arg-type]
        if id(src) in self._recomputed:
            return self._recomputed[id(src)]
        if get_op(src.op).cheap and all(self._available(u) for u in src.inputs) or _masked_param(src):
            node = Node(src.op, [Use(self.value(u.node, u.delay)) for u in src.inputs], src.attrs, src.type)
            self._recomputed[id(src)] = node
            return node
        if id(src) not in self._res_of:
            self.residual(src)
        return self._res_of[id(src)]

    def _forward(self, n: Node, k) -> Node:
        """What a rule reads: operand k's forward value, or the node's own ("out"); only as NEEDS declares."""
        if k not in NEEDS.get(n.op, ()):
            raise PassError(f"grad: the rule of {n.op!r} reads {k!r}, which NEEDS[{n.op!r}] does not declare")
        return self.value(n) if k == "out" else self.value(n.inputs[k].node, n.inputs[k].delay)

    def _available(self, u: Use) -> bool:
        n = u.node
        if u.delay > 0 or n.op in ("seq", "param", "static", "constant") or id(n) in self.state_of:
            return True
        return id(n) in self._res_of or id(n) in self._known

    def stack_name(self, src: Node, delay: int) -> str:
        """The program-level stacked array holding `src` at every step (for a GEMM over all steps)."""
        if delay or src.op == "seq" or id(src) in self.state_of:
            self.value(src, delay)
            if delay:
                return Slot(Role.PREV, self.state_of[id(src)]).name
            return src.name if src.op == "seq" else trace(self.state_of[id(src)])  # type: ignore[return-value]
        if id(src) not in self._res_of:  # saved even if cheap to recompute: the GEMM reads it whole
            self.residual(src)
        return next(k for k, v in self.residuals.items() if v is src)

    def out(self, prefix: str, node: Node) -> str:
        for k, v in self.outputs.items():
            if v is node:
                return k
        name = f"{prefix}@{len(self.outputs)}"
        self.outputs[name] = node
        return name

    def depends(self, wrt: frozenset[str] | None) -> set[int] | None:
        """Ids of the forward nodes whose value at some step depends on an argument in `wrt` (through
        any delay): only their cotangents lead to a wanted gradient. None when every one is wanted."""
        if wrt is None:
            return None
        cell = self.cell
        seeds = [n for n in [*cell.seqs, *cell.params, *cell.statics] if n.name in wrt]
        seeds += [v for k, v in cell.states.items() if self.roots.get(k, k) in wrt]  # an init, and its shadows'
        users: dict[int, list[Node]] = {}
        for n in cell.nodes():
            for u in n.inputs:
                users.setdefault(id(u.node), []).append(n)
        seen = {id(n) for n in seeds}
        stack = list(seeds)
        while stack:
            for m in users.get(id(stack.pop()), ()):
                if id(m) not in seen:
                    seen.add(id(m))
                    stack.append(m)
        return seen

    def run(self, plan: GradPlan, outputs: frozenset[str] | None = None) -> Cell:
        """The backward cell, seeded by the cotangents of `outputs` (default: every per-step output);
        with `plan.wrt`, only the cotangents that reach those arguments are computed."""
        cell, b = self.cell, self.b
        live = self.depends(plan.wrt)
        adj: dict[int, list[Node]] = {}
        carry: dict[str, list[Node]] = {s: [] for s in cell.states}
        for name, n in cell.outputs.items():
            if outputs is not None and name not in outputs:
                continue
            adj.setdefault(id(n), []).append(self.seq(Slot(Role.COTANGENT, name), n.type))  # type: ignore[arg-type]
        for s, n in cell.states.items():
            adj.setdefault(id(n), []).append(self.placeholders[s])  # read at delay 1 below
        order = [n for n in cell.nodes() if n.op not in ("seq", "param", "static")]
        for n in reversed(order):
            gs = adj.pop(id(n), None)
            if not gs:
                continue
            g = _accumulate(b, gs)
            if n.op in ("constant", "dropout_mask"):  # no operands: nothing behind them
                continue
            w = n.inputs[1] if n.op == "matmul" and len(n.inputs) == 2 else None
            a = n.inputs[0]
            cts: list[Node | None]
            weight = _gemm_weight(w) if w is not None and a.node.type.rank >= 2 else None  # type: ignore[union-attr]
            if weight is not None and a.node.op == "static":
                # Z = u @ W, u the same at every step: sum dZ over the steps in the loop (a (B, H) state);
                # after it du = (sum dZ) W^T and dW = u^T (sum dZ), no per-step GEMM and no (T, B, H) stack.
                # (W may be DropConnect's masked param: its mask is the same at every step too.)
                q, mask = weight
                if plan.wants(q.name) or plan.wants(a.node.name):  # type: ignore[arg-type]
                    slot = Slot(Role.SUM, a.node.name, len(plan.ds_gemm) + 1)  # type: ignore[arg-type]
                    self.sums.setdefault(slot.name, []).append(g)
                    self.slots[slot.name] = slot
                    plan.ds_gemm.append((slot.name, a.node.name, q.name, mask))  # type: ignore[arg-type]
                continue
            if weight is not None:  # dW = A^T dZ (times the mask under DropConnect): one GEMM after the loop
                q, mask = weight
                if plan.wants(q.name):  # type: ignore[arg-type]
                    dz = self.out("dz", g)
                    plan.dp_gemm.setdefault(q.name, []).append((self.stack_name(a.node, a.delay), dz, mask))  # type: ignore[arg-type]
                if mask is None and a.node.op == "seq" and a.delay == 0:
                    if plan.wants(a.node.name):  # type: ignore[arg-type]
                        plan.dx_gemm.setdefault(a.node.name, []).append((self.out("dz", g), q.name))  # type: ignore[arg-type]
                    continue
                wt = self.params[q.name] if mask is None else self.value(w.node)  # type: ignore[union-attr,index]
                cts = [b("matmul", g, b("transpose", wt)), None]
            else:
                cts = get_rule(n.op)(b, n, g, lambda k, n=n: self._forward(n, k))
            for u, ct in zip(n.inputs, cts):
                if ct is None or (live is not None and id(u.node) not in live):
                    continue  # no wanted gradient lies behind this operand
                if u.delay:
                    carry[self.state_of[id(u.node)]].append(ct)
                elif u.node.op == "seq":
                    plan.dx.setdefault(u.node.name, []).append(self.out("dx", ct))  # type: ignore[arg-type]
                elif u.node.op == "static":  # summed over the steps in the loop, per row
                    slot = Slot(Role.SUM, u.node.name)  # type: ignore[arg-type]
                    if ct.type != u.node.type:
                        raise PassError(f"grad: the cotangent of static {u.node.name!r} has type {ct.type}")
                    self.sums.setdefault(slot.name, []).append(ct)
                    self.slots[slot.name] = slot
                    plan.ds[u.node.name] = slot.name  # type: ignore[index]
                elif u.node.op == "param":
                    # A broadcast param's per-row cotangent: summed over the steps in the loop, per row,
                    # then over the rows after it (row_sums.py); masking by lengths sees the rows.
                    if ct.op == "sum_to" and ct.inputs[0].node.type.rank > ct.type.rank:  # type: ignore[union-attr]
                        entry = add_row_sums(u.node, ct.inputs[0].node, self.sums, self.slots)
                        plan.dp_rows.setdefault(u.node.name, []).append(entry)  # type: ignore[arg-type]
                        continue
                    plan.dp.setdefault(u.node.name, []).append(self.out("dz", ct))  # type: ignore[arg-type]
                elif u.node.op != "constant":
                    adj.setdefault(id(u.node), []).append(ct)
        return self._assemble(carry)

    def _assemble(self, carry: dict[str, list[Node]]) -> Cell:
        b = self.b
        defs: dict[str, Node] = {}
        for s, cts in carry.items():
            t = self.cell.states[s].type
            if cts:
                d = cts[0]
                for c in cts[1:]:
                    d = b("add", d, c)
                if d.type != t or d.name is not None or d.op in ("seq", "param", "constant", "state"):
                    d = Node("identity", [Use(d)], {}, t)
            else:
                d = Node("zeros", (), {"shape": t.shape, "dtype": t.dtype}, t)  # type: ignore[union-attr]
            d.name = dstate(s)
            self.slots[d.name] = Slot(Role.DSTATE, s)
            defs[s] = d
        # Every read of an adjoint placeholder is the adjoint one step later in time: delay 1 (reversed).
        subst = {id(self.placeholders[s]): defs[s] for s in defs}
        for k, v in self.outputs.items():
            if id(v) in subst:
                self.outputs[k] = Node("identity", [Use(v)], {}, v.type)
        states = {dstate(s): d for s, d in defs.items()}
        for name, terms in self.sums.items():  # sum = sum[t-1] + this step's terms (init zeros)
            total = _accumulate(b, terms)
            acc = Node("add", (), {}, total.type, name)
            acc.inputs = (Use(acc, 1), Use(total))
            states[name] = acc
        seen: set[int] = set()
        stack = list(states.values()) + list(self.outputs.values())
        while stack:
            n = stack.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            n.inputs = tuple(Use(subst[id(u.node)], 1) if id(u.node) in subst else u for u in n.inputs)
            stack.extend(u.node for u in n.inputs)
        return Cell(
            f"{self.cell.name}_grad",
            list(self.seqs.values()),
            list(self.params.values()),
            {k: v.type for k, v in states.items()},  # type: ignore[misc]
            states,
            dict(self.outputs),
            list(self.statics.values()),
        )


def _gemm_weight(w: Use) -> tuple[Node, Node | None] | None:
    """(param, None) when `w` reads a param; (param, mask) when it reads `mul(param, mask)` of a
    per-sequence mask (DropConnect); else None."""
    n = w.node
    if w.delay:
        return None
    if n.op == "param":
        return n, None
    if n.op != "mul" or any(u.delay for u in n.inputs):
        return None
    ops = sorted((u.node for u in n.inputs), key=lambda m: m.op != "param")
    q, m = ops
    if q.op == "param" and m.op == "dropout_mask" and m.attrs["sequence"] and q.type == n.type:
        return q, m
    return None


def _sequence_mask(mask: Node, seed: Node) -> Node:
    """A per-sequence mask outside the loop (its step word is the same at every step: t = 0 serves)."""
    t = Node("constant", (), {"value": 0.0, "dtype": DType.i64}, TensorType(DType.i64, ()))
    return Node("philox_mask", [Use(t), Use(seed)], mask.attrs, mask.type)


def _masked_param(n: Node) -> bool:
    """A dropout mask applied to params and constants alone (DropConnect's masked weight): recomputed in
    the backward from the seed, not saved per step (it is no batch value, and saving one per step costs
    a weight's bytes per step)."""
    return (
        get_op(n.op).elementwise
        and any(u.node.op == "dropout_mask" for u in n.inputs)
        and all(u.delay == 0 and u.node.op in ("param", "constant", "dropout_mask") for u in n.inputs)
    )


def _accumulate(b: Builder, gs: list[Node]) -> Node:
    """Sum cotangents; the zero-padded pieces from `split`/`slice` (the LSTM's four gates) become one
    concat instead of a chain of adds over mostly zeros."""
    pads = [g for g in gs if g.op == "pad"]
    rest = [g for g in gs if g.op != "pad"]
    if len(pads) > 1 and len({(p.attrs["axis"] % p.type.rank, p.type) for p in pads}) == 1:  # type: ignore[union-attr]
        axis = pads[0].attrs["axis"]
        size = pads[0].type.shape[axis]  # type: ignore[union-attr]
        pieces = sorted(pads, key=lambda p: p.attrs["before"])
        spans = [(p.attrs["before"], size - p.attrs["after"]) for p in pieces]
        if all(a[1] <= b_[0] for a, b_ in zip(spans, spans[1:])):
            parts, at = [], 0
            for (lo, hi), p in zip(spans, pieces):
                if lo > at:
                    parts.append(_zeros_like_slice(p, axis, lo - at))
                parts.append(p.inputs[0].node)
                at = hi
            if at < size:
                parts.append(_zeros_like_slice(pieces[-1], axis, size - at))
            rest.insert(0, parts[0] if len(parts) == 1 else b("concat", *parts, axis=axis))
            pads = []
    total = (pads + rest)[0]
    for other in (pads + rest)[1:]:
        total = b("add", total, other)
    return total


def _zeros_like_slice(pad: Node, axis: int, width: int) -> Node:
    t = pad.type
    shape = list(t.shape)  # type: ignore[union-attr]
    shape[axis] = width
    return Node("zeros", (), {"shape": tuple(shape), "dtype": t.dtype}, t.with_shape(tuple(shape)))  # type: ignore[union-attr]


def restrict(plan: GradPlan, outputs: frozenset[str] | None, wrt: frozenset[str] | None = None) -> GradPlan:
    """The plan's backward for cotangents of `outputs` only (None: all), giving the gradients of `wrt`
    only (None: all). The other per-step outputs are symbolic zeros, so they contribute exactly
    nothing (no 0 * inf = NaN through, say, log's 1/x at x = 0); a gradient not asked for is not
    computed, nor any cotangent that leads only to such gradients (no input-gradient GEMM when no
    seq is in `wrt`). The forward and its residuals stay the plan's (the forward runs before the
    cotangents are known): this backward reads a subset of them, under the same names."""
    d = _Derive(plan.cell, plan.roots)
    d._known = {id(n): plan.slots[k] for k, n in plan.residuals.items()}
    sub = GradPlan(plan.cell, {}, plan.roots, plan.seq_shadows, None, user_states=plan.user_states, wrt=wrt)  # type: ignore[arg-type]
    sub.bwd = d.run(sub, outputs)
    sub.slots = {**plan.slots, **d.slots}
    if not set(d.residuals) <= set(plan.residuals):
        raise PassError(f"grad: the backward for {sorted(outputs or ())} needs residuals the forward does not keep")
    sub.residuals = plan.residuals
    return sub


def derive(cell: Cell) -> GradPlan:
    """The training plan of a (verified) cell: normalised forward, residuals, backward cell."""
    slots: dict[str, Slot] = {}
    norm, roots, seq_shadows = normalize_delays(cell, slots)
    plan = GradPlan(norm, {}, roots, seq_shadows, None, user_states=list(cell.states))  # type: ignore[arg-type]
    d = _Derive(norm, roots)
    plan.bwd = d.run(plan)
    plan.residuals = d.residuals
    plan.slots = {**slots, **d.slots}
    return plan


# ---------------------------------------------------------------- programs


def forward_program(plan: GradPlan, length, mode, reverse: bool, masked: bool) -> Program:
    """The training forward: outputs, final states, and the per-step residuals and state traces.

    Every state of the normalised cell is an input and a final output, shadows included (`h@d1`
    holds h one step back), so a run can start from a checkpoint mid-sequence and stay exact.
    """
    cell = plan.cell
    outputs = {**cell.outputs, **plan.residuals}
    aug = Cell(cell.name, cell.seqs, cell.params, cell.state_types, cell.states, outputs, cell.statics)
    prog = unroll(aug, length, mode, reverse, masked, traces=plan.traced, raw=list(plan.residuals))
    prog.name = f"{cell.name}_train"
    return prog


def inference_program(plan: GradPlan, length, mode, reverse: bool, masked: bool) -> Program:
    """The normalised cell's plain forward (no residuals): what a checkpointed forward runs per segment."""
    prog = unroll(plan.cell, length, mode, reverse, masked)
    prog.name = f"{plan.cell.name}_segment"
    return prog


def backward_program(plan: GradPlan, length, mode, reverse: bool, masked: bool, window: bool = False) -> Program:
    """The backward: a reversed unroll of the backward cell, then the whole-sequence GEMMs and sums.

    Inputs: the forward's seqs, params and inits (every normalised state), the saved `res@i` and
    `trace@s` stacks, cotangents `grad@y` (per-step outputs, stacked) and `dstate@s` (final states).
    Outputs: a gradient for every param, every state's init, every seq input and every static, under their
    names (a static's is summed over the steps inside the loop: `sum@u` states, no per-step stack).
    `window` (truncated BPTT) adds `lengths_lo`: steps outside [lengths_lo, lengths) get no gradient.
    """
    cell, bwd = plan.cell, plan.bwd
    prog = unroll(bwd, length, mode, not reverse, masked or window, window=window)
    T = next((n.type.shape[0] for n in prog.inputs if prog.roles[n.name] == "seq"), length)  # type: ignore[union-attr,index]
    inputs: dict[str, Node] = {}

    def inp(name: str, t: TensorType, role: str) -> Node:
        if name not in inputs:
            inputs[name] = Node("input", (), {}, t, name)
            roles[name] = role
        return inputs[name]

    roles: dict[str, str] = {}
    for s in cell.seqs:
        inp(s.name, s.type.with_shape((T,) + s.type.shape), "seq")  # type: ignore[union-attr,operator,arg-type]
    for p in cell.params:
        inp(p.name, p.type, "param")  # type: ignore[arg-type]
    for u in cell.statics:
        inp(u.name, u.type, "static")  # type: ignore[arg-type]
    for s in cell.state_types:
        inp(s, cell.state_types[s], "init")
    for name, t in plan.saved().items():
        inp(name, t.with_shape((T,) + t.shape), "saved")  # type: ignore[arg-type]
    for name, n in cell.outputs.items():
        inp(cotangent(name), n.type.with_shape((T,) + n.type.shape), "cotangent")  # type: ignore[union-attr,operator]
    for s in cell.state_types:
        inp(dstate(s), cell.state_types[s], "dstate")
    if masked or window:
        inp(LENGTHS, TensorType(DType.i64, prog.input(LENGTHS).type.shape), "lengths")  # type: ignore[union-attr]
    if window:
        inp(LENGTHS_LO, TensorType(DType.i64, prog.input(LENGTHS_LO).type.shape), "lengths")  # type: ignore[union-attr]
    if SEED in prog.roles:  # the backward recomputes the forward's dropout masks from the same seed words
        inp(SEED, prog.input(SEED).type, "seed")  # type: ignore[arg-type]
    elif any(m is not None for *_, m in plan.ds_gemm):  # a masked weight applied after the loop only
        inp(SEED, TensorType(DType.i64, (SEED_WORDS,)), "seed")
    b = Builder()
    traces: dict[str, Node] = {}

    def init_of(s: str) -> Node:
        return inputs[s]

    parent_of: dict[int, str] = {}
    for k, v in plan.cell.states.items():
        parent_of.setdefault(id(v), k)

    def trace_of(s: str) -> Node:
        """Stacked per-step values of state s; a shadow's is its source's, shifted by one step.
        (A chain of shadows is walked in a loop, not by recursion: a delay may be in the thousands.)"""
        chain = []
        while s not in traces and s not in plan.traced:
            chain.append(s)
            src = plan.cell.states[s].inputs[0]  # a shadow is identity(parent[t-1])
            s = parent_of[id(src.node)]
        if s not in traces:
            traces[s] = inputs[trace(s)]
        for shadow in reversed(chain):
            traces[shadow] = b("shift", traces[s], init_of(s), reverse=reverse)
            s = shadow
        return traces[s]

    repl: dict[str, Node] = {}
    for n in prog.inputs:
        name = n.name
        slot = plan.slots.get(name)  # type: ignore[arg-type]
        if name in inputs:
            repl[name] = inputs[name]  # type: ignore[index]
        elif slot is not None and slot.role is Role.PREV:
            repl[name] = b("shift", trace_of(slot.of), init_of(slot.of), reverse=reverse)  # type: ignore[index]
        elif slot is not None and slot.role is Role.TRACE:
            repl[name] = trace_of(slot.of)  # type: ignore[index]
        elif slot is not None and slot.role in (Role.SUM, Role.ROW_SUM):  # a sum over the steps starts at zero
            t = n.type
            repl[name] = Node("zeros", (), {"shape": t.shape, "dtype": t.dtype}, t)  # type: ignore[union-attr]
        else:
            raise PassError(f"grad: backward input {name!r} has no source")
    outs = inline_program(prog, repl)
    grads: dict[str, Node] = {}
    for s in cell.seqs:
        if not plan.wants(s.name):  # type: ignore[arg-type]
            continue
        terms = [outs[o] for o in plan.dx.get(s.name, [])]  # type: ignore[index]
        terms += [b("matmul", outs[dz], b("transpose", inputs[w])) for dz, w in plan.dx_gemm.get(s.name, [])]  # type: ignore[arg-type]
        grads[s.name] = _total(b, terms, inputs[s.name].type)  # type: ignore[index,arg-type]
    for p in cell.params:
        if not plan.wants(p.name):  # type: ignore[arg-type]
            continue
        terms = [b("sum_to", outs[o], shape=p.type.shape) for o in plan.dp.get(p.name, [])]  # type: ignore[union-attr,index]
        terms += [row_sum_gradient(b, e, outs, p.type) for e in plan.dp_rows.get(p.name, [])]  # type: ignore[arg-type,index]
        for a, dz, mask in plan.dp_gemm.get(p.name, []):  # type: ignore[arg-type]
            term = b("matmul_tn", _stack(a, inputs, repl), outs[dz])
            terms.append(term if mask is None else b("mul", term, _sequence_mask(mask, inputs[SEED])))
        for k, u, w, mask in plan.ds_gemm:
            if w == p.name:
                term = b("matmul_tn", inputs[u], outs[k])
                terms.append(term if mask is None else b("mul", term, _sequence_mask(mask, inputs[SEED])))
        grads[p.name] = _total(b, terms, p.type)  # type: ignore[index,arg-type]
    for u in cell.statics:  # summed over the steps in the backward loop, per row
        if not plan.wants(u.name):  # type: ignore[arg-type]
            continue
        terms = [outs[plan.ds[u.name]]] if u.name in plan.ds else []  # type: ignore[index]
        for k, s, w, mask in plan.ds_gemm:
            if s == u.name:
                wt = inputs[w] if mask is None else b("mul", inputs[w], _sequence_mask(mask, inputs[SEED]))
                terms.append(b("matmul", outs[k], b("transpose", wt)))
        grads[u.name] = _total(b, terms, u.type)  # type: ignore[index,arg-type]
    for s in cell.state_types:  # shadows too: the runtime adds them into their roots
        grads[s] = outs[dstate(s)]
    return Program(f"{cell.name}_grad", list(inputs.values()), roles, grads)


def _stack(name: str, inputs: dict[str, Node], repl: dict[str, Node]) -> Node:
    return repl.get(name) or inputs[name]


def _total(b: Builder, terms: list[Node], t: TensorType) -> Node:
    if not terms:
        return Node("zeros", (), {"shape": t.shape, "dtype": t.dtype}, t)
    total = terms[0]
    for x in terms[1:]:
        total = b("add", total, x)
    return total


@dataclass(frozen=True)
class _GradPass(UnrollOptions):
    """The training passes take `unroll`'s options; the plan is an analysis of the cell."""

    def plan(self, cell: Cell, analyses: Analyses) -> GradPlan:
        return analyses.get(derive, cell)


@register_pass
@dataclass(frozen=True)
class GradForward(_GradPass):
    """Cell -> Program: the training forward (`forward_program`), keeping residuals and state traces."""

    name = "grad_forward"

    def apply(self, cell: Cell, analyses: Analyses) -> Program:
        return forward_program(self.plan(cell, analyses), self.length, self.loop_mode, self.reverse, self.masked)


@register_pass
@dataclass(frozen=True)
class GradSegment(_GradPass):
    """Cell -> Program: a checkpointed forward's segment (`inference_program`)."""

    name = "grad_segment"

    def apply(self, cell: Cell, analyses: Analyses) -> Program:
        return inference_program(self.plan(cell, analyses), self.length, self.loop_mode, self.reverse, self.masked)


@register_pass
@dataclass(frozen=True)
class Grad(_GradPass):
    """Cell -> Program: the backward program (`backward_program`); `window` for truncated BPTT."""

    name = "grad"
    window: bool = False
    outputs: str = ""  # space-separated: the per-step outputs given cotangents ("" = all of them)
    wrt: str = ""  # space-separated: the arguments given gradients ("" = all of them)

    def apply(self, cell: Cell, analyses: Analyses) -> Program:
        plan = self.plan(cell, analyses)
        if self.outputs or self.wrt:
            outputs = frozenset(self.outputs.split()) if self.outputs else None
            plan = restrict(plan, outputs, frozenset(self.wrt.split()) if self.wrt else None)
        return backward_program(plan, self.length, self.loop_mode, self.reverse, self.masked, self.window)
