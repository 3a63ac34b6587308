"""Training: `vjp` and `value_and_grad` over the compiled forward and backward programs.

The sequence is cut into segments in processing order: one segment for plain BPTT (the forward
keeps every step's residuals), several for `checkpoint=k` (the forward keeps only the states at
segment starts; each segment's residuals are recomputed just before its backward). `truncate=k`
gives each row a window of its last k processed steps; gradient flows inside it only (Theano's
truncate_gradient, per row when `lengths` are given). Between program calls the glue works through
`self.ops` (rnncomp.array_ops): NumPy, or the backend's device operations when the call's arrays
are device arrays, so that they stay on the GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ir import ArgumentError
from passes.roles import cotangent, dstate

from .arguments import LENGTHS, is_device_array
from .array_ops import HOST
from .backends.registry import device_ops


@dataclass
class _Run:
    """What the forward of one `vjp` call leaves for its backward."""

    segments: list[tuple[int, int]]  # in processing order
    boundaries: list[dict[str, np.ndarray]]  # every normalised state at each segment's start
    saved: dict[str, np.ndarray] | None  # plain BPTT: the whole sequence's residuals
    arrays: dict[str, np.ndarray]
    lengths: np.ndarray | None
    T: int
    T_run: int
    symbols: dict[str, int]

    @property
    def nbytes(self) -> int:
        """Bytes this forward keeps for the backward pass (residuals, or checkpointed states)."""
        saved = sum(a.nbytes for a in (self.saved or {}).values())
        return saved + sum(a.nbytes for b in self.boundaries[1:] for a in b.values())


def segment_size(checkpoint, T: int) -> int:
    if checkpoint is None:
        return max(T, 1)
    if checkpoint == "sqrt":
        return max(1, math.isqrt(T - 1) + 1 if T > 1 else 1)
    return int(checkpoint)


def segments(T: int, size: int, reverse: bool) -> list[tuple[int, int]]:
    """[start, stop) ranges covering [0, T) in processing order."""
    segs = [(s, min(s + size, T)) for s in range(0, T, size)] or [(0, 0)]
    return segs[::-1] if reverse else segs


def _clip(lengths: np.ndarray, s0: int, n: int) -> np.ndarray:
    return np.clip(lengths - s0, 0, n).astype(np.int64)


class Trainer:
    """Runs the training programs of a CompiledProgram (see rnncomp.compiler)."""

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

    def forward(self, b, lengths) -> tuple[dict[str, np.ndarray], _Run]:
        p, plan = self.p, self.p.plan
        masked = lengths is not None
        T_run = (int(lengths.max()) if lengths.size else 0) if masked else b.T
        size = segment_size(p.checkpoint, T_run)
        segs = segments(T_run, size, p.reverse)
        seqs = [s.name for s in plan.cell.seqs]
        states = self.init_states(b)
        run = _Run(segs, [], None, b.arrays, lengths, b.T, T_run, b.symbols)
        outputs = {k: [] for k in plan.cell.outputs}
        one = len(segs) == 1 and p.checkpoint is None
        for s0, s1 in segs:
            run.boundaries.append(states)
            args = self._args(b.arrays, seqs, s0, s1, states, lengths)
            kind = "train" if one else "segment"
            out = p._runner(kind, masked, s1 - s0)(args, {**b.symbols, p.tsym: s1 - s0})
            states = {s: out[s] for s in plan.cell.state_types}
            for k in outputs:
                outputs[k].append((s0, out[k]))
            if one:
                run.saved = {k: out[k] for k in plan.saved()}
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

    def _args(self, arrays, seqs, s0, s1, states, lengths) -> dict[str, np.ndarray]:
        args = {k: v for k, v in arrays.items() if k not in seqs and k not in self.p.plan.cell.state_types}
        args.update({k: arrays[k][s0:s1] for k in seqs})
        args.update(states)
        if lengths is not None:
            args[LENGTHS] = _clip(lengths, s0, s1 - s0)
        return args

    def backward(self, run: _Run, cotangents: dict, wrt: frozenset[str] | None = None) -> dict[str, np.ndarray]:
        """Gradients of the arguments in `wrt` (None: every param, seq and state init)."""
        p, plan, ops = self.p, self.p.plan, self.ops
        params = [q for q in plan.cell.params if wrt is None or q.name in wrt]
        cot = self._cotangents(run, cotangents)
        given = frozenset(k for k in cotangents if k in plan.cell.outputs)  # the others are symbolic zeros
        given = None if len(given) == len(plan.cell.outputs) else given
        truncate = p.truncate
        window = truncate is not None
        masked = run.lengths is not None or window
        L = run.lengths if run.lengths is not None else np.full(self._batch(run), run.T_run, np.int64)
        if window:
            lo, hi = (np.zeros_like(L), np.minimum(L, truncate)) if p.reverse else (np.maximum(L - truncate, 0), L)
            reaches_start = (hi == L) if p.reverse else (lo == 0)
        seqs = [s.name for s in plan.cell.seqs]
        wanted_seqs = [k for k in seqs if wrt is None or k in wrt]
        A = {
            s: (cot[s] if s in plan.user_states else ops.zeros_like(run.boundaries[0][s]))
            for s in plan.cell.state_types
        }
        grads: dict[str, np.ndarray] = {}
        dxs: dict[str, np.ndarray] = {}
        for i in range(len(run.segments) - 1, -1, -1):
            s0, s1 = run.segments[i]
            n = s1 - s0
            states = run.boundaries[i]
            args = self._args(run.arrays, seqs, s0, s1, states, run.lengths if run.lengths is not None else None)
            sym = {**run.symbols, p.tsym: n}
            if run.saved is not None:
                saved = run.saved
            else:
                out = p._runner("train", run.lengths is not None, n)(args, sym)
                saved = {k: out[k] for k in plan.saved()}
            args.update(saved)
            args.update({cotangent(k): cot[k][s0:s1] for k in plan.cell.outputs})
            args.update({dstate(s): A[s] for s in A})
            if masked:
                args[LENGTHS] = _clip(hi if window else L, s0, n)
            if window:
                args["lengths_lo"] = _clip(lo, s0, n)
            g = p._runner("grad", masked, n, window, given, wrt)(args, sym)
            for q in params:  # the first segment's arrays are the sums' (nothing else holds them)
                grads[q.name] = g[q.name] if q.name not in grads else ops.add(grads[q.name], g[q.name])
            for k in wanted_seqs:
                if k not in dxs:
                    if n == run.arrays[k].shape[0]:  # one segment over every step: its array as it came
                        dxs[k] = g[k]
                        continue
                    dxs[k] = ops.zeros_like(run.arrays[k])
                ops.add_into(dxs[k], s0, g[k])
            A = {s: g[s] for s in A}
        result = {
            q.name: grads[q.name] if q.name in grads else ops.zeros(q.type.shape, p.dtype.numpy)  # type: ignore[union-attr]
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
        return next(iter(run.boundaries[0].values())).shape[0]

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
