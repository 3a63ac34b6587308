"""The on-disk cache survives anything done to its files, and a cache directory that cannot be used
means compiling in memory: each fault is created here, and each must end in one warning and right
numbers, never an error; after a fault is repaired the next process loads the entry warm.

The faults to files are made between processes (what Numba wrote is what the next process reads):
one child compiles a tiny cell per fault, the test breaks each entry its own way, a second child must
rebuild each broken entry with one warning naming it, and a third must load them all with no
warning and no compile. The faults of the directory itself run in this process.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")

import rnncomp as rc  # noqa: E402
from rnncomp.backends.common import cache, entry_files, numba_files  # noqa: E402
from rnncomp.backends.numba_cpu import NumbaCompileError, emit  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def tiny(n: int) -> rc.Cell:
    """A cell whose module is its own cache entry for each n; its loop has a row block (a cfunc)."""
    g = rc.Graph(f"tiny{n}")
    x = g.seq("x", ("B", n))
    W = g.param("W", (n, n))
    h = g.state("h", ("B", n))
    h.define(rc.tanh(x @ W + h.prev(1)))
    g.output("y", h)
    return g.build()


def tiny_args(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {"x": rng.standard_normal((3, 2, n)), "W": rng.standard_normal((n, n)) * 0.5}


def tiny_want(n: int) -> np.ndarray:
    a = tiny_args(n)
    h, ys = np.zeros((2, n)), []
    for x in a["x"]:
        h = np.tanh(x @ a["W"] + h)
        ys.append(h)
    return np.stack(ys)


_CHILD = textwrap.dedent(
    """
    import json, sys, warnings
    sys.path.insert(0, {root!r})
    import numpy as np
    import rnncomp as rc
    from tests.test_cache_faults import tiny, tiny_args, tiny_want
    report = {{}}
    for n in {ns!r}:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            prog = rc.compile(tiny(n), length="T", unroll="loop", backend="numba-cpu", dtype="float64")
            y = prog(**tiny_args(n))["y"]
        runner = prog._variant("infer", False, 3)[2]
        report[n] = {{
            "key": runner.entry.key,
            "err": float(np.max(np.abs(y - tiny_want(n)))),
            "misses": sum(runner.fn.stats.cache_misses.values()),
            "warnings": [str(w.message) for w in caught if "rnncomp" in str(w.message)],
        }}
    print(json.dumps(report))
    """
)


def child(folder: Path, ns: list[int]) -> dict[int, dict]:
    """One process compiling (or loading) `tiny(n)` for each n on the cache `folder`: its report."""
    env = {**os.environ, "RNNCOMP_CACHE_DIR": str(folder)}
    cmd = [sys.executable, "-c", _CHILD.format(root=str(ROOT), ns=ns)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {int(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}


def _numba(folder: Path, key: str, func: str, ext: str) -> Path:
    (p,) = (folder / "__pycache__").glob(f"{key}.{func}-*.{ext}")
    return p


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _garbage(p: Path) -> None:
    p.write_bytes(b"\x80\x04\x95garbage\xff\xfe" * 20)


def _directory(p: Path) -> None:
    p.unlink()
    (p / "inside").mkdir(parents=True)


def _swap(a: Path, b: Path) -> None:
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)


def _faults(folder: Path) -> list[tuple[str, int, Callable[[list[str]], None]]]:
    """Each fault to a cache's files: (what it is, how many entries it takes, what to do to their keys)."""
    py = lambda k: folder / f"{k}.py"  # noqa: E731
    manifest = lambda k: folder / f"{k}{numba_files.MANIFEST}"  # noqa: E731
    nb = lambda k, f, e: _numba(folder, k, f, e)  # noqa: E731
    return [
        ("entry truncated", 1, lambda k: _truncate(py(k[0]))),
        ("entry not UTF-8", 1, lambda k: _garbage(py(k[0]))),
        ("entry a directory", 1, lambda k: _directory(py(k[0]))),
        ("entries swapped", 2, lambda k: _swap(py(k[0]), py(k[1]))),
        ("Numba index truncated", 1, lambda k: _truncate(nb(k[0], "program", "nbi"))),
        ("Numba index garbage", 1, lambda k: _garbage(nb(k[0], "rows_0", "nbi"))),
        ("Numba index a directory", 1, lambda k: _directory(nb(k[0], "program", "nbi"))),
        ("Numba data truncated", 1, lambda k: _truncate(nb(k[0], "program", "nbc"))),
        ("Numba data emptied", 1, lambda k: nb(k[0], "rows_0", "nbc").write_bytes(b"")),
        ("Numba data garbage", 1, lambda k: _garbage(nb(k[0], "rows_0", "nbc"))),
        ("Numba data a directory", 1, lambda k: _directory(nb(k[0], "program", "nbc"))),
        ("Numba data swapped, two entries", 2, lambda k: _swap(nb(k[0], "program", "nbc"), nb(k[1], "program", "nbc"))),
        ("Numba data swapped, one entry", 1, lambda k: _swap(nb(k[0], "program", "nbc"), nb(k[0], "rows_0", "nbc"))),
        ("Numba indexes swapped", 2, lambda k: _swap(nb(k[0], "rows_0", "nbi"), nb(k[1], "rows_0", "nbi"))),
        ("manifest garbage", 1, lambda k: _garbage(manifest(k[0]))),
        ("manifest a directory", 1, lambda k: _directory(manifest(k[0]))),
        ("manifests swapped", 2, lambda k: _swap(manifest(k[0]), manifest(k[1]))),
    ]


FAULTS = len(_faults(Path()))  # benchmarks/reliability.py counts these and the 8 below (no manifest, a file
# for `__pycache__`, a cache path that is a file or under one, read-only, a full disk for rnncomp or Numba x2)
OTHER_FAULTS = 8


def test_every_broken_file_is_rebuilt_once_and_the_next_process_loads_it_warm(tmp_path):
    faults = _faults(tmp_path)
    # a process that died before writing the manifest leaves Numba files nobody checked: they are
    # removed and compiled again (one compile), never trusted, and that is no fault (no warning)
    unchecked = [
        (
            lambda k: (
                (tmp_path / f"{k[0]}{numba_files.MANIFEST}").unlink(),
                _garbage(_numba(tmp_path, k[0], "program", "nbc")),
            )
        )
    ]
    ns = list(range(1, 3 + sum(m for _, m, _ in faults)))  # the last two: unchecked, and left alone
    first = child(tmp_path, ns)
    assert all(r["warnings"] == [] and r["err"] < 1e-12 and r["misses"] == 1 for r in first.values()), first
    broken: dict[int, str] = {}
    it = iter(ns)
    for what, many, do in faults:
        mine = [next(it) for _ in range(many)]
        do([first[n]["key"] for n in mine])
        broken.update({n: what for n in mine})
    unchecked[0]([first[ns[-2]]["key"]])

    second = child(tmp_path, ns)
    for n, r in second.items():
        assert r["err"] < 1e-12, (broken.get(n), r)
        if n in broken:
            assert len(r["warnings"]) == 1, (broken[n], r["warnings"])
            assert f"cache entry {tmp_path / (r['key'] + '.py')}: " in r["warnings"][0], (broken[n], r)
            assert "rebuilt it" in r["warnings"][0], (broken[n], r)
        else:
            assert r["warnings"] == [] and r["misses"] == (n == ns[-2]), r

    third = child(tmp_path, ns)  # the rebuilt entries load warm, with no word
    assert all(r["warnings"] == [] and r["err"] < 1e-12 and r["misses"] == 0 for r in third.values()), {
        broken.get(n, "untouched"): r for n, r in third.items() if r["warnings"] or r["misses"]
    }


def test_numba_folder_that_is_a_file_is_replaced(tmp_path):
    first = child(tmp_path, [1])
    shutil.rmtree(tmp_path / "__pycache__")
    (tmp_path / "__pycache__").write_text("not a folder")
    second = child(tmp_path, [1])[1]
    assert len(second["warnings"]) == 1 and "__pycache__ is not a directory" in second["warnings"][0], second
    assert second["err"] < 1e-12 and (tmp_path / "__pycache__").is_dir()
    third = child(tmp_path, [1])[1]  # warm again: no compile, no word
    assert third == {**first[1], "misses": 0}, third


# ---------------------------------------------------------------- a cache directory that cannot be used


def _compile_and_run(n: int) -> tuple[np.ndarray, list[str], cache.Entry]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prog = rc.compile(tiny(n), length="T", unroll="loop", backend="numba-cpu", dtype="float64")
        y = prog(**tiny_args(n))["y"]
    np.testing.assert_allclose(y, tiny_want(n), rtol=0, atol=1e-12)
    entry = prog._variant("infer", False, 3)[2].entry
    return y, [str(w.message) for w in caught if "rnncomp" in str(w.message)], entry


@pytest.fixture
def fresh(monkeypatch):
    """Unusable folders are reported once per process: forget the reports of earlier tests."""
    monkeypatch.setattr(cache, "_UNUSABLE", set())
    return monkeypatch


def _assert_in_memory(said: list[str], entry: cache.Entry, folder: Path, why: str) -> None:
    assert len(said) == 1, said
    assert f"the cache directory {folder} cannot be used" in said[0] and why in said[0], said
    assert said[0].endswith("compiling in memory"), said
    assert entry.in_memory and str(entry.path).startswith("<rnncomp: in memory>")


def test_cache_path_that_is_a_file(fresh, tmp_path):
    folder = tmp_path / "a-file"
    folder.write_text("I am a file")
    fresh.setenv("RNNCOMP_CACHE_DIR", str(folder))
    _, said, entry = _compile_and_run(3)
    _assert_in_memory(said, entry, folder, "FileExistsError")
    assert folder.read_text() == "I am a file"


def test_cache_path_under_a_file(fresh, tmp_path):
    (tmp_path / "a-file").write_text("")
    folder = tmp_path / "a-file" / "cache"
    fresh.setenv("RNNCOMP_CACHE_DIR", str(folder))
    _, said, entry = _compile_and_run(4)
    _assert_in_memory(said, entry, folder, "NotADirectoryError")
    assert _compile_and_run(4)[1] == []  # one warning per folder, not one per program


def test_empty_read_only_cache_dir(fresh, tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    fresh.setenv("RNNCOMP_CACHE_DIR", str(folder))
    try:
        if os.access(folder, os.W_OK):  # root ignores the mode bits: be the read-only file system instead

            def refuse(folder, data):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder))

            fresh.setattr(entry_files, "write_temp", refuse)
        _, said, entry = _compile_and_run(5)
        _assert_in_memory(said, entry, folder, "Error")
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o755)


def test_full_disk_when_rnncomp_writes(fresh, tmp_path):
    def full(folder, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    fresh.setenv("RNNCOMP_CACHE_DIR", str(tmp_path))
    fresh.setattr(entry_files, "write_temp", full)
    _, said, entry = _compile_and_run(6)
    _assert_in_memory(said, entry, tmp_path, "No space left on device")
    assert not list(tmp_path.glob("*.py"))


@pytest.mark.parametrize("which", ["rows_0", "program"])
def test_full_disk_when_numba_writes(fresh, tmp_path, which):
    """Numba saves the row block (a cfunc) while the module is imported and `program` on the first
    call: a full disk at either point means the same code compiled in memory, with one warning."""
    from numba.core import caching

    real = caching.IndexDataCacheFile._save_data

    def full(self, name, data):
        if which in name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, name, data)

    fresh.setenv("RNNCOMP_CACHE_DIR", str(tmp_path))
    fresh.setattr(caching.IndexDataCacheFile, "_save_data", full)
    _, said, entry = _compile_and_run(7 if which == "program" else 8)
    assert len(said) == 1 and "Numba could not use its cache files" in said[0], said
    assert "No space left on device" in said[0] and said[0].endswith("compiling in memory"), said
    assert entry.in_memory


def test_compile_error_in_memory_still_names_the_node_and_line(fresh, tmp_path, monkeypatch):
    folder = tmp_path / "a-file"
    folder.write_text("")
    fresh.setenv("RNNCOMP_CACHE_DIR", str(folder))
    broken = emit.Scalar(lambda ctx, n, a, idx: f"math.tanh({a[0]}, {a[0]})")  # no such signature
    monkeypatch.setitem(emit.EMIT, "tanh", broken)
    prog = rc.compile(tiny(9), length="T", unroll="loop", backend="numba-cpu", dtype="float64")
    with pytest.warns(RuntimeWarning, match="compiling in memory"), pytest.raises(NumbaCompileError) as info:
        prog(**tiny_args(9))
    msg = str(info.value)
    assert "= tanh(" in msg and "<rnncomp: in memory>/" in msg, msg


def test_in_memory_source_turns_off_only_the_decorators_cache():
    from rnncomp.backends.common.in_memory import uncached

    text = '@njit(cache=True, fastmath=F)\ndef f(x):\n    s = "cache=True"\n    return x\n'
    assert uncached(text) == text.replace("@njit(cache=True", "@njit(cache=False")


def test_a_read_only_input_compiles_no_second_signature(tmp_path, monkeypatch):
    """Read-only arrays are copied: Numba would compile (and cache) another signature for them, which
    the manifest written after the first call would not vouch for."""
    monkeypatch.setenv("RNNCOMP_CACHE_DIR", str(tmp_path))
    prog = rc.compile(tiny(10), length="T", unroll="loop", backend="numba-cpu", dtype="float64")
    args = tiny_args(10)
    prog(**args)
    for a in args.values():
        a.setflags(write=False)
    np.testing.assert_allclose(prog(**args)["y"], tiny_want(10), rtol=0, atol=1e-12)
    assert len(prog._variant("infer", False, 3)[2].fn.overloads) == 1


def test_what_numba_raises_reading_a_broken_cache_file_is_told_apart(tmp_path):
    from numba.core.caching import IndexDataCacheFile

    f = IndexDataCacheFile(str(tmp_path), "entry.program-1.py311", b"stamp")
    (tmp_path / "entry.program-1.py311.nbi").write_bytes(b"\x80\x04garbage")
    with pytest.raises(Exception) as info:
        f.load(("sig",))
    assert numba_files.caused_by_cache(info.value)
    try:
        raise ValueError("from the generated code")
    except ValueError as e:
        assert not numba_files.caused_by_cache(e)


def test_numba_cuda_runner_compiles_in_memory_when_numba_cache_fails(tmp_path):
    """The CUDA kernels compile (and are cached) at their first launch: a cache failure then means the
    same code compiled in memory, launched again (the simulator caches nothing, so this is faked)."""
    from types import SimpleNamespace

    from numba.core.caching import IndexDataCacheFile

    from rnncomp.backends.numba_cuda.runner import Runner

    index = IndexDataCacheFile(str(tmp_path), "entry.program-1.py311", b"stamp")
    (tmp_path / "entry.program-1.py311.nbi").write_bytes(b"")

    def launch_reading_a_broken_index(*args):
        index.load(("sig",))

    sealed = []
    memory = SimpleNamespace(module=SimpleNamespace(program=lambda *a: ("ran", a)), path=Path("<m>"), in_memory=True)
    memory.seal = lambda: sealed.append("memory")
    runner = Runner.__new__(Runner)
    runner.ready, runner.gen = False, SimpleNamespace(function="program")
    runner.entry = SimpleNamespace(in_memory=False, without_cache=lambda e: memory, seal=lambda: sealed.append("disk"))
    assert runner._run(launch_reading_a_broken_index, [1, 2]) == ("ran", (1, 2))
    assert runner.ready and runner.entry is memory and sealed == ["memory"]
    with pytest.raises(ValueError):  # a failure of the code itself is not the cache's
        fresh = Runner.__new__(Runner)
        fresh.ready, fresh.gen, fresh.entry = False, runner.gen, SimpleNamespace(in_memory=False)
        fresh._run(lambda: (_ for _ in ()).throw(ValueError("kernel")), [])
