"""A failure in generated code traced back to the IR node whose code failed (both Numba runners)."""

from __future__ import annotations

import re
import traceback
from pathlib import Path

from .writer import owner_at

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def error_text(e: BaseException) -> str:
    """The exception's text without terminal colour codes (Numba colours its messages)."""
    return _ANSI.sub("", str(e))


def lines_in(text: str, path: Path) -> list[int]:
    """The lines of `path` a Numba message mentions (`<name>", line N`), in the order mentioned."""
    return [int(m.group(1)) for m in re.finditer(re.escape(path.name) + r'", line (\d+)', text)]


def frames_in(e: BaseException, path: Path) -> list[int]:
    """The lines of `path` in the exception's traceback, outermost first."""
    return [f.lineno or 0 for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]


def site(owners: dict[int, str], path: Path | None, lines: list[int]) -> tuple[str, str]:
    """(what failed, where): `the code generated for node h@0`, `<path>:<line>` (the first of `lines`
    in code some node owns), or the generated code and the file when none is."""
    node, ln = owner_at(owners, lines)
    where = f"{path}:{ln}" if ln else f"{path}"
    return (f"the code generated for node {node}" if node else "the generated code"), where
