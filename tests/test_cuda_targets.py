"""Every numba-cuda kernel compiled for real GPUs (sm_80: A100, sm_90: H100/H200) on a machine without
one: NVVM types and lowers each kernel to PTX, ptxas assembles it, and what it uses is checked against
the targets' limits (backends/numba_cuda/ptx.py, resources.py, targets.py).

Needs the compiler wheels (`pip install 'rnncomp[cuda-check]'`: nvidia-nvvm, nvidia-cuda-nvrtc,
nvidia-cuda-nvcc); without them the module is skipped, with the message naming what to install
(`RNNCOMP_REQUIRE_CUDA_CHECK=1`, as .ci/run sets, makes that a failure instead).

The matrix: every example x unroll mode (loop, k=2, full) x dtype x lengths or not x target, each case
compiling the inference forward, the training forward and the backward, each module holding the
per-step kernels and, where a loop is, its persistent kernel (the per-step kernels are its fallback).
That is 288 cases (31 of them took 6.8 CPU minutes, 15 minutes at a load of 5 on two cores), so by
default 14 run: every example x every kind, with lengths, at loop, float32, sm_90 (those the no-spill
test reads), then lstm at k=2 in float64 with lengths and narx (two delays) fully unrolled in float32
without, both at sm_80. `RNNCOMP_CUDA_MATRIX=full` runs all of it. Results are kept per kernel for
the session (and in the cache folder).
"""

import itertools
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import rnncomp as rc
from ir import ArgumentError
from ir.dtypes import as_dtype
from rnncomp import Param, Seq, State
from rnncomp.backends.numba_cuda import CudaBackendError, CudaCompileError, ptx, targets, toolchain
from rnncomp.backends.numba_cuda.codegen import generate_with_context
from rnncomp.backends.numba_cuda.resources import resources
from tests.support import cell_of

try:
    toolchain.check()
except CudaBackendError as e:
    if os.environ.get("RNNCOMP_REQUIRE_CUDA_CHECK") == "1":
        raise
    pytest.skip(str(e), allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [
    "elman",
    "lstm",
    "gru",
    "three_node",
    "narx",
    "stacked_lstm",
    "layernorm_lstm",
    "awd_lstm",
    "diagonal_rnn",
    "mingru",
    "minlstm",
    "qrnn",
    "conditioned_gru",
]
UNROLLS = ["loop", 2, "full"]
KINDS = ("infer", "train", "grad")
T_FULL = 2  # a full unroll's length (each step's kernels are the same code at another step index)


def _cases() -> list[tuple]:
    """(example, unroll, dtype, lengths, target) of this run (see the module's docstring)."""
    full = list(itertools.product(EXAMPLES, UNROLLS, ["float32", "float64"], [False, True], ["sm_80", "sm_90"]))
    if os.environ.get("RNNCOMP_CUDA_MATRIX") == "full":
        return full
    chosen = [(name, "loop", "float32", True, "sm_90") for name in EXAMPLES]
    chosen += [("lstm", 2, "float64", True, "sm_80"), ("narx", "full", "float32", False, "sm_80")]
    return chosen


CASES = _cases()
_compiled: dict[tuple, list] = {}


@pytest.fixture(scope="module", autouse=True)
def _cache_folder(tmp_path_factory):
    """A fresh cache folder: every kernel is compiled in this run (then kept for the session)."""
    old = os.environ.get("RNNCOMP_CACHE_DIR")
    os.environ["RNNCOMP_CACHE_DIR"] = str(tmp_path_factory.mktemp("rnncomp-ptx-cache"))
    yield
    if old is None:
        del os.environ["RNNCOMP_CACHE_DIR"]
    else:
        os.environ["RNNCOMP_CACHE_DIR"] = old


def programs(cell: rc.Cell, unroll, dtype: str, lengths: bool) -> list[ptx.Job]:
    """The final programs of the inference forward, training forward and backward."""
    p = rc.compile(cell, length="T", unroll=unroll, backend="numpy", dtype=dtype)
    return [ptx.Job(p._variant(kind, lengths, T_FULL)[0], p.dtype) for kind in KINDS]


def compiled(name: str, unroll, dtype: str, lengths: bool, tgt: str) -> list[list[ptx.Compiled]]:
    key = (name, unroll, dtype, lengths, tgt)
    if key not in _compiled:
        _compiled[key] = ptx.compile_programs(programs(cell_of(name), unroll, dtype, lengths), targets.target(tgt))
    return _compiled[key]


def test_the_matrix_holds_every_example():
    """Every examples/NAME.py that defines a cell called NAME (a new example joins the matrix)."""
    found = {
        f.stem
        for f in (ROOT / "examples").glob("*.py")
        if re.search(rf"^(def {f.stem}\(|{f.stem} = )", f.read_text(encoding="utf-8"), re.M)
    }
    assert found == set(EXAMPLES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_every_kernel_compiles_and_assembles(case):
    name, unroll, dtype, lengths, tgt = case
    t = targets.target(tgt)
    for kind, kernels in zip(KINDS, compiled(*case)):
        assert kernels, kind
        for c in kernels:
            use = c.use
            assert 0 < use.registers <= t.max_regs_per_thread, (kind, c.kernel.name, use)
            assert use.static_shared <= 48 * 1024, (kind, c.kernel.name, use)
            if c.kernel.launch.startswith("grid_gemm"):  # a tiled GEMM stages two TILE x TILE tiles
                assert use.static_shared == 2 * 16 * 16 * as_dtype(dtype).numpy.itemsize
        loops = [c for c in kernels if c.kernel.blocks]
        per_step = [c for c in kernels if not c.kernel.blocks]
        assert per_step
        if unroll != "full":  # a loop: its persistent kernel, its per-step kernels the fallback
            assert loops, kind
            for c in loops:  # the examples' weights fit one block: one block of 512 threads, no grid sync
                k = c.kernel
                assert k.one_block and k.blocks == 1 and k.grid_syncs == 0 and k.threads == 512, (kind, k.name)
                fits = targets.occupancy(t, k.threads, c.use.registers, c.use.static_shared + k.dynamic_shared)
                assert k.cost.block_syncs >= 1 and fits.blocks >= 1, (kind, k.name, c.use)


def test_no_kernel_of_the_examples_spills_in_float32_on_sm_90():
    spilled = [
        (case, c.kernel.name, c.use)
        for case in CASES
        if case[2] == "float32" and case[4] == "sm_90"
        for kernels in compiled(*case)
        for c in kernels
        if c.use.spill_stores or c.use.spill_loads or c.use.stack
    ]
    assert not spilled


def test_static_shared_memory_read_from_the_ptx_is_what_ptxas_allocates(tmp_path):
    """A kernel without a grid sync assembles whole (not relocatable), where ptxas itself reports its shared memory."""
    job = programs(cell_of("lstm"), "loop", "float32", True)[0]
    gen, ctx = generate_with_context(job.prog, job.dtype, targets.target("sm_90").device_config())
    gemm = next(k for k in ctx.kernels if k.launch.startswith("grid_gemm"))
    (use,) = [c.use for c in compiled("lstm", "loop", "float32", True, "sm_90")[0] if c.kernel.name == gemm.name]
    module = tmp_path / "module.py"
    module.write_text(gen.source)
    kernels = [{"name": gemm.name, "args": ptx.arg_types(ctx, gemm)}]
    (result,) = ptx._run_worker({"cc": [9, 0], "modules": [{"module": str(module), "kernels": kernels}]})[0]
    (tmp_path / "k.ptx").write_text(result["ptx"])
    whole = [toolchain.find_ptxas(), "-v", "-arch=sm_90", str(tmp_path / "k.ptx"), "-o", str(tmp_path / "k.cubin")]
    done = subprocess.run(whole, capture_output=True, text=True, check=True)
    assert use.static_shared == 2048 and f"{use.static_shared} bytes smem" in done.stderr, done.stderr


# ---------------------------------------------------------------- resources


def test_occupancy_follows_the_occupancy_calculator():
    """Figures of NVIDIA's occupancy calculator for compute capability 9.0."""
    t = targets.target("sm_90")
    assert targets.occupancy(t, 256, 32, 0).blocks == 8  # 64 warps: full
    assert targets.occupancy(t, 256, 34, 0).blocks == 6  # 1280 registers a warp: 12 warps a scheduler
    assert targets.occupancy(t, 256, 64, 0).blocks == 4
    assert targets.occupancy(t, 256, 255, 0).blocks == 1
    assert targets.occupancy(t, 1024, 32, 0).blocks == 2 and targets.occupancy(t, 1024, 32, 0).limited_by == "threads"
    occ = targets.occupancy(t, 128, 16, 48 * 1024)  # 49 KB a block with the reserved 1 KB: 4 of them in 228 KB
    assert occ.blocks == 4 and occ.limited_by == "shared memory"
    assert targets.occupancy(t, 32, 16, 0).limits["blocks"] == 32 and targets.occupancy(t, 32, 16, 0).blocks == 32
    assert targets.occupancy(t, 256, 16, 228 * 1024).blocks == 0  # over what a block may have
    assert targets.occupancy(t, 2048, 16, 0).blocks == 0  # over 1024 threads a block


def _elman(I: int, H: int) -> rc.Cell:  # noqa: E741
    @rc.cell(name="elman")
    def elman(x: Seq["B", I], h: State["B", H], W: Param[I, H], U: Param[H, H], b: Param[H]):
        return {"h": rc.tanh(x @ W + h @ U + b), "y": h}

    return elman


def _sized(name: str, I: int, H: int) -> rc.Cell:  # noqa: E741
    from benchmarks.cells import gru_cell, lstm_cell
    from tests.hand_rnns import load_example

    makers = {
        "lstm": lstm_cell,
        "gru": gru_cell,
        "elman": _elman,
        "layernorm_lstm": load_example("layernorm_lstm").make_layernorm_lstm,
    }
    return makers[name](I, H)


CONFIGS = {"S": (32, 32), "M": (128, 256), "P": (512, 512)}  # benchmarks/lstm_gpu.py's (I, H); B is a runtime dim


@pytest.mark.parametrize("tgt", list(targets.TARGETS))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_persistent_kernel_is_resident_at_configs_s_m_p(config, tgt):
    """The persistent kernels of the inference forward, training forward and backward of the LSTM,
    GRU, Elman and LayerNorm-LSTM at benchmarks/lstm_gpu.py's sizes: each grid is resident."""
    I, H = CONFIGS[config]  # noqa: E741
    t = targets.target(tgt)
    seen = 0
    for name in ("lstm", "gru", "elman", "layernorm_lstm"):
        for job in programs(_sized(name, I, H), "loop", "float32", False):
            report = resources(job.prog, job.dtype, tgt, mode=True)  # mode=True: a grid not resident is an error
            for k in report.persistent():
                assert k.resident(t), str(report)
                if config == "S":  # H=32: every weight fits one block
                    assert k.one_block and k.blocks == 1 and k.grid_syncs == 0 and k.block_syncs >= 1, str(report)
                    assert "one block x 512 threads (an ordinary launch), fits an SM; 0 grid-wide sync(s)" in str(
                        report
                    )
                else:  # H=256, 512: their weights need the SMs of the whole GPU
                    assert not k.one_block and k.blocks == t.sms and k.grid_syncs >= 1, str(report)
                seen += 1
    assert seen >= 12


def test_resources_print_every_kernel():
    prog = rc.compile(cell_of("lstm"), length="T", backend="numba-cuda", dtype="float32")
    report = prog.resources(target="sm_80")
    text = str(report)
    assert text.startswith("program lstm (f32) on sm_80 (A100, 108 SMs")
    for k in report.kernels:
        assert k.name in text and k.threads == (512 if k.one_block else 256)
    (loop,) = report.persistent()
    assert loop.blocks == 1 and loop.one_block and loop.resident(report.target)  # Wh (32x128) fits one block
    assert "persistent: one block x 512 threads (an ordinary launch), fits an SM; 0 grid-wide sync(s) per time " in text
    # tests/test_cuda_cost.py counts these by hand
    assert "per step at B=4 (estimate): 2 block sync(s) x 20 ns = 0.04 us of syncs; 34,944 FLOPs; 9,216 bytes" in text
    assert "assumed latencies, of the order Zhang et al." in text
    assert "per step at B=1 (estimate): 2 block sync(s) x 20 ns = 0.04 us of syncs; 8,736 FLOPs" in str(
        prog.resources(target="sm_80", dims={"B": 1})
    )
    big = rc.compile(_sized("lstm", 512, 512), length="T", backend="numba-cuda", dtype="float32")
    (grid,) = big.resources(target="sm_80").persistent()  # Wh (512x2048) is split over the 108 SMs
    assert grid.blocks == 108 and not grid.one_block and grid.grid_syncs == 2
    text = str(big.resources(target="sm_80"))
    assert "persistent: a cooperative grid of 108 blocks x 256 threads, resident" in text
    assert (
        "2 grid-wide sync(s) per time step" in text
        and "per step at B=4 (estimate): 2 grid sync(s) x 2 us = 4 us" in text
    )
    assert "per step: an estimate needs a value of dim(s) B" in str(prog.resources(target="sm_80", dims={}))
    back = prog.resources(target="sm_90", grad=True, lengths=True)
    assert any(k.name.endswith("_matmul_tn") or "matmul_tn" in k.what for k in back.kernels)


def test_dump_prints_resources():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "rnncomp", "dump", str(ROOT / "examples" / "elman.py"), *a],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    out = run("--stage", "numba-cuda", "--resources", "--target", "sm_90")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("program elman (f32) on sm_90 (H100/H200, 132 SMs")
    assert "kernel" in out.stdout and "regs" in out.stdout and "grid-wide sync(s) per time step" in out.stdout
    assert "per step at B=4 (estimate): " in out.stdout and " FLOPs; " in out.stdout
    bad = run("--stage", "numba-cuda", "--resources", "--target", "sm_70")
    assert (
        bad.returncode != 0 and "unknown CUDA target 'sm_70'; the known targets are sm_80 (A100), sm_90" in bad.stderr
    )
    alone = run("--resources")
    assert alone.returncode != 0 and "--resources reports CUDA kernels: add --stage numba-cuda" in alone.stderr


# ---------------------------------------------------------------- errors


def test_an_unknown_target_names_the_known_ones():
    prog = rc.compile(cell_of("elman"), length="T", backend="numba-cuda")
    with pytest.raises(
        CudaBackendError,
        match=r"unknown CUDA target 'sm_100'; the known targets are sm_80 \(A100\), sm_90 \(H100/H200\)",
    ):
        prog.resources(target="sm_100")


def test_resources_of_another_backend_is_named():
    prog = rc.compile(cell_of("elman"), length="T", backend="numpy")
    with pytest.raises(ArgumentError, match=r"resources\(\): backend 'numpy' runs no CUDA kernels"):
        prog.resources()


def test_a_persistent_grid_that_cannot_be_resident_names_the_limit(monkeypatch):
    """A target whose SMs have a sixteenth of the registers: the grid of 256-thread blocks no longer fits."""
    small = replace(targets.TARGETS["sm_90"], regs_per_sm=4096, regs_per_block=4096)
    monkeypatch.setitem(targets.TARGETS, "sm_90", small)
    cell = _sized("lstm", 512, 512)
    prog = rc.compile(cell, length="T", backend="numba-cuda", backend_options={"persistent": True})
    with pytest.raises(
        CudaBackendError,
        match=r"persistent=True, but kernel k\d+_loop \(node %\d+ = loop\(.*\) needs a cooperative grid of 132 blocks "
        r"resident at once, and sm_90 \(H100/H200, 132 SMs\) holds 0: 0 per SM, limited by registers: \d+ registers "
        r"per thread x 256 threads \(an SM has 4096\)",
    ):
        prog.resources(target="sm_90")
    auto = rc.compile(cell, length="T", backend="numba-cuda").resources(target="sm_90")
    assert "NOT resident" in str(auto)  # persistent=None: reported; at run time the loop runs step by step


def test_a_one_block_kernel_that_does_not_fit_an_sm_names_the_limit(monkeypatch):
    """The same small target: a one-block kernel of 512 threads needs more registers than its SM has."""
    small = replace(targets.TARGETS["sm_90"], regs_per_sm=16384, regs_per_block=16384)
    monkeypatch.setitem(targets.TARGETS, "sm_90", small)
    prog = rc.compile(cell_of("lstm"), length="T", backend="numba-cuda", backend_options={"persistent": True})
    with pytest.raises(
        CudaBackendError,
        match=r"persistent=True, but kernel k\d+_loop \(node %\d+ = loop\(.*\) is one block of 512 threads, and an SM "
        r"of sm_90 \(H100/H200\) cannot hold it, limited by registers: \d+ registers per thread x 512 threads "
        r"\(an SM has 16384\)",
    ):
        prog.resources(target="sm_90")
    auto = rc.compile(cell_of("lstm"), length="T", backend="numba-cuda").resources(target="sm_90")
    assert "does NOT fit an SM (limited by registers)" in str(auto)


def test_a_kernel_that_fails_to_type_names_its_node_and_op(monkeypatch):
    from rnncomp.backends.numba_cuda.context import Context

    fn = Context.fn
    monkeypatch.setattr(
        Context, "fn", lambda self, name, dt: "math.no_such_tanh" if name == "tanh" else fn(self, name, dt)
    )
    prog = rc.compile(cell_of("elman"), length="T", backend="numba-cuda")
    with pytest.raises(
        CudaCompileError,
        match=r"kernel k\d+_\w+ of program 'elman' does not compile for sm_90 \(H100/H200\): the code generated for "
        r"node h@0 = tanh\(%\d+\) : f32\[B, 16\] \(line \d+ of the generated source\) fails to type or lower",
    ):
        prog.resources(target="sm_90")


def test_a_kernel_that_fails_to_assemble_names_its_node(monkeypatch, tmp_path):
    real = ptx._run_worker

    def broken(job):
        out = real(job)
        for module in out:
            for r in module:
                if r["name"].endswith("_gemm"):
                    r["ptx"] = r["ptx"].replace(".entry", ".entry_not_ptx", 1)
        return out

    monkeypatch.setattr(ptx, "_run_worker", broken)
    monkeypatch.setattr(ptx, "_memo", {})
    monkeypatch.setenv("RNNCOMP_CACHE_DIR", str(tmp_path))  # nothing compiled before
    prog = rc.compile(cell_of("gru"), length="T", backend="numba-cuda")
    with pytest.raises(
        CudaCompileError,
        match=r"kernel k0_gemm of program 'gru' \(node %\d+ = matmul\(x, W_ih\) : f32\[T, B, 96\]\) does not assemble "
        r"for sm_90 \(H100/H200\): ptxas exited [1-9]",
    ):
        prog.resources(target="sm_90")


@pytest.mark.parametrize("library", ["nvvm", "nvrtc"])
def test_a_missing_compiler_library_names_its_package(monkeypatch, library):
    from cuda import pathfinder

    real = pathfinder.load_nvidia_dynamic_lib

    def load(name):
        if name == library:
            raise pathfinder.DynamicLibNotFoundError(f"Failure finding lib{name}.so")
        return real(name)

    monkeypatch.setattr(pathfinder, "load_nvidia_dynamic_lib", load)
    prog = rc.compile(cell_of("elman"), length="T", backend="numba-cuda")
    with pytest.raises(
        toolchain.CudaToolchainError,
        match=rf"needs {library}, which is not installed .*`pip install {toolchain.PACKAGES[library]}`",
    ):
        prog.resources()


def test_a_missing_ptxas_names_its_package(monkeypatch):
    from cuda import pathfinder

    monkeypatch.setattr(pathfinder, "find_nvidia_binary_utility", lambda name: None)
    prog = rc.compile(cell_of("elman"), length="T", backend="numba-cuda")
    with pytest.raises(
        toolchain.CudaToolchainError, match=r"needs ptxas, which is not installed .*`pip install nvidia-cuda-nvcc`"
    ):
        prog.resources()
    assert "def program(" in prog.source()  # the rest of the backend does not need it
