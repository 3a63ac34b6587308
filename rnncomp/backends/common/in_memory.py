"""A generated module imported with no file behind it, for when the on-disk cache cannot be used
(read-only, full, not a directory): the same code, compiled again in every process.

Numba can cache only functions that live in a real file, so the decorators' `cache=True` becomes
`cache=False`; the text is registered with `linecache` under a name that says where it lives, so
tracebacks and Numba's messages still show the generated lines.
"""

from __future__ import annotations

import linecache
import re
import sys
from pathlib import Path
from types import ModuleType

PLACE = "<rnncomp: in memory>"  # the folder part of an in-memory module's file name
_CACHED = re.compile(r"\bcache=True\b")


def uncached(source: str) -> str:
    """`source` with every decorator's `cache=True` turned off (only `@` lines: the printers put
    `cache=True` nowhere else, and no user text reaches a decorator)."""
    lines = source.splitlines(keepends=True)
    return "".join(_CACHED.sub("cache=False", ln) if ln.lstrip().startswith("@") else ln for ln in lines)


def path_of(key: str) -> Path:
    """The name an in-memory module's code is reported under (`<rnncomp: in memory>/<key>.py`)."""
    return Path(PLACE) / f"{key}.py"


def import_source(source: str, name: str, key: str) -> ModuleType:
    """Execute `source` (uncached) as the module `name`; its code's file name is `path_of(key)`."""
    text = uncached(source)
    filename = str(path_of(key))
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    mod = ModuleType(name)
    mod.__file__ = filename
    sys.modules[name] = mod
    try:
        exec(compile(text, filename, "exec"), mod.__dict__)  # rnncomp's own generated code, never user text
    except BaseException:
        del sys.modules[name]
        raise
    return mod
