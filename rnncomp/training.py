"""Training: `vjp` and `value_and_grad` over the compiled forward and backward programs.

The calls follow a checkpoint schedule (rnncomp.checkpointing, passes.schedule) in processing order:
one leaf for plain BPTT (the forward keeps every step's residuals); for `checkpoint=k`, "sqrt" or a
byte budget the forward keeps some states (checkpoints) and the residuals of its last leaf, and the
backward replays the rest from the checkpoints, leaf by leaf, releasing what it no longer needs. `truncate=k`
gives each row a window of its last k processed steps; gradient flows inside it only (Theano's
truncate_gradient, per row when `lengths` are given). Between program calls the glue works through
`self.ops` (rnncomp.array_ops): NumPy, or the backend's device operations when the call's arrays
are device arrays, so that they stay on the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ir import ArgumentError
from passes.roles import cotangent, dstate
from passes.schedule import ADVANCE, DROP, KEEP, RESTORE

from .arguments import LENGTHS, is_device_array
from .array_ops import HOST
from .backends.registry import device_ops
from .checkpointing import StepPlan, segment_steps
from .masks import SEED, at_step


@dataclass
class _Run:
    """What the forward of one `vjp` call leaves for its backward."""

    plan: StepPlan  # the schedule (passes.schedule) and how its units map to steps
    init: dict[str, np.ndarray]  # every normalised state's init (the caller's; not counted as held)
    checkpoints: dict[int, dict[str, np.ndarray]]  # unit position -> every normalised state there
    saved: dict[str, np.ndarray] | None  # the forward's own leaf: its residuals
    arrays: dict[str, np.ndarray]
    lengths: np.ndarray | None
    T: int
    T_run: int
    symbols: dict[str, int]
    seed: np.ndarray | None = None  # the dropout masks' seed words (k0, k1, t0, on); t0 is set per piece
    start: dict[str, np.ndarray] | None = None  # the state the live leaf starts from (its backward reads it)
    peak: int = 0  # the most bytes held for the backward so far (checkpoints plus a live leaf)

    @property
    def nbytes(self) -> int:
        """Bytes held for the backward now: the checkpoints, and the live leaf's residuals and start state
        (unless that is the init, the caller's); each array once."""
        parts = [*self.checkpoints.values(), self.saved or {}]
        if self.saved is not None and self.start is not None and self.start is not self.init:
            parts.append(self.start)
        arrays = {id(a): a for c in parts for a in c.values()}
        return sum(a.nbytes for a in arrays.values())


def segment_size(checkpoint, T: int) -> int:
    """Steps per segment (plain BPTT: every step; "sqrt": about sqrt(T))."""
    if checkpoint is None:
        return max(T, 1)
    return segment_steps(checkpoint, T)


def _clip(lengths: np.ndarray, s0: int, n: int) -> np.ndarray:
    return np.clip(lengths - s0, 0, n).astype(np.int64)


class Trainer:
    """Runs the training programs of a CompiledProgram (see rnncomp.compiler) along a checkpoint schedule."""

    def __init__(self, prog, b=None):
        self.p = prog
        self.ops = HOST
        if b is not None and any(is_device_array(a) for a in b.arrays.values()):
            self.ops = device_ops(prog.backend)
            for k, a in b.arrays.items():  # every array on the device once, not once per segment call
                b.arrays[k] = self.ops.adopt(k, a)

    def init_states(self, b) -> dict[str, np.ndarray]:
        """Every normalised state's init: user inits, their shadows the same, delayed seqs zeros."""
        plan, out = self.p.plan, {}
        for s, t in plan.cell.state_types.items():
            if s in plan.seq_shadows:
                shape = tuple(b.symbols.get(d, d) if isinstance(d, str) else d for d in t.shape)
                out[s] = self.ops.zeros(shape, self.p.dtype.numpy)
            else:
                out[s] = b.arrays[plan.roots.get(s, s)]
        return out

    def _step(self, kind: str, run: _Run, span: tuple[int, int], states):
        """Run the forward over steps [s0, s1) from `states`: "segment" (no residuals) or "train"."""
        p, seqs = self.p, [s.name for s in self.p.plan.cell.seqs]
        s0, s1 = span
        args = self._args(run.arrays, seqs, s0, s1, states, run.lengths, run.seed)
        return p._runner(kind, run.lengths is not None, s1 - s0)(args, {**run.symbols, p.tsym: s1 - s0})

    def _prefix(self, run: _Run, outputs: dict | None):
        """The forward pass along the schedule: every action before the first leaf, then that leaf's forward
        (its residuals kept in `run.saved`). Returns the state at the end; per-step outputs go to `outputs`."""
        sp, plan = run.plan, self.p.plan
        hand = run.init
        for kind, a, b in sp.schedule.actions[: sp.schedule.forward]:
            if kind == ADVANCE:
                out = self._step("segment", run, sp.span(a, b), hand)
                hand = {s: out[s] for s in plan.cell.state_types}
                if outputs is not None:
                    for k in outputs:
                        outputs[k].append((sp.span(a, b)[0], out[k]))
            elif kind == KEEP:
                run.checkpoints[a] = hand
            elif kind == RESTORE:
                hand = run.init if a == 0 else run.checkpoints[a]
        _, a, b = sp.schedule.actions[sp.schedule.forward]
        out = self._step("train", run, sp.span(a, b), hand)
        run.saved, run.start = {k: out[k] for k in plan.saved()}, hand
        if outputs is not None:
            for k in outputs:
                outputs[k].append((sp.span(a, b)[0], out[k]))
        run.peak = max(run.peak, run.nbytes)
        return {s: out[s] for s in plan.cell.state_types}

    def forward(self, b, lengths) -> tuple[dict[str, np.ndarray], _Run]:
        p, plan = self.p, self.p.plan
        masked = lengths is not None
        T_run = (int(lengths.max()) if lengths.size else 0) if masked else b.T
        sp = p._planner.plan(T_run, {d: b.symbols[d] for d in self.dims()})
        run = _Run(sp, self.init_states(b), {}, None, b.arrays, lengths, b.T, T_run, b.symbols, b.seed)
        outputs = {k: [] for k in plan.cell.outputs}
        states = self._prefix(run, outputs)
        result = {}
        for k, parts in outputs.items():
            if len(parts) == 1 and parts[0][1].shape[0] == b.T:  # one segment over every step: as it came
                result[k] = parts[0][1]
                continue
            full = self.ops.zeros((b.T,) + tuple(parts[0][1].shape[1:]), p.dtype.numpy)
            for s0, a in parts:
                self.ops.put(full, s0, a)
            result[k] = full
        for s in plan.user_states:
            result[s] = states[s]
        return result, run

    def dims(self) -> list[str]:
        """The symbolic dims that size the residuals and states (what a schedule is planned for)."""
        plan = self.p.plan
        types = [*plan.saved().values(), *plan.cell.state_types.values()]
        return sorted({d for t in types for d in t.shape if isinstance(d, str)})

    def _args(self, arrays, seqs, s0, s1, states, lengths, seed=None) -> dict[str, np.ndarray]:
        args = {k: v for k, v in arrays.items() if k not in seqs and k not in self.p.plan.cell.state_types}
        args.update({k: arrays[k][s0:s1] for k in seqs})
        args.update(states)
        if lengths is not None:
            args[LENGTHS] = _clip(lengths, s0, s1 - s0)
        if seed is not None:  # a piece's step 0 is step s0 of the sequence: its masks are those of s0 on
            args[SEED] = at_step(seed, s0)
        return args

    def _residuals(self, run: _Run, span: tuple[int, int], states) -> dict[str, np.ndarray]:
        """A leaf's forward in the backward: its residuals only (the rest of the run's outputs released)."""
        out = self._step("train", run, span, states)
        return {k: out[k] for k in self.p.plan.saved()}

    def _leaf_grad(self, run: _Run, span: tuple[int, int], states, cot, A, given, rows, wrt=None) -> dict:
        """The backward program over one leaf [s0, s1) from its residuals (`run.saved`); its arguments are
        released on return, so nothing but `run` keeps the leaf's residuals."""
        p, plan = self.p, self.p.plan
        s0, s1 = span
        n = s1 - s0
        args = self._args(run.arrays, [s.name for s in plan.cell.seqs], s0, s1, states, run.lengths, run.seed)
        args.update(run.saved)
        args.update({cotangent(k): cot[k][s0:s1] for k in plan.cell.outputs})
        args.update({dstate(s): A[s] for s in A})
        window = len(rows) == 3
        masked = run.lengths is not None or window
        if masked:
            args[LENGTHS] = _clip(rows[2] if window else rows[0], s0, n)
        if window:
            args["lengths_lo"] = _clip(rows[1], s0, n)
        return p._runner("grad", masked, n, window, given, wrt)(args, {**run.symbols, p.tsym: n})

    def backward(self, run: _Run, cotangents: dict, wrt: frozenset[str] | None = None) -> dict[str, np.ndarray]:
        """Gradients of the arguments in `wrt` (None: every param, seq and state init)."""
        p, plan, ops = self.p, self.p.plan, self.ops
        params = [q for q in plan.cell.params + plan.cell.statics if wrt is None or q.name in wrt]  # summed per leaf
        cot = self._cotangents(run, cotangents)
        given = frozenset(k for k in cotangents if k in plan.cell.outputs)  # the others are symbolic zeros
        given = None if len(given) == len(plan.cell.outputs) else given
        truncate = p.truncate
        window = truncate is not None
        L = run.lengths if run.lengths is not None else np.full(self._batch(run), run.T_run, np.int64)
        if window:
            lo, hi = (np.zeros_like(L), np.minimum(L, truncate)) if p.reverse else (np.maximum(L - truncate, 0), L)
            reaches_start = (hi == L) if p.reverse else (lo == 0)
        seqs = [s.name for s in plan.cell.seqs]
        wanted_seqs = [k for k in seqs if wrt is None or k in wrt]
        A = {s: (cot[s] if s in plan.user_states else ops.zeros_like(run.init[s])) for s in plan.cell.state_types}
        grads: dict[str, np.ndarray] = {}
        dxs: dict[str, np.ndarray] = {}
        sp = run.plan
        actions = sp.schedule.actions
        if run.saved is None:  # a second backward of a checkpointed run: the forward's leaf again
            run.checkpoints = {}
            self._prefix(run, None)
        one = len(actions) == 1  # plain BPTT: the residuals stay for another backward
        ck, hand = run.checkpoints, None  # `run` holds what is kept, so that `run.nbytes` is what is held now
        for i in range(sp.schedule.forward, len(actions)):
            kind, a, b = actions[i]
            if kind == RESTORE:
                hand = run.init if a == 0 else ck[a]
            elif kind == DROP:
                del ck[a]
            elif kind == KEEP:
                ck[a] = hand
            elif kind == ADVANCE:
                out = self._step("segment", run, sp.span(a, b), hand)
                hand = {s: out[s] for s in plan.cell.state_types}
                del out
            else:  # a leaf: its forward with residuals (the first one's ran in the forward), then its backward
                if i != sp.schedule.forward:
                    run.start, hand = hand, None
                    run.saved = self._residuals(run, sp.span(a, b), run.start)
                run.peak = max(run.peak, run.nbytes)
                s0, s1 = sp.span(a, b)
                g = self._leaf_grad(run, (s0, s1), run.start, cot, A, given, (L, lo, hi) if window else (L,), wrt)
                if not one:
                    run.saved = run.start = None  # released before the next leaf's forward
                n = s1 - s0
                for q in params:  # the first leaf's arrays are the sums' (nothing else holds them)
                    grads[q.name] = g[q.name] if q.name not in grads else ops.add(grads[q.name], g[q.name])
                for k in wanted_seqs:
                    if k not in dxs:
                        if n == run.arrays[k].shape[0]:  # one leaf over every step: its array as it came
                            dxs[k] = g[k]
                            continue
                        dxs[k] = ops.zeros_like(run.arrays[k])
                    ops.add_into(dxs[k], s0, g[k])
                A = {s: g[s] for s in A}
                del g
        result = {
            q.name: grads[q.name]
            if q.name in grads
            else ops.zeros_like(run.arrays[q.name])
            if q.op == "static"
            else ops.zeros(q.type.shape, p.dtype.numpy)  # type: ignore[union-attr]
            for q in params
        }
        result.update({k: dxs[k] if k in dxs else ops.zeros_like(run.arrays[k]) for k in wanted_seqs})
        for s in plan.user_states:
            if wrt is not None and s not in wrt:
                continue
            d = A[s]
            for k, r in plan.roots.items():
                if r == s and k not in plan.seq_shadows:
                    d = ops.add(d, A[k])
            if window:
                d = ops.mask_rows(d, reaches_start)
            result[s] = d
        return result

    def _batch(self, run: _Run) -> int:
        plan = self.p.plan
        for s in plan.cell.seqs:
            return run.arrays[s.name].shape[1]
        for u in plan.cell.statics:
            return run.arrays[u.name].shape[0]
        return next(iter(run.init.values())).shape[0]

    def _cotangents(self, run: _Run, cotangents: dict) -> dict[str, np.ndarray]:
        plan, p = self.p.plan, self.p
        if not isinstance(cotangents, dict):
            raise ArgumentError(
                f"backward takes a dict of cotangents (output name -> array), got {type(cotangents).__name__}"
            )
        names = list(plan.cell.outputs) + plan.user_states
        out = {}
        for k, v in cotangents.items():
            if k not in names:
                import difflib

                near = difflib.get_close_matches(str(k), names, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ArgumentError(f"cotangent for unknown output {k!r}{hint}; outputs are {names}")
            want = self._out_shape(run, k)
            a = self.ops.cotangent(k, v, p.dtype.numpy)
            if tuple(a.shape) != want:
                raise ArgumentError(f"cotangent {k!r}: expected shape {want} (the output's), got {a.shape}")
            out[k] = a
        for k in names:
            if k not in out:
                out[k] = self.ops.zeros(self._out_shape(run, k), p.dtype.numpy)
        return out

    def _out_shape(self, run: _Run, k: str) -> tuple:
        plan = self.p.plan
        t = plan.cell.outputs[k].type if k in plan.cell.outputs else plan.cell.state_types[k]
        shape = tuple(run.symbols.get(d, d) if isinstance(d, str) else d for d in t.shape)  # type: ignore[union-attr]
        return ((run.T,) + shape) if k in plan.cell.outputs else shape
