"""The numba-cuda backend, in Numba's CUDA simulator: agreement with the numpy backend (forward and
gradients; every example cell, shrunk; loop, k=2 and full unrolls; lengths; reverse; truncate and
checkpoint), the persistent kernel with one block, and every error it raises (device arrays:
tests/test_cuda_device_arrays.py).

The simulator runs each CUDA thread as a Python thread, so sizes are tiny (B=2, H<=4, T=3).
`NUMBA_ENABLE_CUDASIM=1` is set here before numba.cuda is imported (set it to 0 yourself to run
these tests on a real GPU).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
if "numba" in sys.modules and "numba.cuda" not in sys.modules:
    sys.modules["numba"].core.config.reload_config()  # numba read its config before this module ran
cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
if not cuda.is_available():
    pytest.skip(
        "numba.cuda was imported without the simulator before this module ran, and there is no GPU: "
        "run with NUMBA_ENABLE_CUDASIM=1",
        allow_module_level=True,
    )

import rnncomp as rc  # noqa: E402
from ir import ArgumentError  # noqa: E402
from rnncomp import Param, Seq, State  # noqa: E402
from rnncomp.backends.numba_cuda import CudaBackendError, generate_source  # noqa: E402
from rnncomp.backends.numba_cuda.runner import Runtime  # noqa: E402
from tests.hand_rnns import load_example  # noqa: E402
from tests.support import random_args, random_lengths  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
T, B = 3, 2


@pytest.fixture(scope="module", autouse=True)
def _simulator_settings(tmp_path_factory):
    """A fresh cache folder; and a short GIL switch interval: the simulator's threads hand the GIL
    to each other at every barrier, and at the default 5 ms that dominates its run time."""
    old_dir, old_switch = os.environ.get("RNNCOMP_CACHE_DIR"), sys.getswitchinterval()
    os.environ["RNNCOMP_CACHE_DIR"] = str(tmp_path_factory.mktemp("rnncomp-cuda-cache"))
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(old_switch)
    if old_dir is None:
        del os.environ["RNNCOMP_CACHE_DIR"]
    else:
        os.environ["RNNCOMP_CACHE_DIR"] = old_dir


# ---------------------------------------------------------------- the example cells, shrunk


@rc.cell
def elman(x: Seq["B", 3], h: State["B", 4], W: Param[3, 4], U: Param[4, 4], b: Param[4]):
    h_new = rc.tanh(x @ W + h @ U + b)
    return {"h": h_new, "y": h_new}


def lstm_layer(x, h, c, Wx, Wh, b):
    i, f, g, o = rc.split(x @ Wx + h @ Wh + b, 4)
    c_new = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
    return rc.sigmoid(o) * rc.tanh(c_new), c_new


@rc.cell
def lstm(x: Seq["B", 3], h: State["B", 4], c: State["B", 4], Wx: Param[3, 16], Wh: Param[4, 16], b: Param[16]):
    h_new, c_new = lstm_layer(x, h, c, Wx, Wh, b)
    return {"h": h_new, "c": c_new, "y": h_new}


@rc.cell
def gru(x: Seq["B", 3], h: State["B", 4], W_ih: Param[3, 12], W_hh: Param[4, 12], b_ih: Param[12], b_hh: Param[12]):
    x_r, x_z, x_n = rc.split(x @ W_ih + b_ih, 3)
    h_r, h_z, h_n = rc.split(h @ W_hh + b_hh, 3)
    r, z = rc.sigmoid(x_r + h_r), rc.sigmoid(x_z + h_z)
    h_new = (1 - z) * rc.tanh(x_n + r * h_n) + z * h
    return {"h": h_new, "y": h_new}


def three_node() -> rc.Cell:
    g = rc.Graph("three_node")
    x, C = g.seq("x", ("B", 3)), g.state("C", ("B", 4))
    M_A, M_B, M_C, M_o = g.param("M_A", (7, 4)), g.param("M_B", (4, 4)), g.param("M_C", (4, 4)), g.param("M_o", (4, 2))
    A = rc.tanh(rc.concat([x, C.prev()]) @ M_A)
    C.define(rc.tanh(rc.tanh(A @ M_B) @ M_C))
    g.output("y", C @ M_o)
    return g.build()


@rc.cell
def narx(
    x: Seq["B", 2],
    y: State["B", 3],
    s: State["B", 3],
    Wx0: Param[2, 3],
    Wx1: Param[2, 3],
    Wy1: Param[3, 3],
    Wy2: Param[3, 3],
    Ws: Param[3, 3],
    Us: Param[3, 3],
    Vs: Param[3, 3],
    b: Param[3],
):
    s_new = rc.tanh(y @ Ws + s @ Us)
    y_new = rc.tanh(x @ Wx0 + x.prev() @ Wx1 + y @ Wy1 + y.prev(2) @ Wy2 + s_new @ Vs + b)
    return {"y": y_new, "s": s_new, "out": y_new}


@rc.cell
def stacked_lstm(
    x: Seq["B", 3],
    h1: State["B", 4],
    c1: State["B", 4],
    h2: State["B", 3],
    c2: State["B", 3],
    Wx1: Param[3, 16],
    Wh1: Param[4, 16],
    b1: Param[16],
    Wx2: Param[4, 12],
    Wh2: Param[3, 12],
    b2: Param[12],
):
    h1_new, c1_new = lstm_layer(x, h1, c1, Wx1, Wh1, b1)
    h2_new, c2_new = lstm_layer(h1_new, h2, c2, Wx2, Wh2, b2)
    return {"h1": h1_new, "c1": c1_new, "h2": h2_new, "c2": c2_new, "y": h2_new}


def every_op() -> rc.Cell:
    """Every op a user can write (and so, after grad, every backward op: transpose, sum_to,
    broadcast_to, expand_dims, pad, max_bwd, matmul_tn, shift)."""
    g = rc.Graph("every_op")
    x, h = g.seq("x", ("B", 4)), g.state("h", ("B", 4))
    W, U, v = g.param("W", (4, 4)), g.param("U", (4, 4)), g.param("v", (4,))
    a = x @ W + h.prev() @ U
    m = rc.max(a, axis=-1, keepdims=True)
    soft = rc.where(a - m, rc.softmax(a), rc.log_softmax(a, axis=1))
    mu, tot = rc.mean(a, axis=1, keepdims=True), rc.sum(a * a) / 16.0
    cat = rc.concat([rc.slice(a, 0, 2), rc.split(a, 4)[3], rc.split(a, 4)[2]], axis=-1)
    k = rc.constant(np.linspace(-1.0, 1.0, 4))
    e = rc.exp(-rc.relu(a)) + rc.log(1.0 + a * a) - rc.softplus(-a) / (2.0 + rc.tanh(cat))
    ints = rc.cast(rc.cast(x * 4.0, "i64"), "f32")
    new = rc.tanh(rc.sigmoid(e) * k + soft - mu * tot + rc.sum(ints, axis=-1, keepdims=True) * 0.01 - rc.neg(v) * 0.1)
    h.define(new)
    g.output("y", new * 2.0)
    g.output("z", rc.max(e, axis=1) + rc.mean(rc.split(a, 2)[0], axis=(1,)))
    return g.build()


CELLS = {
    "elman": elman,
    "lstm": lstm,
    "gru": gru,
    "three_node": three_node(),
    "narx": narx,
    "stacked_lstm": stacked_lstm,
    "every_op": every_op(),
    "layernorm_lstm": load_example("layernorm_lstm").make_layernorm_lstm(3, 2),
}
EXAMPLES = ["elman", "lstm", "gru", "three_node", "narx", "stacked_lstm"]


def test_the_shrunk_cells_are_the_examples():
    """Each shrunk cell has the example's inputs, states and outputs (only the sizes differ)."""
    from tests.support import cell_of

    for name in EXAMPLES:
        small, full = CELLS[name], cell_of(name)
        assert [s.name for s in small.seqs] == [s.name for s in full.seqs]
        assert [p.name for p in small.params] == [p.name for p in full.params]
        assert list(small.state_types) == list(full.state_types)
        assert list(small.outputs) == list(full.outputs)


# ---------------------------------------------------------------- agreement with the numpy backend


def _close(got: dict, want: dict, dtype: str) -> None:
    """float64: every value within 1e-10; float32: within 1e-5 of each array's largest magnitude."""
    assert sorted(got) == sorted(want)
    for k, w in want.items():
        g = np.asarray(got[k])
        assert g.shape == w.shape and g.dtype == w.dtype, (k, g.shape, w.shape, g.dtype, w.dtype)
        err = float(np.max(np.abs(g - w), initial=0.0))
        bound = 1e-10 if dtype == "float64" else 1e-5 * max(float(np.max(np.abs(w), initial=0.0)), 1e-6)
        assert err <= bound, f"{k}: max error {err:.3g} > {bound:.3g}"


def check(name, unroll, lengths: bool, dtype: str = "float64", persistent=None, seed=None, **options) -> None:
    """Forward and value_and_grad on the numba-cuda backend agree with the numpy backend (at `seed`: the
    dropout / zoneout masks); `name` names an example cell or is a cell."""
    cell = CELLS[name] if isinstance(name, str) else name
    args = random_args(cell, T, B, inits=True)
    args = {k: v.astype(dtype) for k, v in args.items()}
    L = random_lengths(T, B) if lengths else None
    progs = [
        rc.compile(cell, length="T", unroll=unroll, backend=backend, dtype=dtype, **options, **extra)
        for backend, extra in (("numpy", {}), ("numba-cuda", {"backend_options": {"persistent": persistent}}))
    ]
    want, got = (p(lengths=L, seed=seed, **args) for p in progs)
    _close(got, want, dtype)
    output = next(iter(cell.outputs))
    (lw, gw), (lg, gg) = (p.value_and_grad(output, lengths=L, seed=seed, **args) for p in progs)
    _close({"loss": np.asarray(lg)}, {"loss": np.asarray(lw)}, dtype)
    _close(gg, gw, dtype)


@pytest.mark.parametrize("lengths", [False, True], ids=["all", "lengths"])
@pytest.mark.parametrize("unroll", ["loop", 2, "full"])
@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_agree(name, unroll, lengths):
    """Loops run as persistent kernels here (in the simulator the grid is one block)."""
    check(name, unroll, lengths)


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_agree_step_by_step(name):
    """persistent=False: a host loop launching the body's kernels at every step (k=2, with lengths)."""
    check(name, 2, True, persistent=False)


@pytest.mark.parametrize("lengths", [False, True], ids=["all", "lengths"])
@pytest.mark.parametrize("unroll", ["loop", 2, "full"])
def test_layernorm_lstm_agrees(unroll, lengths):
    """rc.layer_norm's reductions and fused elementwise parts, forward and backward (examples/layernorm_lstm.py)."""
    check("layernorm_lstm", unroll, lengths)


@pytest.mark.parametrize("unroll", ["loop", "full"])
def test_every_op_agrees(unroll):
    check("every_op", unroll, False)


@pytest.mark.parametrize("persistent", [None, False], ids=["persistent", "per-step"])
@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_float32_agrees(name, persistent):
    check(name, 2, True, dtype="float32", persistent=persistent)


@pytest.mark.parametrize("persistent", [None, False], ids=["persistent", "per-step"])
@pytest.mark.parametrize("name", ["lstm", "narx"])
def test_reverse_agrees(name, persistent):
    check(name, 2, True, persistent=persistent, reverse=True)


@pytest.mark.parametrize("options", [{"truncate": 2}, {"checkpoint": 2}, {"checkpoint": "sqrt", "reverse": True}])
def test_truncate_and_checkpoint_agree(options):
    check("lstm", "loop", True, **options)


# ---------------------------------------------------------------- dropout and zoneout masks


@rc.cell
def dropped(x: Seq["B", 3], h: State["B", 4], W: Param[3, 4], U: Param[4, 4]):
    """Dropout per step on the input, variational on the state, DropConnect on U, zoneout on the state."""
    z = rc.dropout(x, 0.4) @ W + rc.dropout(h, 0.3, per="sequence") @ rc.dropout(U, 0.25, per="sequence")
    h_new = rc.zoneout(rc.tanh(z), h, 0.35)
    return {"h": h_new, "y": h_new}


@pytest.mark.parametrize("persistent", [None, False], ids=["persistent", "per-step"])
@pytest.mark.parametrize("unroll", ["loop", 2, "full"])
def test_dropout_and_zoneout_masks_agree(unroll, persistent):
    """The masks the kernels draw are the numpy backend's, in the forward and the backward."""
    check(dropped, unroll, True, persistent=persistent, seed=2**40 + 3)


@pytest.mark.parametrize("options", [{"checkpoint": 2}, {"truncate": 2}, {"reverse": True}])
def test_dropout_masks_agree_under_checkpoint_truncate_and_reverse(options):
    check(dropped, "loop", False, seed=7, **options)


def test_dropout_masks_are_the_numpy_masks_bit_for_bit_and_off_without_a_seed():
    @rc.cell
    def masks(x: Seq["B", 16], o: Seq["B", 16]):
        return {"d": rc.dropout(x, 0.5), "v": rc.dropout(x, 0.3, per="sequence"), "z": rc.zoneout(x, o, 0.25)}

    x, o = np.ones((T, B, 16)), np.zeros((T, B, 16))
    progs = [rc.compile(masks, length="T", backend=b, dtype="float32") for b in ("numpy", "numba-cuda")]
    want, got = (p(x=x, o=o, seed=11) for p in progs)
    for k in want:
        assert np.array_equal(np.asarray(got[k]), want[k]), k
    assert 0 < np.count_nonzero(want["d"]) < want["d"].size  # the masks drop something
    off = progs[1](x=x, o=o)
    assert np.array_equal(np.asarray(off["d"]), x) and np.array_equal(np.asarray(off["z"]), np.full(x.shape, 0.75))


# ---------------------------------------------------------------- what runs


def _count_persistent(monkeypatch) -> list[bool]:
    ran: list[bool] = []
    original = Runtime.persistent

    def persistent(self, *args):
        ran.append(original(self, *args))
        return ran[-1]

    monkeypatch.setattr(Runtime, "persistent", persistent)
    return ran


@pytest.mark.parametrize("mode", [None, True])
def test_the_persistent_kernel_runs_with_one_block(monkeypatch, mode):
    ran = _count_persistent(monkeypatch)
    prog = rc.compile(
        lstm, length="T", unroll=2, backend="numba-cuda", dtype="float64", backend_options={"persistent": mode}
    )
    prog(**random_args(lstm, T, B))
    assert ran == [True, True]  # the k=2 loop and its remainder, each in one launch
    source = prog._variant("infer", False, None)[2].source
    assert "one block, a block barrier between phases" in source and "(1, BLOCK_THREADS, 0)" in source
    assert "this_grid" not in source and "grid.sync()" not in source  # no cooperative launch needed
    start = source.index("_loop(")
    loop = source[start : source.index("@cuda.jit", start)]
    assert loop.count("cuda.syncthreads()") == 1 + 2 * 2  # after loading Wh; after each phase of 2 steps
    assert "w0 = cuda.shared.array((4, 16), float64)" in source  # Wh, kept on chip by the one block


@pytest.mark.parametrize("lengths", [False, True], ids=["all", "lengths"])
@pytest.mark.parametrize("unroll", ["loop", 2])
@pytest.mark.parametrize("name", EXAMPLES)
def test_the_one_block_form_runs_every_loop_of_the_examples(monkeypatch, name, unroll, lengths):
    """persistent=True: every loop of the forward and the backward runs as one block (the examples'
    weights fit one), and agrees with the numpy backend."""
    ran = _count_persistent(monkeypatch)
    check(name, unroll, lengths, persistent=True)
    assert ran and all(ran)
    prog = rc.compile(
        CELLS[name], length="T", unroll=unroll, backend="numba-cuda", backend_options={"persistent": True}
    )
    for grad in (False, True):
        source = prog.source(lengths=lengths, grad=grad)
        assert "one block, a block barrier between phases" in source and "this_grid" not in source


@pytest.mark.parametrize("lengths", [False, True], ids=["all", "lengths"])
@pytest.mark.parametrize("unroll", ["loop", 2])
@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_the_cooperative_grid_form_agrees(monkeypatch, name, unroll, lengths):
    """Where the weights do not fit one block, a cooperative grid with a grid sync after each phase
    (here: the one-block form turned off; in the simulator the grid is one block)."""
    from dataclasses import replace

    from rnncomp.backends.numba_cuda import runner
    from rnncomp.backends.numba_cuda.device import SIMULATED

    monkeypatch.setattr(runner, "device_config", lambda: replace(SIMULATED, block_threads=0))
    ran = _count_persistent(monkeypatch)
    check(name, unroll, lengths, persistent=True)
    assert ran and all(ran)
    prog = rc.compile(CELLS[name], length="T", backend="numba-cuda", backend_options={"persistent": True})
    source = prog.source()
    assert "grid = cuda.cg.this_grid()" in source and "grid.sync()" in source
    assert "(1, PERSISTENT_THREADS, 0)" in source and "a cooperative grid, a grid sync after each phase" in source


def test_weights_past_static_shared_memory_go_to_dynamic_shared_memory(monkeypatch):
    """Weights over the static limit are kept in one dynamic shared array, sized at launch (how
    config L's 128 KB a block fits an H100/H200); here the limit is shrunk to 64 bytes."""
    from dataclasses import replace

    from rnncomp.backends.numba_cuda import runner
    from rnncomp.backends.numba_cuda.device import SIMULATED

    monkeypatch.setattr(runner, "device_config", lambda: replace(SIMULATED, shared_bytes=64, shared_optin=48 * 1024))
    ran = _count_persistent(monkeypatch)
    check("lstm", "loop", True, persistent=True)
    assert ran and all(ran)
    prog = rc.compile(lstm, length="T", backend="numba-cuda", dtype="float64", backend_options={"persistent": True})
    source = prog.source()
    assert "dyn = cuda.shared.array(0, float64)  # 512 bytes, set at launch" in source
    assert "dyn[0 + kk * 16 + cl]" in source and "(1, BLOCK_THREADS, 512)" in source
    assert "cuda.shared.array((4, 16)" not in source


def test_per_step_runs_no_persistent_kernel(monkeypatch):
    ran = _count_persistent(monkeypatch)
    prog = rc.compile(lstm, length="T", backend="numba-cuda", dtype="float64", backend_options={"persistent": False})
    prog(**random_args(lstm, T, B))
    assert ran == [] and "this_grid" not in prog._variant("infer", False, None)[2].source


def test_source_is_readable():
    """Kernels name the IR nodes they compute; the host function allocates before it launches."""
    prog = rc.compile(lstm, length="T", unroll="loop", backend="numba-cuda", dtype="float32")
    final = prog.stages()["simplify#2"]
    source = generate_source(final, "float32")
    assert "%0 = matmul(x, Wx) : f32[T, B, 16]: tiled GEMM" in source
    assert "# c@0 = add(%7, %12) : f32[B, 4]" in source  # a fused member, named as the IR prints it
    assert "every step in one launch" in source and "for it0 in range(n0):" in source
    host = source[source.index("def program(") :]
    assert host.index("cuda.device_array(") < host.index("[grid_")  # allocations come first
    compile(source, "<generated>", "exec")  # it is Python


def test_user_names_only_reach_comments_escaped():
    """A name that is not an identifier (possible in a hand-built Program) never becomes code."""
    final = rc.compile(elman, length="T", backend="numpy", dtype="float64").stages()["simplify#2"]
    evil = 'x\nimport os  # """'
    final.inputs[0].name = evil
    final.name = "p'''\n\"\"\"\nimport sys"
    source = generate_source(final, "float64")
    lines = [line.strip() for line in source.splitlines()]
    assert not any(line.startswith(("import os", "import sys")) for line in lines)
    assert "def program(rt, in_x_import_os_______," in source  # its argument: only [A-Za-z0-9_] survive
    compile(source, "<generated>", "exec")


# ---------------------------------------------------------------- errors


def test_forced_persistent_kernel_whose_weights_do_not_fit_is_named():
    @rc.cell
    def wide(x: Seq["B", 2], h: State["B", 80], W: Param[2, 80], U: Param[80, 80]):
        return {"h": rc.tanh(x @ W + h @ U)}

    prog = rc.compile(wide, length="T", backend="numba-cuda", dtype="float64", backend_options={"persistent": True})
    with pytest.raises(
        CudaBackendError,
        match=r"persistent=True, but loop %\d+ cannot run as one kernel: its recurrent weights U \(80x80\) need "
        r"51200 bytes of shared memory per block when split over 1 block\(s\), more than the 49152 bytes",
    ):
        prog(**random_args(wide, T, B))


def test_forced_persistent_kernel_whose_grid_does_not_fit_is_named():
    class Kernel:  # what the runtime asks of a compiled kernel (the simulator's answer: 1 block)
        overloads = cuda.jit(lambda: None).overloads

    with pytest.raises(
        CudaBackendError,
        match=r"loop %2 needs a cooperative grid of 2 blocks of 8 threads, and the device runs at most 1",
    ):
        Runtime(True).persistent(Kernel(), (2, 8, 0), "%2")
    assert Runtime(None).persistent(Kernel(), (2, 8, 0), "%2") is False  # auto: run it step by step instead


def test_forced_one_block_kernel_that_the_device_cannot_run_is_named():
    class Compiled:
        def max_cooperative_grid_blocks(self, threads):
            return 0  # e.g. more registers a thread than 512 threads can have

    class Kernel:
        overloads = {None: Compiled()}

    with pytest.raises(
        CudaBackendError,
        match=r"persistent kernel of loop %2 is one block of 512 threads with 0 bytes of dynamic shared memory, and "
        r"the device cannot run such a block \(too few registers or too little shared memory per SM\); use "
        r"persistent=None",
    ):
        Runtime(True).persistent(Kernel(), (1, 512, 0), "%2")
    assert Runtime(None).persistent(Kernel(), (1, 512, 0), "%2") is False  # auto: run it step by step instead


def test_a_persistent_kernel_that_fails_to_compile_falls_back_or_is_named():
    class Kernel:  # e.g. no libcudadevrt to link cuda.cg's grid sync against
        @property
        def overloads(self):
            raise RuntimeError("cannot link cudadevrt")

    with pytest.warns(
        RuntimeWarning,
        match=r"kernel of loop %2 failed to compile or to get its shared memory \(RuntimeError: cannot link",
    ):
        assert Runtime(None).persistent(Kernel(), (1, 8, 0), "%2") is False
    with pytest.raises(
        CudaBackendError, match=r"persistent=True, but the persistent kernel of loop %2 failed to compile"
    ):
        Runtime(True).persistent(Kernel(), (1, 8, 0), "%2")


def test_bad_backend_options_are_named():
    prog = rc.compile(elman, length="T", backend="numba-cuda", backend_options={"persistant": True})
    with pytest.raises(ArgumentError, match=r"unknown option 'persistant' for numba-cuda; it takes \['persistent'\]"):
        prog(**random_args(elman, T, B))
    prog = rc.compile(elman, length="T", backend="numba-cuda", backend_options={"persistent": "yes"})
    with pytest.raises(ArgumentError, match=r"persistent must be True, False or None \(auto\), got 'yes'"):
        prog(**random_args(elman, T, B))


def test_no_gpu_and_no_simulator_is_one_clear_error():
    script = textwrap.dedent(
        """
        import numpy as np
        from numba import cuda
        if cuda.is_available():
            print("HAS-GPU")
            raise SystemExit(0)
        import rnncomp as rc
        from rnncomp import Param, Seq, State

        @rc.cell
        def elman(x: Seq["B", 2], h: State["B", 2], W: Param[2, 2]):
            return {"h": rc.tanh(x @ W + h)}

        prog = rc.compile(elman, length="T", backend="numba-cuda")
        try:
            prog(x=np.ones((2, 1, 2)), W=np.ones((2, 2)))
        except rc.RnncompError as e:
            print(type(e).__name__, e)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    if "HAS-GPU" in out.stdout:
        pytest.skip("this machine has a GPU")
    assert out.stdout.startswith("CudaUnavailableError backend 'numba-cuda': no usable CUDA GPU here"), out.stderr
    assert "set the environment variable NUMBA_ENABLE_CUDASIM=1 before Python imports numba" in out.stdout


@rc.cell
def hostile(x: Seq["B", 3], acc: State["B", 3], grid: State["B", 3], t0: State["B", 3], W: Param[3, 3]):
    """States named like the printer's own words: `acc` and `grid` (kernel locals), `t0` (a counter)."""
    a = rc.tanh(x @ W + acc)
    g = rc.sigmoid(a) * grid + t0
    return {"acc": a, "grid": g, "t0": rc.tanh(g)}


@pytest.mark.parametrize("mode", [True, False])
def test_variables_named_after_ir_nodes_never_take_a_printer_word(mode):
    """Both the persistent kernel and the per-step launches: `acc_`, `grid_state` ..., and the oracle's values."""
    cu = rc.compile(hostile, length="T", backend="numba-cuda", dtype="float64", backend_options={"persistent": mode})
    ref = rc.compile(hostile, length="T", backend="numpy", dtype="float64")
    args = random_args(hostile, T, B, seed=5, inits=True)
    _close(cu(**args), ref(**args), "float64")
    from dataclasses import replace

    from rnncomp.backends.numba_cuda.device import NOMINAL_GPU

    final = cu._variant("infer", False, T)[0]
    src = generate_source(final, "float64", mode=mode)
    grid_form = generate_source(final, "float64", replace(NOMINAL_GPU, block_threads=0), mode=mode)  # `grid` defined
    for text in (src, grid_form):
        lines = [line.strip() for line in text.splitlines()]
        for word in ("acc", "grid", "t0"):  # the nodes acc@0, grid@0, t0@0
            assert any(line.startswith(f"{word}_ = ") and f"# {word}@0 = " in line for line in lines), word
            assert not any(line.startswith(f"{word} = ") and f"# {word}@0 = " in line for line in lines), word
    assert "grid_state[" in src and ("one block, a block barrier" in src) == mode
    assert ("grid = cuda.cg.this_grid()" in grid_form) == mode and ("grid.sync()" in grid_form) == mode
