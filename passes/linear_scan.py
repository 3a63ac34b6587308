"""The `linear_scan` pass: a loop-carried value whose new value is a * h[t-1] + b becomes a scan op.

For each loop of one step per iteration, a carried value h is scanned when its new value is affine
in its previous value (passes/affine.py: masks for lengths and truncation allowed) and its
coefficients a and b read no carried value but ones scanned before it (never the step index):
they are computed over the whole sequence, like the input GEMM of `hoist`, and
`linear_scan(a, b, init)` gives h at every step; the loop keeps what is left, reading h's previous
and new values as stacked inputs (`shift` of the trace, and the trace), and the final value is
`last_step(trace, init)`. The grad pass derives the adjoint of such a state as another affine
carried value of the reversed backward loop, so the backward is scanned by this same pass.
`explain(prog)` says, per carried value, whether it is scanned and why not; `require=true` makes
a carried value that stays sequential an error naming it and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from ir import LoopView, Node, PassError, Program, Use
from ir import symexpr as sx
from ir.ops import axes_of, get_op, infer_type
from ir.program import make_loop

from .affine import Affine, NotAffine, decompose
from .registry import Analyses, Pass, register_pass
from .rewrite import rebuild, rewrite_program


@register_pass
@dataclass(frozen=True)
class LinearScan(Pass):
    """Program -> Program: affine loop-carried values as scans over time (see the module)."""

    name = "linear_scan"
    require: bool = False  # a carried value that stays sequential is an error naming it and why

    def apply(self, prog: Program, analyses: Analyses) -> Program:
        return linear_scan(prog, require=self.require)


def state_name(param: Node) -> str:
    """A carried value's name for the user: its body param's, less the `@t-1` of the previous step."""
    name = param.name or "?"
    return name[: -len("@t-1")] if name.endswith("@t-1") else name


def explain(prog: Program) -> list[tuple[str, str | None]]:
    """(carried value, None if it is scanned or the reason it stays sequential), over every loop."""
    out: list[tuple[str, str | None]] = []
    for n in prog.nodes():
        if n.op == "loop":
            v = LoopView(n)
            plan = _plan(v)
            out += [(state_name(p), plan.why.get(i)) for i, (_, p, _) in enumerate(v.carries())]
    return out


def linear_scan(prog: Program, require: bool = False) -> Program:
    """`prog` with every affine carried value of its top-level loops run as a scan."""
    remaps: dict[int, dict[int, Node | int]] = {}

    def visit(node: Node, ops: list[Node]) -> Node:
        new = rebuild(node, ops)
        if node.op == "loop":
            v = LoopView(new)
            plan = _plan(v)
            if require and plan.why:
                i, why = next(iter(plan.why.items()))
                name = state_name(v.carry_params[i])
                raise PassError(
                    f"linear_scan{{require=true}}: state {name!r} of program {prog.name!r} stays sequential: {why}"
                )
            if plan.order:
                loop, remap = _rewrite(v, plan)
                remaps[id(loop)] = remap
                return loop
        if node.op == "item" and id(ops[0]) in remaps:
            to = remaps[id(ops[0])][node.attrs["index"]]
            if isinstance(to, Node):
                return to
            return Node("item", [Use(ops[0])], {"index": to}, node.type, node.name)
        return new

    return rewrite_program(prog, visit, recurse=False)


@dataclass
class _Plan:
    """Which carried values a loop scans (in an order where each one's coefficients can be computed)."""

    order: list[int]  # carried value indices, scanned in this order
    forms: dict[int, Affine]
    why: dict[int, str]  # carried value index -> why it stays sequential
    whole: _Whole | None = None


def _plan(v: LoopView) -> _Plan:
    carries = v.carries()
    why: dict[int, str] = {}
    loop_why = _loop_reason(v)
    if loop_why:
        return _Plan([], {}, {i: loop_why for i in range(len(carries))})
    t = v.t_params[0]
    const_of = {id(p): u.node for p, u in zip(v.const_params, v.consts)}
    forms: dict[int, Affine] = {}
    for i, (_, p, r) in enumerate(carries):
        try:
            form = decompose(r, p, t)
        except NotAffine as e:
            why[i] = str(e)
            continue
        bad = [k for k, b in form.masks if id(b) not in const_of]
        if bad:
            why[i] = f"its {bad[0]} mask bound is not loop-invariant"
            continue
        forms[i] = form
    param_at = {id(p): i for i, (_, p, _) in enumerate(carries)}
    result_at = {id(r): i for i, (_, _, r) in enumerate(carries)}
    needs: dict[int, set[int]] = {}
    for i, f in list(forms.items()):
        a_reads, a_t = _reads(f.a, param_at, result_at, t)
        b_reads, b_t = _reads(f.b, param_at, result_at, t)
        if a_t or b_t:
            why[i] = f"its coefficient {'a' if a_t else 'b'} reads the step index"
        elif a_reads:
            why[i] = f"its coefficient a reads state {state_name(carries[min(a_reads)][1])!r}"
        elif i in b_reads:
            why[i] = "its coefficient b reads its own value"
        else:
            needs[i] = b_reads
            continue
        del forms[i]
    order = _order(needs, why, carries)
    whole = _Whole(v)
    done: list[int] = []
    for i in order:
        blocked = [j for j in needs[i] if j not in done]
        if blocked:
            why[i] = f"its coefficient b reads state {state_name(carries[blocked[0]][1])!r}, which stays sequential"
            continue
        reason = whole.scan(i, forms[i], carries[i])
        if reason:
            why[i] = reason
        else:
            done.append(i)
    return _Plan(done, forms, dict(sorted(why.items())), whole)


def _loop_reason(v: LoopView) -> str | None:
    if v.stride != 1:
        return f"its loop runs {v.stride} steps per iteration (unroll={v.stride}); the pass takes unroll='loop'"
    if v.start != 0:
        return f"its loop starts at step {v.start}, not 0"
    if not v.xs:
        return "its loop reads no sequence input"
    T = v.xs[0].node.type.shape[0]  # type: ignore[union-attr]
    if str(sx.count(v.length)) != str(sx.count(T)):
        return f"its loop runs {v.length} steps of sequences of {T}"
    return None


def _reads(root: Node, param_at: dict[int, int], result_at: dict[int, int], t: Node) -> tuple[set[int], bool]:
    """The carried values (by index) a coefficient reads, previous or new, and whether it reads t."""
    seen: set[int] = set()
    found: set[int] = set()
    step = False
    stack = [root]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n is t:
            step = True
        if id(n) in param_at:
            found.add(param_at[id(n)])
        if id(n) in result_at:
            found.add(result_at[id(n)])
            continue  # a scanned value's new value is its trace: what it reads does not matter
        stack.extend(u.node for u in n.inputs)
    return found, step


def _order(needs: dict[int, set[int]], why: dict[int, str], carries) -> list[int]:
    """The candidates in an order where what a coefficient reads comes first (Kahn); those left in a
    cycle stay sequential."""
    order: list[int] = []
    left = dict(needs)
    while True:
        ready = [i for i, js in left.items() if all(j in order or j not in needs for j in js)]
        if not ready:
            break
        for i in sorted(ready):
            order.append(i)
            del left[i]
    for i, js in left.items():
        j = min(j for j in js if j in left)
        why[i] = f"it and state {state_name(carries[j][1])!r} read each other (coupled recurrences)"
    return order


class _Whole:
    """Body values as whole-sequence values outside the loop: stacked inputs, invariants, and the
    traces of the carried values scanned so far; `scan` adds one carried value's scan."""

    def __init__(self, v: LoopView):
        self.v = v
        self.T = v.xs[0].node.type.shape[0]  # type: ignore[union-attr]
        self.memo: dict[int, tuple[Node, bool]] = {}  # id(body node) -> (outer node, stacked over time)
        for u, ps in zip(v.xs, v.x_params):
            self.memo[id(ps[0])] = (u.node, True)
        for u, p in zip(v.consts, v.const_params):
            self.memo[id(p)] = (u.node, False)
        self.traces: dict[int, tuple[Node, Node, Node]] = {}  # carried index -> (trace, shift of it, last_step)

    def scan(self, i: int, f: Affine, carry: tuple[Node, Node, Node]) -> str | None:
        """Add carried value i's scan; the reason it cannot be if it cannot."""
        init, p, r = carry
        try:
            (a, a_t), (b, b_t) = self.of(f.a), self.of(f.b)
        except NotAffine as e:
            return str(e)
        if not (a_t or b_t):
            return "its coefficients are the same at every step (no sequence input reaches them)"
        kinds = dict(f.masks)
        masks = [self.memo[id(kinds[k])][0] for k in ("hi", "lo") if k in kinds]
        rev = self.v.reverse
        attrs = {"reverse": rev, "hi": "hi" in kinds, "lo": "lo" in kinds}
        t = infer_type(get_op("linear_scan"), [a.type, b.type, init.type] + [m.type for m in masks], attrs)  # type: ignore[list-item]
        trace = Node(
            "linear_scan", [Use(a), Use(b), Use(init)] + [Use(m) for m in masks], attrs, t, f"scan@{state_name(p)}"
        )
        prev = Node("shift", [Use(trace), Use(init)], {"reverse": rev}, t)
        last = Node("last_step", [Use(trace), Use(init)], {"reverse": rev}, init.type)
        self.traces[i] = (trace, prev, last)
        self.memo[id(p)] = (prev, True)
        self.memo[id(r)] = (trace, True)
        return None

    def of(self, n: Node) -> tuple[Node, bool]:
        """(outer node, stacked) for body node n; NotAffine if an op cannot run over the sequence."""
        stack = [n]
        while stack:
            x = stack[-1]
            if id(x) in self.memo:
                stack.pop()
                continue
            todo = [u.node for u in x.inputs if id(u.node) not in self.memo]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            self.memo[id(x)] = self._one(x)
        return self.memo[id(n)]

    def _one(self, x: Node) -> tuple[Node, bool]:
        if not x.inputs:
            if x.op == "constant":
                return Node("constant", (), x.attrs, x.type), False
            raise NotAffine(f"its coefficients read {x.name or x.op}, which has no value outside the loop")
        ops = [self.memo[id(u.node)] for u in x.inputs]
        if not any(timed for _, timed in ops):
            return Node(x.op, [Use(o) for o, _ in ops], x.attrs, x.type), False
        op = get_op(x.op)
        what = (
            f"its coefficients compute {x.op} (node {x.name or x.op} : {x.type}), which does not run over the sequence"
        )
        if op.elementwise:
            if any(timed and o.type.rank != x.type.rank + 1 for o, timed in ops):  # type: ignore[union-attr]
                raise NotAffine(what)
        elif not op.time_batchable and op.axes is None:
            raise NotAffine(what)
        try:
            t = infer_type(op, [o.type for o, _ in ops], x.attrs)  # type: ignore[misc]
        except Exception:
            raise NotAffine(what) from None
        if t != x.type.with_shape((self.T,) + x.type.shape):  # type: ignore[union-attr]
            raise NotAffine(what)
        out = Node(x.op, [Use(o) for o, _ in ops], x.attrs, t)
        if op.axes is not None and axes_of(out) != tuple(a + 1 for a in axes_of(x)):
            raise NotAffine(what)
        return out, True


def _rewrite(v: LoopView, plan: _Plan) -> tuple[Node, dict[int, Node | int]]:
    """The loop without the scanned carried values, which it reads as stacked inputs; and where
    each old result is now (a node, or the new loop's result index)."""
    whole = plan.whole
    assert whole is not None
    scanned = set(plan.order)
    prev_p: dict[int, Node] = {}
    cur_p: dict[int, Node] = {}
    new_xs = []
    for i in plan.order:
        trace, prev, _ = whole.traces[i]
        _, p, r = v.carries()[i]
        name = state_name(p)
        prev_p[id(p)] = Node("input", (), {}, p.type, f"{name}@prev")
        cur_p[id(r)] = Node("input", (), {}, p.type, f"{name}@scan")
        new_xs += [(prev, [prev_p[id(p)]]), (trace, [cur_p[id(r)]])]
    new: dict[int, Node] = {id(p): prev_p.get(id(p), p) for p in v.body.params}
    for n in v.body.nodes():
        if id(n) in new:
            continue
        new[id(n)] = cur_p[id(n)] if id(n) in cur_p else rebuild(n, [new[id(u.node)] for u in n.inputs])
    kept = [(x, p, new[id(r)]) for i, (x, p, r) in enumerate(v.carries()) if i not in scanned]
    remap: dict[int, Node | int] = {}
    c = 0
    for i in range(v.n_carry):
        if i in scanned:
            remap[i] = whole.traces[i][2]
        else:
            remap[i] = c
            c += 1
    traces = {id(cur_p[id(v.carries()[i][2])]): whole.traces[i][0] for i in plan.order}
    stacks = []
    for k, (buf, ys) in enumerate(v.stacks()):
        y = new[id(ys[0])]
        if id(y) in traces:  # a stacked copy of a scanned value is its trace
            remap[v.n_carry + k] = traces[id(y)]
        else:
            remap[v.n_carry + k] = c + len(stacks)
            stacks.append((buf, [y]))
    loop = make_loop(
        v.t_params,
        kept,
        v.seqs() + new_xs,
        stacks,
        v.invariants(),
        length=v.length,
        start=v.start,
        stride=v.stride,
        reverse=v.reverse,
        name=v.node.name,
    )
    return loop, remap
