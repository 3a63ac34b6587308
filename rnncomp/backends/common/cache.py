"""The on-disk cache of generated modules: `<dir>/<key>.py`, written once, imported by path.

Both Numba backends store their modules here. The key hashes the source, the options (the backend's
name among them), the versions of rnncomp, NumPy, Numba and llvmlite, the host CPU's name and what
the backend says its code depends on besides (the text of the helper modules it imports, its BLAS).
An entry is published atomically (a temporary file in the same folder, then a hard link that fails
if another process got there first) and never rewritten, so Numba's own cache (`__pycache__` next to
it, keyed by the file's content) stays valid and a second process compiles nothing. An entry whose
text differs from what it should hold, or that fails to import, is rebuilt with a warning naming its
path.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from numba.core.errors import NumbaError

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


def _write_temp(folder: Path, source: str) -> str:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".py")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(source)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _publish(path: Path, source: str) -> None:
    """Create `path` with `source` unless it exists; atomic, so readers never see half a file."""
    tmp = _write_temp(path.parent, source)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process published it first
    except OSError:  # no hard links here: replace, which may rewrite an equal entry (harmless)
        if not path.exists():
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _rebuild(path: Path, source: str, why: str) -> None:
    warnings.warn(f"rnncomp: cache entry {path} {why}; rebuilding it", RuntimeWarning, stacklevel=4)
    tmp = _write_temp(path.parent, source)
    os.replace(tmp, path)


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


def load(
    source: str, options: dict[str, Any], *, backend: str, depends: dict[str, str] | None = None
) -> tuple[ModuleType, Path]:
    """The module for `source`, from the cache (written there first if missing or corrupt).
    `backend` names the module (`rnncomp_<backend>_<key>`); `depends` joins the key (see the module)."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    key = cache_key(source, {**options, "backend": backend}, depends)
    path = folder / f"{key}.py"
    if not path.exists():
        _publish(path, source)
    else:
        try:
            ok = path.read_text(encoding="utf-8") == source
        except (OSError, UnicodeDecodeError):
            ok = False
        if not ok:
            _rebuild(path, source, "does not hold the code it should (truncated or edited?)")
    name = f"rnncomp_{backend}_{key[:20]}"
    try:
        return _import(path, name), path
    except NumbaError as e:  # its row blocks compile on import: the code is wrong, not the file
        raise CompileFailed(path, e) from None
    except Exception as e:  # noqa: BLE001  (whatever broke the import, a fresh entry is the cure)
        _rebuild(path, source, f"failed to import ({type(e).__name__}: {e})")
        return _import(path, name + "_rebuilt"), path


class CompileFailed(Exception):
    """Numba could not compile code of the entry at `path` while importing it."""

    def __init__(self, path: Path, error: Exception):
        super().__init__(str(error))
        self.path, self.error = path, error
