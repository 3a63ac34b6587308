"""The files of a cache entry on disk: written atomically, checked against what they should hold,
and removed whatever they have become (a file, a directory, a dangling link).

An entry is published with a temporary file in the same folder and a hard link that fails if another
process got there first, and never rewritten while it is right, so Numba's own cache (keyed by the
file's content) stays valid and concurrent processes share one entry.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path


def write_temp(folder: Path, data: str) -> str:
    """A new temporary file in `folder` holding `data`, flushed to disk; its path."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".py")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def publish(path: Path, data: str) -> None:
    """Create `path` holding `data` unless it exists; atomic, so readers never see half a file."""
    tmp = write_temp(path.parent, data)
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


def replace(path: Path, data: str) -> None:
    """Make `path` hold `data`, whatever is there now (a wrong file, a directory)."""
    if os.path.lexists(path) and not is_file(path):
        remove(path)
    tmp = write_temp(path.parent, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def is_file(path: Path) -> bool:
    """Whether `path` is a regular file itself (not a directory, a link or anything else)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def remove(path: Path) -> None:
    """Remove whatever `path` is; nothing if it is gone already."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def read_text(path: Path) -> str | None:
    """The text of the regular file `path`, or None if it is missing, not a file or not UTF-8."""
    if not is_file(path):
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def ensure(path: Path, source: str) -> str | None:
    """Make the entry `path` hold `source`: publish it if missing; if it holds anything else, replace it
    and say why (a sentence for the warning). None when it was right or new."""
    if not os.path.lexists(path):
        publish(path, source)
        return None
    if not is_file(path):
        why = "it is not a file"
    elif read_text(path) != source:
        why = "it does not hold the code it should (truncated, edited or swapped?)"
    else:
        return None
    replace(path, source)
    return why
