"""The numba-cpu backend: agreement with the numpy backend, its float32 approximations, the on-disk
cache (across processes, corrupt entries), readable and safe source, and its errors.

Numba compiles cost about a second each, so compiled programs are shared through `_program` and
each combination of options compiles only the variants it runs.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")

import rnncomp as rc  # noqa: E402
from ir import Program  # noqa: E402
from rnncomp import Param, Seq, State  # noqa: E402
from rnncomp.backends.numba_cpu import NumbaBackendError, NumbaCompileError, emit, generate_source  # noqa: E402
from tests.support import EXAMPLES, cell_of, random_args, random_lengths  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
B = 3


@pytest.fixture(scope="module", autouse=True)
def _cache_dir(tmp_path_factory):
    """Every compile of this module writes to a fresh cache folder (tests that need their own set it)."""
    old = os.environ.get("RNNCOMP_CACHE_DIR")
    os.environ["RNNCOMP_CACHE_DIR"] = str(tmp_path_factory.mktemp("rnncomp-cache"))
    yield
    if old is None:
        del os.environ["RNNCOMP_CACHE_DIR"]
    else:
        os.environ["RNNCOMP_CACHE_DIR"] = old


def every_op() -> rc.Cell:
    """A cell that uses every op a user can write (and so every Program op after unrolling)."""
    g = rc.Graph("every_op")
    x = g.seq("x", ("B", 6))
    h = g.state("h", ("B", 8))
    W, U, v = g.param("W", (6, 8)), g.param("U", (8, 8)), g.param("v", (8,))
    a = x @ W + h.prev() @ U
    m = rc.max(a, axis=-1, keepdims=True)
    soft = rc.where(a - m, rc.softmax(a), rc.log_softmax(a, axis=1))
    mu = rc.mean(a, axis=0)  # over the batch: (8,)
    tot = rc.sum(a * a) / 64.0  # over everything: a scalar
    cat = rc.concat([rc.slice(a, 0, 4), rc.split(a, 4)[3], rc.split(a, 4)[2]], axis=-1)
    k = rc.constant(np.linspace(-1.0, 1.0, 8))
    e = rc.exp(-rc.relu(a)) + rc.log(1.0 + a * a) - rc.softplus(-a) / (2.0 + rc.tanh(cat))
    ints = rc.cast(rc.cast(x * 4.0, "i64"), "f32")  # x * 4 is exact, so both backends truncate alike
    s6 = rc.sum(ints, axis=-1, keepdims=True) * 0.01
    new = rc.tanh(rc.sigmoid(e) * k + soft - mu * tot + s6 - rc.neg(v) * 0.1)
    h.define(new)
    g.output("y", new * 2.0)
    g.output("z", rc.max(e, axis=1) + rc.mean(rc.split(a, 2)[0], axis=(1,)))
    return g.build()


CELLS = {"elman": None, "lstm": None, "gru": None, "narx": None, "every_op": None}  # narx: delay 2, x.prev()


def _cell(name: str) -> rc.Cell:
    if CELLS[name] is None:
        CELLS[name] = every_op() if name == "every_op" else cell_of(name)
    return CELLS[name]  # type: ignore[return-value]


_PROGRAMS: dict[tuple, rc.CompiledProgram] = {}


def _program(name: str, unroll, dtype: str, reverse: bool, backend: str) -> rc.CompiledProgram:
    key = (name, unroll, dtype, reverse, backend)
    if key not in _PROGRAMS:
        _PROGRAMS[key] = rc.compile(
            _cell(name), length="T", unroll=unroll, backend=backend, dtype=dtype, reverse=reverse
        )
    return _PROGRAMS[key]


def _close(got: dict, want: dict, dtype: str) -> None:
    """float64: max abs error <= 1e-10; float32: max abs error <= 1e-5 * max(1, max |want|), per output."""
    assert sorted(got) == sorted(want)
    for k, w in want.items():
        g = got[k]
        assert g.shape == w.shape and g.dtype == w.dtype, (k, g.shape, w.shape, g.dtype, w.dtype)
        if w.size == 0:
            continue
        err = float(np.max(np.abs(g.astype(np.float64) - w)))
        tol = 1e-10 if dtype == "float64" else 1e-5 * max(1.0, float(np.max(np.abs(w))))
        assert err <= tol, (k, err, tol)


UNROLLS = ["full", "loop", 2, 3]
# (cell, unroll, dtype): float64 runs every mode; float32 (which changes only scalar functions and
# literals) runs loop and k=2, and the rest for the LSTM and GRU; every_op, the costliest to compile,
# runs fewer (see its full unroll below). Compiles cost about a second each.
COMBOS = [(c, u, "float64") for c in CELLS if c != "every_op" for u in UNROLLS]
COMBOS += [(c, u, "float32") for c in CELLS if c != "every_op" for u in ("loop", 2)]
COMBOS += [("lstm", "full", "float32"), ("lstm", 3, "float32"), ("gru", "full", "float32")]
COMBOS += [("every_op", "loop", "float64"), ("every_op", 3, "float64"), ("every_op", "loop", "float32")]


@pytest.mark.parametrize("name, unroll, dtype", COMBOS)
def test_agrees_with_numpy_backend(name, unroll, dtype):
    """Symbolic T served at T = 0, 1, 7, with and without lengths; each combination runs one
    direction, chosen so that every cell and every unroll mode sees both."""
    reverse = (UNROLLS.index(unroll) + list(CELLS).index(name) + (dtype == "float32")) % 2 == 1
    fast = _program(name, unroll, dtype, reverse, "numba-cpu")
    ref = _program(name, unroll, dtype, reverse, "numpy")
    cell = _cell(name)
    for T in (0, 1, 7):
        args = random_args(cell, T, B, seed=T, inits=T == 7)
        args = {k: v.astype(dtype) for k, v in args.items()}
        _close(fast(**args), ref(**args), dtype)
        if T == 7 or unroll != "full":  # a full unroll compiles per length: lengths only at T = 7
            lengths = random_lengths(T, B, seed=T)
            _close(fast(lengths=lengths, **args), ref(lengths=lengths, **args), dtype)


def test_row_blocks_are_named_in_the_source_and_why_not():
    lstm = generate_source(_final(_program("lstm", "loop", "float32", False, "numpy")), "float32")
    assert "batch rows independent" in lstm and "run_blocks(f_rows_0" in lstm and "@cfunc(" in lstm
    every = generate_source(_final(_program("every_op", "loop", "float64", False, "numpy")), "float64")
    assert "rows in sequence:" in every and "works along the batch axis" in every and "run_blocks" not in every


def test_program_that_only_joins_row_blocks_compiles_at_a_lower_llvm_level():
    """optlevel.py: a `program` whose loops all run as row blocks says its LLVM level in its text
    (so the cache key has it); one that runs a loop's steps itself (rows in sequence, a full
    unroll) keeps Numba's. The level is set for the compile only."""
    from numba.core import config

    from ir.dtypes import DType
    from rnncomp.backends.numba_cpu.module import generate
    from rnncomp.backends.numba_cpu.optlevel import GLUE_LEVEL, llvm_level

    blocks = generate(_final(_program("lstm", "loop", "float32", False, "numpy")), DType.f32)
    assert blocks.llvm_level == GLUE_LEVEL < 3 and f"LLVM_LEVEL = {GLUE_LEVEL}" in blocks.source
    for name, unroll in (("every_op", "loop"), ("lstm", "full")):
        gen = generate(_final(_program(name, unroll, "float64", False, "numpy")), DType.f64)
        assert gen.llvm_level is None and "LLVM_LEVEL" not in gen.source, (name, unroll)
    before = int(config.OPT)
    with llvm_level(1):
        assert int(config.OPT) == 1
    with llvm_level(None):
        assert int(config.OPT) == before
    assert int(config.OPT) == before


def test_a_full_unroll_reuses_buffers_and_kernels_across_steps():
    """T copies of a step share their kernels (one per distinct step, called with the step as an
    argument) and a step's worth of buffers; per-step outputs are stored in their stack's slots."""
    prog = rc.compile(_cell("lstm"), length="T", unroll="full", backend="numba-cpu", dtype="float32")
    for grad in (False, True):
        sizes = []
        for T in (4, 12):
            src = prog.source(T=T, grad=grad)
            head = src[src.index("def program") :]
            buffers = [ln for ln in head.splitlines() if ln.strip().startswith("# v") and ": f32[" in ln]
            sizes.append((len(buffers), src.count("@njit"), src.count("\n")))
            assert T == 4 or "np.int64(" in src  # the step is passed as an int64, never as a literal (a compile each)
        (b4, k4, n4), (b12, k12, n12) = sizes
        assert b12 == b4 and k12 <= k4 + 1, sizes  # not T-fold (a kernel called once at T=4 is inlined)
        assert n12 - n4 < 40 * 8, sizes  # a few call lines per extra step


def test_kernels_called_from_few_places_in_a_row_block_are_inlined():
    """A partial unroll's steps inside a row block inline their shared kernels (no call per step);
    `program`'s own kernels and a full unroll's T-fold ones stay calls (compile time)."""
    k2 = generate_source(_final(_program("lstm", 2, "float32", False, "numpy")), "float32")
    assert 'inline="always"' in k2 and "run_blocks(f_rows_0" in k2
    for unroll in ("loop", "full"):
        src = generate_source(_final(_program("lstm", unroll, "float32", False, "numpy")), "float32")
        assert 'inline="always"' not in src, unroll


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_small_products_in_chunks_agree(dtype):
    """A few rows times a small weight as a written-out loop nest: K = 19 is two chunks of 8 and a
    remainder of 3; the backward's transposed product (dz @ U^T) takes the dot-product form."""

    @rc.cell
    def wide(x: Seq["B", 5], h: State["B", 19], W: Param[5, 19], U: Param[19, 19]):
        return {"h": rc.tanh(x @ W + h @ U), "y": h}

    args = random_args(wide, 6, 2, inits=True)
    args = {k: v.astype(dtype) for k, v in args.items()}
    fast, ref = (rc.compile(wide, length="T", backend=be, dtype=dtype) for be in ("numba-cpu", "numpy"))
    src = fast.source()
    assert "in range(0, 16, 8):" in src and "in range(16, 19):" in src
    _close(fast(**args), ref(**args), dtype)
    _close(fast.value_and_grad("y", **args)[1], ref.value_and_grad("y", **args)[1], dtype)


def test_live_results_of_earlier_calls_are_never_overwritten():
    """Outputs and the residuals a backward closure holds come from a buffer pool: a buffer is
    handed out again only once nothing refers to it."""
    prog, cell = _program("lstm", "loop", "float64", False, "numba-cpu"), _cell("lstm")
    args = [random_args(cell, 5, B, seed=s) for s in range(3)]
    runs = [prog.vjp(**a) for a in args]  # three forwards alive at once
    outs = [prog(**a) for a in args]
    ref = _program("lstm", "loop", "float64", False, "numpy")
    for a, (out, backward), plain in zip(args, runs, outs):
        want, want_back = ref.vjp(**a)
        _close(out, want, "float64")
        _close(plain, ref(**a), "float64")
        dy = {"y": np.ones_like(out["y"])}
        _close(backward(dy), want_back(dy), "float64")


def test_every_op_fully_unrolled():
    for reverse in (False, True):
        fast = _program("every_op", "full", "float64", reverse, "numba-cpu")
        ref = _program("every_op", "full", "float64", reverse, "numpy")
        for T in (0, 2):
            args = random_args(_cell("every_op"), T, B, seed=T, inits=True)
            _close(fast(**args), ref(**args), "float64")


@rc.cell
def unbatched(x: Seq[4], h: State[3], W: Param[4, 3], U: Param[3, 3]):
    """No batch dim: rank-1 matmul operands, a rank-0 value and a rank-0 per-step output."""
    s = rc.sum(h)
    new = rc.tanh(x @ W + h @ U + s * 0.1)
    return {"h": new, "y": new, "z": s}


@pytest.mark.parametrize("unroll", ["loop", "full"])
def test_unbatched_cell(unroll):
    rng = np.random.default_rng(3)
    args = {"x": rng.standard_normal((5, 4)), "W": rng.standard_normal((4, 3)), "U": rng.standard_normal((3, 3))}
    want = rc.compile(unbatched, unroll=unroll, backend="numpy", dtype="float64")(**args)
    got = rc.compile(unbatched, unroll=unroll, backend="numba-cpu", dtype="float64")(**args)
    _close(got, want, "float64")


@rc.cell
def grad_ops(x: Seq["B", 4], h: State["B", 4], W: Param[4, 4], v: Param[4]):
    """A cell whose backward uses transpose, matmul_tn, sum_to, broadcast_to, expand_dims, max_bwd, shift."""
    a = x @ W + h * v
    m = rc.max(a, axis=-1, keepdims=True)
    c = rc.concat([rc.slice(a, 0, 2), rc.split(a, 2)[1]], axis=-1)
    new = rc.tanh(c - m + rc.mean(a, axis=-1, keepdims=True) + rc.sum(a, axis=(0, 1)) * 0.1)
    return {"h": new, "y": rc.softmax(new) + rc.log_softmax(new) * 0.1}


GRAD_COMBOS = [("lstm", 2), ("grad_ops", "loop")] + [(c, u) for c in EXAMPLES for u in ("loop", "full")]


@pytest.mark.parametrize("name, unroll", GRAD_COMBOS)
def test_gradients_agree_with_numpy_backend(name, unroll):
    """The backward programs (and the forwards that keep residuals) run through numba-cpu too:
    every example cell, looped and fully unrolled."""
    cell = grad_ops if name == "grad_ops" else cell_of(name)
    args = random_args(cell, 6, B, seed=1, inits=True)
    lengths = random_lengths(6, B, seed=1) if name != "grad_ops" else None  # grad_ops keeps a scalar per step
    res = []
    for backend in ("numpy", "numba-cpu"):
        prog = rc.compile(cell, length="T", unroll=unroll, backend=backend, dtype="float64", reverse=unroll == 2)
        out, backward = prog.vjp(lengths=lengths, **args)
        rng = np.random.default_rng(0)
        res.append((out, backward({k: rng.standard_normal(v.shape) for k, v in out.items()})))
    _close(res[1][0], res[0][0], "float64")
    _close(res[1][1], res[0][1], "float64")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_blocks_of_many_rows_use_the_packed_gemm(dtype):
    """B = 9: blocks of 5 and 4 rows, more than the loop nest serves, so each step's GEMM runs on
    the prepared weight (H = 64: big enough to be packed where MKL is the BLAS); forward and
    gradients, with lengths."""

    @rc.cell
    def wide(x: Seq["B", 16], h: State["B", 64], c: State["B", 64], W: Param[16, 256], U: Param[64, 256]):
        i, f, g, o = rc.split(x @ W + h @ U, 4)
        c = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
        h = rc.sigmoid(o) * rc.tanh(c)
        return {"h": h, "c": c, "y": h}

    cell, B9 = wide, 9
    args = {k: v.astype(dtype) for k, v in random_args(cell, 5, B9, seed=2, inits=True).items()}
    lengths = random_lengths(5, B9, seed=2)
    res = []
    for backend in ("numpy", "numba-cpu"):
        prog = rc.compile(cell, length="T", unroll="loop", backend=backend, dtype=dtype)
        out, backward = prog.vjp(lengths=lengths, **args)
        dy = {k: np.random.default_rng(0).standard_normal(v.shape).astype(dtype) for k, v in out.items()}
        res.append((out, backward(dy), prog(**args)))
    for got, want in zip(res[1], res[0]):
        _close(got, want, dtype)


def test_nan_and_inf_survive():
    """The fast-math flags leave out nnan/ninf: NaN and Inf flow as in NumPy, in both dtypes."""

    @rc.cell
    def odd(x: Seq["B", 4], h: State["B", 4]):
        y = (
            rc.tanh(x)
            + rc.sigmoid(x)
            + rc.relu(x)
            + rc.exp(x * 0.01)
            + rc.log(x * x)
            + rc.max(x, axis=-1, keepdims=True)
        )
        return {"h": h + y, "y": y}

    x = np.array([[[np.nan, np.inf, -np.inf, 0.0], [1.0, -2.0, 3.0, 0.5]]] * 3)
    for dtype in ("float64", "float32"):
        with np.errstate(all="ignore"):
            want = rc.compile(odd, backend="numpy", dtype=dtype)(x=x.astype(dtype))
        got = rc.compile(odd, backend="numba-cpu", dtype=dtype)(x=x.astype(dtype))
        for k in want:
            np.testing.assert_array_equal(np.isnan(got[k]), np.isnan(want[k]))
            np.testing.assert_array_equal(np.isinf(got[k]), np.isinf(want[k]))
            ok = np.isfinite(want[k])
            np.testing.assert_allclose(got[k][ok], want[k][ok], rtol=1e-5, atol=1e-5)


def test_tanh_and_sigmoid_f32_error_bounds():
    """approx.py's documented bounds, over a dense float32 grid including large |x|."""
    from numba import njit

    from rnncomp.backends.numba_cpu import approx

    @njit
    def apply(x, t, s):
        for i in range(x.shape[0]):
            t[i] = approx.tanh_f32(x[i])
            s[i] = approx.sigmoid_f32(x[i])

    x = np.concatenate([np.linspace(-12, 12, 2_000_001), np.geomspace(1e-30, 1e4, 20_001), [1e30, 3e38]])
    x = np.concatenate([x, -x]).astype(np.float32)
    t, s = np.empty_like(x), np.empty_like(x)
    apply(x, t, s)
    x64 = x.astype(np.float64)
    assert np.max(np.abs(t - np.tanh(x64))) <= approx.TANH_F32_MAX_ABS_ERROR
    assert np.max(np.abs(s - (np.tanh(x64 / 2) + 1) / 2)) <= approx.SIGMOID_F32_MAX_ABS_ERROR
    assert np.max(np.abs(t)) <= 1.0
    small = (np.abs(x64) > 0) & (np.abs(x64) < 1e-3)
    assert np.max(np.abs(t[small] / np.tanh(x64[small]) - 1)) <= 4e-7  # keeps relative accuracy near 0
    odd = np.array([np.nan, np.inf, -np.inf], np.float32)
    t, s = np.empty_like(odd), np.empty_like(odd)
    apply(odd, t, s)
    assert np.isnan(t[0]) and np.isnan(s[0])
    np.testing.assert_allclose(t[1:], [1, -1], atol=3e-7)
    np.testing.assert_allclose(s[1:], [1, 0], atol=2e-7)


# ---------------------------------------------------------------- the generated source


def _final(prog: rc.CompiledProgram, masked: bool = False, T: int = 7) -> Program:
    return prog._variant("infer", masked, T)[0]


def _time_loops(src: str) -> list[str]:
    """The text of every time loop (`for itN in range(...)`) of a generated module."""
    lines, out = src.splitlines(), []
    for i, line in enumerate(lines):
        if line.lstrip().startswith("for it") and " in range(" in line:
            depth = len(line) - len(line.lstrip())
            inside = lambda x, depth=depth: not x.strip() or len(x) - len(x.lstrip()) > depth  # noqa: E731
            out.append("\n".join(itertools.takewhile(inside, lines[i + 1 :])))
    assert out, "no time loop found"
    return out


def test_source_is_readable_and_allocates_outside_loops():
    src = generate_source(_final(_program("lstm", 2, "float32", False, "numpy")), "float32")
    assert "@njit(cache=True, fastmath=FASTMATH" in src and '"nnan"' not in src
    assert "# %0 = matmul(x, Wx) : f32[T, B, 128]" in src  # a comment per node, named as printed
    assert "elementwise node(s) in one loop" in src and "tanh_f32(" in src and "sigmoid_f32(" in src
    for body in _time_loops(src):  # every buffer is allocated before the time loop
        assert "np.empty(" not in body and "np.zeros(" not in body and "pack_b(" not in body
    compile(src, "<generated>", "exec")
    masked = generate_source(_final(_program("lstm", 2, "float32", False, "numpy"), masked=True), "float32")
    assert masked.count("fused_0(") == 3  # the two unrolled copies of the step share one kernel
    src64 = generate_source(_final(_program("lstm", "loop", "float64", False, "numpy")), "float64")
    assert "math.tanh(" in src64 and "tanh_f32" not in src64


def test_user_names_only_reach_comments_escaped():
    """A name that is not an identifier (possible in a hand-built Program) never becomes code."""
    prog = _final(rc.compile(_cell("elman"), backend="numpy", dtype="float64"))  # a fresh one: it gets renamed
    evil = "x\nimport os  # "
    prog.inputs[0].name = evil
    prog.name = "p'''\n\"\"\"\nimport sys"
    src = generate_source(prog, "float64")
    lines = src.splitlines()
    assert not any(line.strip().startswith("import os") or line.strip().startswith("import sys") for line in lines)
    assert any(ascii(evil) in line and line.lstrip().startswith("#") for line in lines)
    compile(src, "<generated>", "exec")


# ---------------------------------------------------------------- the on-disk cache

_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    sys.path.insert(0, {root!r})
    import rnncomp as rc
    from tests.support import cell_of, random_args
    prog = rc.compile(cell_of("elman"), length="T", unroll=2, backend="numba-cpu", dtype="float32")
    out = prog(**{{k: v.astype("float32") for k, v in random_args(cell_of("elman"), 5, 2).items()}})
    runner = prog._variant("infer", False, 5)[2]
    stats = runner.fn.stats
    print(json.dumps({{"hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values()),
                       "y": float(out["y"].sum())}}))
    """
)


def _children(cache: Path, n: int = 1) -> list[dict]:
    """Run n child processes at once on one cache folder; their reports."""
    env = {**os.environ, "RNNCOMP_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-c", _CHILD.format(root=str(ROOT))]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def _child(cache: Path) -> dict:
    return _children(cache)[0]


def test_second_process_loads_from_cache(tmp_path):
    first = _child(tmp_path)
    entries = sorted(tmp_path.glob("*.py"))
    assert len(entries) == 1 and first["misses"] == 1
    stamp = entries[0].stat().st_mtime_ns
    assert list((tmp_path / "__pycache__").glob("*.nbi")), "Numba's index lives next to the entry"
    second = _child(tmp_path)
    assert second == {**first, "hits": 1, "misses": 0}  # compiled nothing, same result
    assert sorted(tmp_path.glob("*.py")) == entries and entries[0].stat().st_mtime_ns == stamp  # not rewritten


def test_concurrent_processes_share_one_entry(tmp_path):
    a, b = _children(tmp_path, 2)
    assert a["y"] == b["y"]
    assert len(list(tmp_path.glob("*.py"))) == 1 and not list(tmp_path.glob(".tmp-*"))
    assert _child(tmp_path)["misses"] == 0


def test_corrupt_entry_is_rebuilt_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNCOMP_CACHE_DIR", str(tmp_path))
    cell = _cell("elman")
    args = random_args(cell, 4, B)
    want = rc.compile(cell, backend="numpy", dtype="float64")(**args)
    rc.compile(cell, backend="numba-cpu", dtype="float64")(**args)
    (entry,) = tmp_path.glob("*.py")
    text = entry.read_text()
    entry.write_text(text[: len(text) // 2])  # truncated
    with pytest.warns(RuntimeWarning, match=str(entry.name)):
        got = rc.compile(cell, backend="numba-cpu", dtype="float64")(**args)
    assert entry.read_text() == text
    _close(got, want, "float64")


def test_entry_that_fails_to_import_is_rebuilt(tmp_path, monkeypatch):
    from rnncomp.backends.common import cache

    monkeypatch.setenv("RNNCOMP_CACHE_DIR", str(tmp_path))
    real, calls = cache._import, []

    def flaky(path, name):
        calls.append(name)
        if len(calls) == 1:
            raise ImportError("simulated")
        return real(path, name)

    monkeypatch.setattr(cache, "_import", flaky)
    with pytest.warns(RuntimeWarning, match="failed to import.*simulated"):
        entry = cache.load("X = 1\n", {"dtype": "test"}, backend="test")
    assert entry.module.X == 1 and entry.path.read_text() == "X = 1\n"


def test_cache_dir_defaults_to_user_cache(monkeypatch, tmp_path):
    from rnncomp.backends.common import cache

    monkeypatch.delenv("RNNCOMP_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "rnncomp"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_dir() == Path.home() / ".cache" / "rnncomp"
    monkeypatch.setenv("RNNCOMP_CACHE_DIR", str(tmp_path / "here"))
    assert cache.cache_dir() == tmp_path / "here"


# ---------------------------------------------------------------- errors


def test_numba_failure_names_the_node_and_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNCOMP_CACHE_DIR", str(tmp_path))
    broken = emit.Scalar(lambda ctx, n, a, idx: f"math.tanh({a[0]}, {a[0]})")  # no such signature
    monkeypatch.setitem(emit.EMIT, "tanh", broken)
    prog = rc.compile(_cell("elman"), backend="numba-cpu", dtype="float64")
    with pytest.raises(NumbaCompileError) as info:
        prog(**random_args(_cell("elman"), 3, B))
    msg = str(info.value)
    (entry,) = tmp_path.glob("*.py")
    assert "= tanh(" in msg and "elman" in msg and f"{entry}:" in msg, msg
    line = int(msg.split(f"{entry}:")[1].split(")")[0])
    assert "math.tanh(" in entry.read_text().splitlines()[line - 1]


def test_an_op_without_an_emitter_is_named(monkeypatch):
    monkeypatch.delitem(emit.EMIT, "tanh")
    with pytest.raises(NumbaBackendError, match="no code for op 'tanh'.*emit.py"):
        rc.compile(_cell("elman"), backend="numba-cpu", dtype="float64")(**random_args(_cell("elman"), 3, B))


def test_default_backend_is_numba_cpu(monkeypatch):
    """Users get numba-cpu unless they name a backend; RNNCOMP_BACKEND changes the default (the suites
    that check IR, not code generation, set it to numpy in conftest.py)."""
    cell = cell_of("elman")
    monkeypatch.delenv("RNNCOMP_BACKEND", raising=False)
    assert rc.compile(cell).backend == "numba-cpu"
    monkeypatch.setenv("RNNCOMP_BACKEND", "numpy")
    assert rc.compile(cell).backend == "numpy"
    assert rc.compile(cell, backend="numba-cpu").backend == "numba-cpu"
    monkeypatch.setenv("RNNCOMP_BACKEND", "numba_cpu")
    with pytest.raises(rc.ArgumentError, match="RNNCOMP_BACKEND: unknown backend 'numba_cpu'"):
        rc.compile(cell)


def test_the_lstm_self_check_runs_on_the_default_backend():
    """`python examples/lstm.py` (the self-check among the examples) compiles with numba-cpu and checks
    itself against the oracle."""
    env = {k: v for k, v in os.environ.items() if k != "RNNCOMP_BACKEND"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "examples/lstm.py"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "backend='numba-cpu'" in done.stdout and "gradient norms" in done.stdout


def _hostile_cell() -> rc.Cell:
    """States and outputs named like the printers' own words (a helper, a counter, a module)."""

    @rc.cell
    def hostile(
        x: Seq["B", 3],  # noqa: F821
        acc: State["B", 3],  # noqa: F821
        grid: State["B", 3],  # noqa: F821
        t0: State["B", 3],  # noqa: F821
        W: Param[3, 3],
    ):
        a = rc.tanh(x @ W + acc)
        g = rc.sigmoid(a) * grid + t0
        return {"acc": a, "grid": g, "t0": rc.tanh(g), "np": a * g, "gemm": a + 1.0}

    return hostile


@pytest.mark.parametrize("unroll", ["loop", "full"])
def test_variables_named_after_ir_nodes_never_take_a_printer_word(unroll):
    """States named `acc`, `grid` (CUDA kernel words) and `t0` (a counter's spelling) give variables
    `acc_`, `grid_`, `t0_` (and `acc_state` ...): the program still computes what the oracle does."""
    cell = _hostile_cell()
    fast = rc.compile(cell, length="T", unroll=unroll, backend="numba-cpu", dtype="float64")
    ref = rc.compile(cell, length="T", unroll=unroll, backend="numpy", dtype="float64")
    args = random_args(cell, 4, B, seed=3, inits=True)
    _close(fast(**args), ref(**args), "float64")
    src = generate_source(_final(fast, T=4), "float64")
    assert not re.search(r"^\s*(acc|grid|t0) = ", src, re.M), src
    assert re.search(r"^\s*t0__?u?\d* = math.tanh", src, re.M), src
    assert unroll == "full" or "acc_state = " in src, src  # a row block's rows of the state
