"""The per-step cost estimate of a persistent kernel (backends/numba_cuda/cost.py) against figures
counted by hand for the LSTM example (I=16, H=32: gates 4H=128), generated for sm_80/sm_90 without
compiling anything (the printed report, which needs the compiler wheels, is tested in
test_cuda_targets.py)."""

from dataclasses import replace

import pytest

import rnncomp as rc
from ir import ArgumentError
from rnncomp.backends.numba_cuda import targets
from rnncomp.backends.numba_cuda.codegen import generate_with_context
from tests.support import cell_of


def persistent_kernel(
    name: str, unroll="loop", kind: str = "infer", lengths: bool = False, tgt: str = "sm_90", grid: bool = False
):
    """The persistent kernel of an example: one block where its weights fit one (grid=True: the cooperative grid)."""
    p = rc.compile(cell_of(name), length="T", unroll=unroll, backend="numpy", dtype="float32")
    prog = p._variant(kind, lengths, 2)[0]
    cfg = targets.target(tgt).device_config()
    _, ctx = generate_with_context(prog, p.dtype, replace(cfg, block_threads=0) if grid else cfg)
    loops = [k for k in ctx.kernels if k.cost is not None]  # a k-unrolled loop: the k-step loop, then the rest
    return max(loops, key=lambda k: k.steps)


def figures(k, tgt: str = "sm_90", B: int = 4):
    t = targets.target(tgt)
    return k.cost.at({"B": B}, t.sync_ns, t.block_sync_ns)


# The LSTM's body, per step: z = xWx[t] + h @ Wh (a phase: the matmul), then one fused phase over
# [B, 32]: 2 adds over [B, 128] (+ xWx[t], + b) and 9 ops over [B, 32] (3 sigmoid, 2 tanh, 3 mul, 1 add).
H, G, F32 = 32, 128, 4


def test_the_lstm_step_counted_by_hand():
    B = 4
    f = figures(persistent_kernel("lstm"), "sm_90", B)
    flops = 2 * B * H * G + 2 * B * G + 9 * B * H
    assert flops == 34944 and f.flops == flops
    matmul = (B * H + B * G) * F32  # read h, write h @ Wh (Wh is read from shared memory)
    fused = (B * G + B * G + G + B * H) * F32  # read xWx[t], h @ Wh, b, c
    fused += (B * H + 2 * B * H) * F32  # write c, and h twice (the state and y[t])
    assert f.global_bytes == matmul + fused == 9216
    assert f.shared_bytes == B * H * G * F32  # every output reads its column of Wh
    assert f.grid_syncs == 0 and f.block_syncs == 2  # one block (Wh: 16 KB): a block barrier after each phase
    assert f.sync_ns == 2 * 20.0
    grid = figures(persistent_kernel("lstm", grid=True), "sm_90", B)  # the cooperative grid: the same work
    assert (grid.flops, grid.global_bytes, grid.shared_bytes) == (f.flops, f.global_bytes, f.shared_bytes)
    assert grid.grid_syncs == 2 and grid.block_syncs == 0 and grid.sync_ns == 2 * 1500.0
    assert figures(persistent_kernel("lstm", tgt="sm_80", grid=True), "sm_80", B).sync_ns == 2 * 2000.0


def test_the_figures_scale_with_the_batch():
    k = persistent_kernel("lstm")
    one, four = figures(k, B=1), figures(k, B=4)
    assert four.flops == 4 * one.flops and four.shared_bytes == 4 * one.shared_bytes
    assert four.global_bytes - one.global_bytes == 3 * (one.global_bytes - G * F32)  # b is read once per step
    assert four.sync_ns == one.sync_ns


def test_a_k_unrolled_loop_costs_the_same_per_step():
    k = persistent_kernel("lstm", unroll=2)
    loop, two = figures(persistent_kernel("lstm")), figures(k)
    assert k.steps == 2
    assert two.flops == loop.flops and two.shared_bytes == loop.shared_bytes and two.block_syncs == loop.block_syncs


def test_lengths_add_the_selects():
    plain, masked = figures(persistent_kernel("lstm")), figures(persistent_kernel("lstm", lengths=True))
    assert masked.flops == plain.flops + 3 * 4 * H  # select_active of h, c and y[t]


def test_the_backward_has_an_estimate():
    f = figures(persistent_kernel("lstm", kind="grad"))
    assert f.flops > 0 and f.global_bytes > 0 and f.block_syncs >= 1 and f.grid_syncs == 0


def test_bad_dims_are_named():
    prog = rc.compile(cell_of("elman"), length="T", backend="numba-cuda")
    with pytest.raises(ArgumentError, match=r"argument 'dims' of resources\(\): expected a dict of dim names"):
        prog.resources(dims={"B": 0})
    with pytest.raises(ArgumentError, match=r"argument 'dims' of resources\(\)"):
        prog.resources(dims=[4])
