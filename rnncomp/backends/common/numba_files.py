"""Numba's own files for a cache entry (an index `.nbi` and data `.nbc` per function, in `__pycache__`
next to the entry or under NUMBA_CACHE_DIR), and the manifest rnncomp keeps of them.

Numba trusts what it finds there: a truncated or garbage file ends in an UnpicklingError on every later
run, and a data file swapped with another function's is loaded as that function's code (a crash). So
once a process has compiled or loaded an entry it writes `<key>.numba.json` beside it, the sha256 of
each of the entry's Numba files, and before importing an entry a process checks them: a file that
differs, or a manifest that cannot be read, means all the entry's Numba files are removed and compiled
again (the caller warns). Files no manifest vouches for (a process died before writing one, or another
is still compiling) are removed quietly: that costs one compile, never a wrong load.
"""

from __future__ import annotations

import hashlib
import json
import os
import traceback
from pathlib import Path
from typing import Any

from . import entry_files

MANIFEST = ".numba.json"  # `<key>.numba.json` beside `<key>.py`


def numba_dir(path: Path) -> Path:
    """Where Numba keeps the compiled code of the functions defined in `path` (its first locators:
    NUMBA_CACHE_DIR if set, else `__pycache__` beside the file)."""
    from numba.core import config
    from numba.core.caching import _CacheLocator

    if config.CACHE_DIR:
        return Path(config.CACHE_DIR) / _CacheLocator.get_suitable_cache_subpath(str(path))
    return path.parent / "__pycache__"


def _files(folder: Path, key: str) -> list[Path]:
    """The entry's Numba files in `folder` (`<key>.<function>-<line>.pyXY[.N].nb[ic]`), not the
    temporary files a Numba process is writing."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [folder / n for n in sorted(names) if n.startswith(key + ".") and ".tmp." not in n]


def _sha(path: Path) -> str | None:
    if not entry_files.is_file(path):
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _manifest(path: Path, key: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the manifest, None), (None, None) if there is none, or (None, what is wrong with it)."""
    mpath = path.with_name(key + MANIFEST)
    if not os.path.lexists(mpath):
        return None, None
    text = entry_files.read_text(mpath)
    try:
        m = json.loads(text) if text is not None else None
    except ValueError:
        m = None
    ok = (
        isinstance(m, dict)
        and m.get("key") == key
        and isinstance(m.get("dir"), str)
        and isinstance(m.get("files"), dict)
        and all(isinstance(k, str) and k.startswith(key + ".") and isinstance(v, str) for k, v in m["files"].items())
    )
    return (m, None) if ok else (None, f"its manifest {mpath} is unreadable or not its own")


def check(path: Path, key: str, stale: bool = False) -> tuple[str | None, dict[str, str]]:
    """Make the Numba files of the entry at `path` trustworthy before it is imported, removing those
    that are not. (why the entry was broken, or None; the files verified, name -> sha256). `stale`:
    the entry's text was just replaced, so whatever Numba had for it is removed too."""
    default = numba_dir(path)
    if os.path.lexists(default) and not os.path.isdir(default):
        entry_files.remove(default)  # Numba would put the code elsewhere, or nowhere
        return _purge(path, key, default, f"Numba's folder {default} is not a directory"), {}
    m, why = _manifest(path, key)
    folder = Path(m["dir"]) if m else default
    listed: dict[str, str] = m["files"] if m else {}
    if stale:
        _purge(path, key, folder, None)
        return None, {}
    verified: dict[str, str] = {}
    for name, digest in listed.items():
        p = folder / name
        if not os.path.lexists(p):
            continue  # gone: Numba compiles it again
        if _sha(p) != digest:
            why = f"its Numba file {p} has changed (truncated, swapped or edited?)"
            break
        verified[name] = digest
    if why:
        return _purge(path, key, folder, why), {}
    for p in _files(folder, key):
        if p.name not in verified:
            entry_files.remove(p)  # unverified: compiled again rather than trusted
    return None, verified


def _purge(path: Path, key: str, folder: Path, why: str | None) -> str | None:
    for p in _files(folder, key):
        entry_files.remove(p)
    if folder != numba_dir(path):
        for p in _files(numba_dir(path), key):
            entry_files.remove(p)
    entry_files.remove(path.with_name(key + MANIFEST))
    return why


def purge(path: Path, key: str) -> None:
    """Remove every Numba file of the entry and its manifest (the entry is being rebuilt)."""
    m, _ = _manifest(path, key)
    _purge(path, key, Path(m["dir"]) if m else numba_dir(path), None)


def _own(module: Any) -> list[Any]:
    """The module's own Numba functions (not the helpers it imports), those with a cache."""
    file = getattr(module, "__file__", None)
    found = []
    for obj in vars(module).values():
        fn = getattr(obj, "py_func", None) or getattr(obj, "_pyfunc", None)
        if hasattr(obj, "_cache") and getattr(getattr(fn, "__code__", None), "co_filename", None) == file:
            found.append(obj)
    return found


def actual_dir(module: Any, path: Path) -> Path:
    """Where Numba put the module's compiled code (a locator further down Numba's list when
    `__pycache__` cannot be written), asked of its functions."""
    for obj in _own(module):
        where = getattr(obj._cache, "cache_path", None)
        if isinstance(where, str):
            return Path(where)
    return numba_dir(path)


def compiled(module: Any) -> int:
    """How many signatures the module's functions have compiled or loaded (a new one means new files)."""
    return sum(len(getattr(obj, "overloads", ())) for obj in _own(module))


def seal(path: Path, key: str, folder: Path, known: dict[str, str]) -> dict[str, str]:
    """Record the sha256 of the entry's Numba files as they are now (after this process compiled or
    loaded them), unless `known` already says so; the files recorded. Best effort: a cache that cannot
    be written is left without a manifest (the next process compiles again)."""
    for _ in range(3):  # another process may replace a file while we hash: hash again until stable
        files = {p.name: h for p in _files(folder, key) if (h := _sha(p)) is not None}
        if files == known:
            return known
        data = json.dumps({"key": key, "dir": str(folder), "files": files}, indent=1, sort_keys=True)
        try:
            entry_files.replace(path.with_name(key + MANIFEST), data)
        except OSError:
            return known
        known = files
    return known


def caused_by_cache(e: BaseException) -> bool:
    """Whether `e` (or an exception it came from) was raised while Numba read or wrote its on-disk
    cache: a fault of the files or the disk, not of the generated code."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        for frame in traceback.extract_tb(e.__traceback__):
            parts = Path(frame.filename).parts
            if parts and parts[-1] == "caching.py" and "numba" in parts:
                return True
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return False
