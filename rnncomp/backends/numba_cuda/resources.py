"""What each kernel of a program uses on a target GPU, and what follows from it: registers, spills,
shared memory and threads per block (ptx.py, from ptxas), resident blocks per multiprocessor
(targets.py's table), and, for a persistent kernel, whether its cooperative grid can be resident at
once (a one-block kernel: whether its block fits an SM), how many grid-wide syncs and block barriers
one time step performs, and its per-step cost estimate (cost.py). `prog.resources(target=...)` and
`rnncomp dump --stage numba-cuda --resources` print it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ir import ArgumentError, Program
from ir.dtypes import DType

from .cost import Figures, StepCost
from .errors import CudaBackendError
from .ptx import Compiled, compile_program
from .targets import SYNC_SOURCE, Occupancy, Target, occupancy, target

DEFAULT_DIMS = {"B": 4}  # the dims the per-step estimate is printed at (B <= 4: the persistent kernel's regime)


@dataclass(frozen=True)
class KernelResources:
    """One kernel on one target."""

    name: str
    what: str  # the IR node it computes, or its docstring's summary
    registers: int  # per thread
    spill_stores: int  # bytes per thread
    spill_loads: int
    stack: int  # bytes of stack frame per thread
    static_shared: int  # bytes per block
    dynamic_shared: int  # bytes per block, set at launch
    threads: int  # per block
    occupancy: Occupancy
    blocks: int = 0  # a persistent kernel's cooperative grid (0: a data-sized grid)
    grid_syncs: float = 0.0  # a persistent kernel's grid-wide syncs per time step
    steps: int = 1  # time steps per loop iteration
    cost: StepCost | None = None  # a persistent kernel's per-step cost model
    one_block: bool = False  # a persistent kernel of one block: block barriers, no grid sync

    def estimate(self, t: Target, dims: dict[str, int]) -> Figures | None:
        """A persistent kernel's per-step figures at `dims` (None: not persistent)."""
        if self.cost is None:
            return None
        return self.cost.at(dims, t.sync_ns, t.block_sync_ns)

    @property
    def block_syncs(self) -> float:
        """A persistent kernel's block barriers per time step (between the phases of a one-block kernel)."""
        return self.cost.block_syncs / self.cost.steps if self.cost is not None else 0.0

    @property
    def persistent(self) -> bool:
        return self.blocks > 0

    @property
    def spills(self) -> int:
        return self.spill_stores + self.spill_loads

    def resident(self, t: Target) -> bool:
        """Whether the whole cooperative grid fits the GPU at once (always True for other kernels)."""
        return not self.persistent or self.occupancy.blocks * t.sms >= self.blocks


@dataclass(frozen=True)
class Resources:
    """Every kernel of one program's module on one target; printing gives a table."""

    program: str
    dtype: DType
    target: Target
    kernels: list[KernelResources]
    dims: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_DIMS))  # for the per-step estimates

    def persistent(self) -> list[KernelResources]:
        return [k for k in self.kernels if k.persistent]

    def __str__(self) -> str:
        t = self.target
        head = (
            f"program {self.program} ({self.dtype}) on {t.name} ({t.gpu}, {t.sms} SMs: {t.regs_per_sm} registers, "
            f"{t.shared_per_sm // 1024} KB shared memory, {t.max_threads_per_sm} threads, "
            f"{t.max_blocks_per_sm} blocks per SM)"
        )
        cols = ("kernel", "regs", "spill st/ld", "stack", "smem st+dyn", "threads", "blocks/SM", "occupancy", "limit")
        rows = [cols]
        for k in self.kernels:
            occ = k.occupancy
            rows.append(
                (
                    k.name,
                    str(k.registers),
                    f"{k.spill_stores}/{k.spill_loads}",
                    str(k.stack),
                    f"{k.static_shared}+{k.dynamic_shared}",
                    str(k.threads),
                    str(occ.blocks),
                    f"{occ.fraction(t):.0%}",
                    occ.limited_by,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
        lines = [head]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        for k in self.kernels:
            lines.append(f"{k.name}: {k.what}")
            if k.one_block:
                state = "fits an SM" if k.resident(t) else f"does NOT fit an SM (limited by {k.occupancy.limited_by})"
                lines.append(
                    f"  persistent: one block x {k.threads} threads (an ordinary launch), {state}; "
                    f"{k.grid_syncs:g} grid-wide sync(s) per time step, {k.block_syncs:g} block barrier(s)"
                )
                lines.append(f"  {self.step_text(k)}")
            elif k.persistent:
                state = "resident" if k.resident(t) else "NOT resident"
                lines.append(
                    f"  persistent: a cooperative grid of {k.blocks} blocks x {k.threads} threads, {state} "
                    f"({k.occupancy.blocks} block(s)/SM x {t.sms} SMs = {k.occupancy.blocks * t.sms}); "
                    f"{k.grid_syncs:g} grid-wide sync(s) per time step"
                )
                lines.append(f"  {self.step_text(k)}")
        if self.persistent():
            lines.append(
                f"per-step estimates: {SYNC_SOURCE}; FLOPs and bytes from the IR (backends/numba_cuda/cost.py)"
            )
        return "\n".join(lines)

    def step_text(self, k: KernelResources) -> str:
        """The per-step estimate of persistent kernel `k`, at this report's dims."""
        assert k.cost is not None
        missing = sorted(k.cost.symbols() - set(self.dims))
        if missing:
            return f"per step: an estimate needs a value of dim(s) {', '.join(missing)}"
        f = k.estimate(self.target, self.dims)
        assert f is not None
        at = ", ".join(f"{d}={v}" for d, v in self.dims.items() if d in k.cost.symbols()) or "these sizes"
        parts = [f"{f.grid_syncs:g} grid sync(s) x {self.target.sync_ns / 1000:g} us"] if f.grid_syncs else []
        if f.block_syncs:
            parts.append(f"{f.block_syncs:g} block sync(s) x {self.target.block_sync_ns:g} ns")
        syncs = " + ".join(parts) or "no syncs"
        return (
            f"per step at {at} (estimate): {syncs} = {f.sync_ns / 1000:.3g} us of syncs; {f.flops:,.0f} FLOPs; "
            f"{f.global_bytes:,.0f} bytes of global memory moved, {f.shared_bytes:,.0f} read from shared memory"
        )


def of_kernel(c: Compiled) -> KernelResources:
    k, t, use = c.kernel, c.target, c.use
    shared = use.static_shared + k.dynamic_shared
    what = f"node {k.owner}" if k.owner else k.doc
    return KernelResources(
        k.name,
        what,
        use.registers,
        use.spill_stores,
        use.spill_loads,
        use.stack,
        use.static_shared,
        k.dynamic_shared,
        k.threads,
        occupancy(t, k.threads, use.registers, shared),
        k.blocks,
        k.grid_syncs / k.steps if k.blocks else 0.0,
        k.steps,
        k.cost,
        k.one_block,
    )


def resources(
    prog: Program, dtype: DType, target_name: str, mode: bool | None = None, dims: dict[str, int] | None = None
) -> Resources:
    """Compile every kernel of `prog` for the target and report what each uses, with the per-step
    estimates of persistent kernels at `dims` (default B=4). With mode=True (persistent=True), a
    persistent kernel whose grid cannot be resident is an error naming the limit it exceeds."""
    if dims is not None and (
        not isinstance(dims, dict) or not all(isinstance(k, str) and type(v) is int and v >= 1 for k, v in dims.items())
    ):
        raise ArgumentError(
            f"argument 'dims' of resources(): expected a dict of dim names to positive ints (e.g. {{'B': 4}}), "
            f"got {dims!r}"
        )
    t = target(target_name)
    kernels = [of_kernel(c) for c in compile_program(prog, dtype, t, mode)]
    report = Resources(prog.name, dtype, t, kernels, dict(DEFAULT_DIMS if dims is None else dims))
    if mode is True:
        for k in report.persistent():
            if not k.resident(t):
                raise CudaBackendError(not_resident(k, t))
    return report


def not_resident(k: KernelResources, t: Target) -> str:
    """Why a persistent kernel's grid cannot be resident on `t`: the limit that binds, with its figures."""
    occ, limit = k.occupancy, k.occupancy.limited_by
    shared = k.static_shared + k.dynamic_shared
    detail = {
        "registers": f"{k.registers} registers per thread x {k.threads} threads (an SM has {t.regs_per_sm})",
        "shared memory": f"{shared} bytes of shared memory per block (an SM has {t.shared_per_sm}, a block "
        f"may have {t.shared_per_block})",
        "threads": f"{k.threads} threads per block (an SM runs {t.max_threads_per_sm}, a block at most "
        f"{t.max_threads_per_block})",
        "blocks": f"at most {t.max_blocks_per_sm} blocks per SM",
    }[limit]
    if k.one_block:
        return (
            f"backend option persistent=True, but kernel {k.name} ({k.what}) is one block of {k.threads} threads, and "
            f"an SM of {t.name} ({t.gpu}) cannot hold it, limited by {limit}: {detail}"
        )
    return (
        f"backend option persistent=True, but kernel {k.name} ({k.what}) needs a cooperative grid of {k.blocks} "
        f"blocks resident at once, and {t.name} ({t.gpu}, {t.sms} SMs) holds {occ.blocks * t.sms}: "
        f"{occ.blocks} per SM, limited by {limit}: {detail}"
    )


__all__ = ["KernelResources", "Resources", "not_resident", "resources"]
