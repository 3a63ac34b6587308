"""The on-disk cache of generated modules: `<dir>/<key>.py`, written once, imported by path.

Both Numba backends store their modules here. The key hashes the source, the options (the backend's
name among them), the versions of rnncomp, NumPy, Numba and llvmlite, the host CPU's name and what
the backend says its code depends on besides (the text of the helper modules it imports, its BLAS).
An entry is published atomically and never rewritten while it is right (entry_files.py), so Numba's
own cache (`__pycache__` next to it) stays valid and a second process compiles nothing.

The cache survives anything done to its files: an entry whose text is wrong, whose Numba files changed
(numba_files.py keeps their sha256) or that fails to import is rebuilt with one warning naming it, and
the next process loads the rebuilt one. A cache directory that cannot be used (read-only, full, a
file) means compiling in memory (in_memory.py) with one warning, never a failure; so does Numba
failing to read or write its files while compiling (`Entry.without_cache`, called by the runners).
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.util
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from numba.core.errors import NumbaError

from . import entry_files, in_memory, numba_files
from .numba_files import caused_by_cache

ENV = "RNNCOMP_CACHE_DIR"


def cache_dir() -> Path:
    """`$RNNCOMP_CACHE_DIR`, else `$XDG_CACHE_HOME/rnncomp`, else `~/.cache/rnncomp`."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnncomp"


@functools.cache
def versions() -> dict[str, str]:
    """What every compiled module depends on besides its source."""
    import llvmlite
    import llvmlite.binding
    import numba
    import numpy

    import rnncomp

    return {
        "rnncomp": rnncomp.__version__,
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "cpu": llvmlite.binding.get_host_cpu_name(),
    }


def digest(files: list[Path]) -> str:
    """A hash of these files' bytes (the helper modules generated code imports)."""
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


def cache_key(source: str, options: dict[str, Any], depends: dict[str, str] | None = None) -> str:
    h = hashlib.sha256(source.encode())
    h.update(repr(sorted((str(k), str(v)) for k, v in options.items())).encode())
    h.update(repr(sorted({**versions(), **(depends or {})}.items())).encode())
    return h.hexdigest()


def _import(path: Path, name: str) -> ModuleType:
    mod = sys.modules.get(name)
    if mod is not None and getattr(mod, "__file__", None) == str(path):
        return mod
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[name]
        raise
    return mod


def _warn(text: str) -> None:
    warnings.warn(f"rnncomp: {text}", RuntimeWarning, stacklevel=4)


_UNUSABLE: set[str] = set()  # cache folders already reported unusable in this process


@dataclass(eq=False)
class Entry:
    """A generated module and where it lives: `path` on disk, or (`in_memory`) nowhere, compiled
    again by every process. `seal()` once its code is compiled (and again at exit if Numba compiled
    more of it since); `without_cache(e)` after Numba failed to read or write its files."""

    module: ModuleType
    path: Path
    source: str
    key: str
    name: str
    in_memory: bool = False
    verified: dict[str, str] = field(default_factory=dict)  # its Numba files, name -> sha256
    compiled: int = -1  # how many signatures Numba had compiled or loaded when it was sealed

    def seal(self) -> None:
        """Record the entry's Numba files (numba_files.py), so the next process can trust them."""
        if not self.in_memory:
            folder = numba_files.actual_dir(self.module, self.path)
            if self.compiled < 0:
                _SEALED.append(self)
            self.compiled = numba_files.compiled(self.module)
            self.verified = numba_files.seal(self.path, self.key, folder, self.verified)

    def without_cache(self, error: BaseException) -> Entry:
        """The same code compiled in memory, with a warning saying why (`error`, raised by Numba's cache)."""
        return _without_cache(self.path, error, self.source, self.key, self.name)


_SEALED: list[Entry] = []


@atexit.register
def _reseal() -> None:
    """Seal again the entries Numba compiled more of after they were sealed (a new signature)."""
    for e in _SEALED:
        try:
            if numba_files.compiled(e.module) != e.compiled:
                e.seal()
        except Exception:  # noqa: BLE001, S110  (at exit: the next process merely compiles again)
            pass


def _without_cache(path: Path, error: BaseException, source: str, key: str, name: str) -> Entry:
    _warn(f"Numba could not use its cache files for {path} ({type(error).__name__}: {error}); compiling in memory")
    return _in_memory(source, key, name)


def _in_memory(source: str, key: str, name: str) -> Entry:
    path = in_memory.path_of(key)
    try:
        mod = in_memory.import_source(source, name + "_in_memory", key)
    except NumbaError as e:  # its row blocks compile on import: the code is wrong
        raise CompileFailed(path, e) from None
    return Entry(mod, path, source, key, name, in_memory=True)


def entry_path(source: str, options: dict[str, Any], *, backend: str, depends: dict[str, str] | None = None) -> Path:
    """Where the entry for `source` lives (whether or not it is there yet): `<dir>/<key>.py`."""
    return cache_dir() / f"{cache_key(source, {**options, 'backend': backend}, depends)}.py"


def load(source: str, options: dict[str, Any], *, backend: str, depends: dict[str, str] | None = None) -> Entry:
    """The module for `source`, from the cache (written there first if missing or broken), or
    compiled in memory if the cache cannot be used. `backend` names the module
    (`rnncomp_<backend>_<key>`); `depends` joins the key (see the module)."""
    path = entry_path(source, options, backend=backend, depends=depends)
    folder, key = path.parent, path.stem
    name = f"rnncomp_{backend}_{key[:20]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        why = entry_files.ensure(path, source)
        broken, verified = numba_files.check(path, key, stale=why is not None)
    except OSError as e:
        if str(folder) not in _UNUSABLE:
            _UNUSABLE.add(str(folder))
            _warn(f"the cache directory {folder} cannot be used ({type(e).__name__}: {e}); compiling in memory")
        return _in_memory(source, key, name)
    why = why or broken
    if why:
        _warn(f"cache entry {path}: {why}; rebuilt it")
    try:
        return Entry(_import(path, name), path, source, key, name, verified=verified)
    except NumbaError as e:  # its row blocks compile on import: the code is wrong, not the file
        if not caused_by_cache(e):
            raise CompileFailed(path, e) from None
        error: Exception = e
    except Exception as e:  # noqa: BLE001  (whatever broke the import, a fresh entry is the cure)
        error = e
    if isinstance(error, OSError) and caused_by_cache(error):  # Numba cannot write: rebuilding won't help
        return _without_cache(path, error, source, key, name)
    if not why:
        _warn(f"cache entry {path}: it failed to import ({type(error).__name__}: {error}); rebuilt it")
    try:
        entry_files.replace(path, source)
        numba_files.purge(path, key)
        return Entry(_import(path, name), path, source, key, name)
    except NumbaError as e:
        if not caused_by_cache(e):
            raise CompileFailed(path, e) from None
    except Exception:  # noqa: BLE001  (still broken: the code itself is compiled in memory, or fails there)
        pass
    return _in_memory(source, key, name)


class CompileFailed(Exception):
    """Numba could not compile code of the entry at `path` while importing it."""

    def __init__(self, path: Path, error: Exception):
        super().__init__(str(error))
        self.path, self.error = path, error
