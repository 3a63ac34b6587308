"""The GPUs rnncomp compiles for without one at hand: each target's limits (from NVIDIA's CUDA C++
Programming Guide, "Compute Capabilities", and the A100/H100 tuning guides), the device config code
generation uses for it, and how many blocks of a kernel one multiprocessor holds at once (the
calculation of the CUDA occupancy calculator, cuda_occupancy.h)."""

from __future__ import annotations

from dataclasses import dataclass

from .device import STATIC_SHARED_LIMIT, DeviceConfig
from .errors import CudaBackendError


@dataclass(frozen=True)
class Target:
    """One GPU architecture's limits, per multiprocessor (SM) and per block."""

    name: str  # "sm_90": what ptxas's -arch takes
    gpu: str  # the GPUs it stands for
    cc: tuple[int, int]  # compute capability
    sms: int  # multiprocessors of the GPU the table assumes
    shared_per_sm: int  # bytes of shared memory an SM can give its blocks (the largest carveout)
    shared_per_block: int  # bytes a block may have at most (static + dynamic, the opt-in limit)
    sync_ns: float  # an assumed grid-wide sync latency of a full cooperative grid (SYNC_SOURCE)
    regs_per_sm: int = 65536
    regs_per_block: int = 65536
    max_regs_per_thread: int = 255
    reg_unit: int = 256  # registers are allocated per warp, in units of this many
    sub_partitions: int = 4  # an SM's register file is split over its 4 schedulers
    max_threads_per_sm: int = 2048
    max_threads_per_block: int = 1024
    max_blocks_per_sm: int = 32
    shared_reserved: int = 1024  # bytes the system keeps per block (compute capability 8.0 on)
    shared_unit: int = 128  # shared memory is allocated in units of this many bytes
    warp: int = 32
    block_sync_ns: float = 20.0  # an assumed `cuda.syncthreads()` latency (SYNC_SOURCE)

    def device_config(self) -> DeviceConfig:
        """What code generation assumes of this target (as device.device_config() would read from one)."""
        return DeviceConfig(False, self.sms, STATIC_SHARED_LIMIT, 256, 4096, 16, 256, self.shared_per_block)


# Where the sync latencies come from. They are assumptions, not measurements on these GPUs: Zhang et
# al., "A Study of Single and Multi-device Synchronization Methods in Nvidia GPUs" (IPDPS 2020,
# arXiv:2004.05371) benchmarks `grid.sync()` of cooperative grids on P100/V100, at costs of the order
# of microseconds for a grid of a block or more per SM, and a block barrier far cheaper (tens of
# cycles: ~20 ns near 1.5 GHz). The A100 (2 us) and H100 (1.5 us) figures carry that order of
# magnitude over; the paper's tables were not re-read for them. A GPU run is what checks them.
SYNC_SOURCE = (
    "assumed latencies, of the order Zhang et al. (IPDPS 2020, arXiv:2004.05371) measured on P100/V100; "
    "not measured on this target"
)

TARGETS = {
    t.name: t
    for t in (
        Target("sm_80", "A100", (8, 0), 108, 164 * 1024, 163 * 1024, sync_ns=2000.0),
        Target("sm_90", "H100/H200", (9, 0), 132, 228 * 1024, 227 * 1024, sync_ns=1500.0),
    )
}
DEFAULT_TARGET = "sm_90"


def target(name: str) -> Target:
    """The target called `name` ("sm_80", "sm_90"); an error naming the known ones otherwise."""
    t = TARGETS.get(name) if isinstance(name, str) else None
    if t is None:
        known = ", ".join(f"{k} ({v.gpu})" for k, v in TARGETS.items())
        raise CudaBackendError(f"unknown CUDA target {name!r}; the known targets are {known}")
    return t


@dataclass(frozen=True)
class Occupancy:
    """Blocks of a kernel one SM holds at once, and what each limit alone would allow."""

    blocks: int  # resident blocks per SM: the least of `limits`
    limits: dict[str, int]  # "threads", "registers", "shared memory", "blocks" -> blocks per SM
    warps: int  # resident warps per SM

    @property
    def limited_by(self) -> str:
        """The limit that binds (the first of the smallest)."""
        return min(self.limits, key=lambda k: self.limits[k])

    def fraction(self, t: Target) -> float:
        """Resident warps over the most an SM can hold."""
        return self.warps / (t.max_threads_per_sm // t.warp)


def _round_up(x: int, unit: int) -> int:
    return -(-x // unit) * unit


def occupancy(t: Target, threads: int, registers: int, shared: int) -> Occupancy:
    """Resident blocks per SM of a kernel of `threads` threads per block, `registers` per thread and
    `shared` bytes of shared memory per block (static + dynamic). 0 blocks: it cannot launch."""
    warps = -(-threads // t.warp)
    limits: dict[str, int] = {"blocks": t.max_blocks_per_sm}
    limits["threads"] = (t.max_threads_per_sm // t.warp) // warps if threads <= t.max_threads_per_block else 0
    per_warp = _round_up(max(registers, 1) * t.warp, t.reg_unit)
    per_block = per_warp * _round_up(warps, t.sub_partitions)  # the hardware's per-block check
    if registers > t.max_regs_per_thread or per_block > t.regs_per_block:
        limits["registers"] = 0
    else:
        limits["registers"] = (t.regs_per_sm // t.sub_partitions // per_warp) * t.sub_partitions // warps
    if shared > t.shared_per_block:
        limits["shared memory"] = 0
    else:
        need = _round_up(shared + t.shared_reserved, t.shared_unit)
        limits["shared memory"] = t.shared_per_sm // need
    blocks = min(limits.values())
    return Occupancy(blocks, limits, blocks * warps)


__all__ = ["DEFAULT_TARGET", "SYNC_SOURCE", "TARGETS", "Occupancy", "Target", "occupancy", "target"]
