"""What a compiled program shows without running a call: the IR of every stage, the generated source,
GPU resources, and the memory and checkpoint schedule of a training call (a mixin of CompiledProgram,
whose variants it reads)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ir import ArgumentError

from .checkpointing import ScheduleView, memory_report


class Inspection:
    """`ir`, `source`, `resources`, `stages`, `memory`, `schedule` of CompiledProgram."""

    def memory(self, /, T: int, **dims: int) -> dict[str, float]:
        """Bytes the backward pass needs for a length T (bind other dims, e.g. B=32).

        `kept`: held from the forward until the backward (every step's residuals, or the checkpointed
        states and the forward's last leaf: its residuals and the state it starts from); `peak`: the
        most held at any time (checkpoints plus one live leaf; within the budget of
        `checkpoint="64MiB"`); `recompute`: forward runs per step (1.0 for plain BPTT, about 2 for
        `checkpoint=k`); `per_step`: residual bytes of one step; `budget`: the budget's bytes, if
        one was given. Inference keeps nothing. With unroll="auto", the plan of the mode picked last
        (in units of its iterations). Example: `prog.memory(T=1000, B=32)["peak"]`.
        """
        plan = self.plan
        types = [*plan.saved().values(), *plan.cell.state_types.values()]
        needed = sorted({d for t in types for d in t.shape if isinstance(d, str)})
        for name, v in {"T": T, **dims}.items():
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ArgumentError(f"memory(): {name}={v!r} must be an int >= 0")
        unknown = sorted(set(dims) - set(needed))
        if unknown:
            raise ArgumentError(f"memory(): unknown dim {unknown[0]!r}; the dims to bind are {needed}")
        missing = [d for d in needed if d not in dims]
        if missing:
            given = ", ".join(f"{d}=..." for d in missing)
            raise ArgumentError(f"memory(): dim {missing[0]!r} is not bound; pass it too, e.g. memory(T={T}, {given})")
        return memory_report(self._plan_of(int(T), {k: int(v) for k, v in dims.items()}))

    def schedule(self, /, T: int, **dims: int) -> ScheduleView:
        """The checkpoint schedule of a training call of length T (bind other dims, e.g. B=32): which steps
        are stored, how many times each step's forward runs, the bytes kept and at peak. Printing it shows
        a summary; `.runs` (per step), `.stored` and `.actions` hold the details."""
        self.memory(T, **dims)  # the same checks of T and dims
        what = {None: "plain BPTT", "sqrt": 'checkpoint="sqrt"'}.get(self.checkpoint, f"checkpoint={self.checkpoint!r}")
        return ScheduleView(self._plan_of(int(T), {k: int(v) for k, v in dims.items()}), what)

    def _plan_of(self, T: int, dims: dict):
        """The schedule a training call of T and dims runs: unroll="auto"'s of the mode picked last."""
        planner = self._auto.child(self._auto.last)._planner if self._auto else self._planner
        return planner.plan(T, dims)

    def ir(self, stage: str = "hoist", lengths: bool = False, T: int | None = None, grad: bool = False) -> str:
        """The text of a stage: "cell", "unroll", "grad", "grad_forward", or any pipeline pass by name.

        A pass name refers to the forward's pipeline, or the backward's with `grad=True`
        ("simplify#2" for a repeated pass).
        """
        if stage == "cell":
            return str(self.cell)
        stages = self.stages(lengths, T, grad or stage == "grad", train=stage == "grad_forward")
        if stage not in stages:
            raise ArgumentError(f"argument 'stage': unknown stage {stage!r}; stages: {['cell'] + list(stages)}")
        return str(stages[stage])

    def source(self, lengths: bool = False, T: int | None = None, grad: bool = False) -> str:
        """The generated source of this program's backend (numba-cpu, numba-cuda) for one variant."""
        kind = "grad" if grad else "infer"
        runner = self._variant(kind, lengths, T, window=grad and self.truncate is not None)[2]
        src = getattr(runner, "source", None)
        if src is None:
            raise ArgumentError(f"backend {self.backend!r} generates no source (it interprets the IR); use numba-cpu")
        return src

    def resources(
        self,
        target: str = "sm_90",
        lengths: bool = False,
        T: int | None = None,
        grad: bool = False,
        dims: dict[str, int] | None = None,
    ):
        """What each numba-cuda kernel of one variant uses on a GPU of `target` ("sm_80": A100,
        "sm_90": H100/H200), compiled for it here, without a GPU: registers, spills, shared memory,
        threads per block, resident blocks per SM, and for a persistent kernel whether its grid can be
        resident, its grid-wide syncs per step and a per-step cost estimate (syncs at assumed latencies,
        FLOPs, bytes moved) at `dims` (default B=4). Printing it gives a table; needs the compiler wheels
        (`pip install 'rnncomp[cuda-check]'`). With backend_options persistent=True, a persistent kernel
        whose grid cannot be resident is an error naming the limit it exceeds."""
        if self.backend != "numba-cuda":
            raise ArgumentError(
                f"resources(): backend {self.backend!r} runs no CUDA kernels; compile with backend='numba-cuda'"
            )
        from .backends.numba_cuda.resources import resources

        kind = "grad" if grad else "infer"
        prog = self._variant(kind, lengths, T, window=grad and self.truncate is not None, build=False)[0]
        return resources(prog, self.dtype, target, self.backend_options.get("persistent"), dims)

    def stages(
        self, lengths: bool = False, T: int | None = None, grad: bool = False, train: bool = False
    ) -> dict[str, Any]:
        """Every stage's IR object, in pipeline order (of the backward with `grad`, training forward with `train`)."""
        kind = "grad" if grad else "train" if train else "infer"
        return dict(self._variant(kind, lengths, T, window=grad and self.truncate is not None)[1])
