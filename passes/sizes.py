"""Byte sizes written with a unit ("64MiB", "1.5 GB"): parsing and printing.

A memory budget (`checkpoint="64MiB"`) is such a size. Binary units (KiB, MiB, GiB) are powers of
1024, decimal ones (KB, MB, GB) powers of 1000; the unit is required (a bare number is ambiguous with
`checkpoint=k` steps) and matched without regard to case.
"""

from __future__ import annotations

import re

from ir import ArgumentError

UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "KB": 10**3, "MB": 10**6, "GB": 10**9}
FORMS = ", ".join(UNITS)
_BY_FOLDED = {u.lower(): m for u, m in UNITS.items()}
_SIZE = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]+)\s*")


def parse_size(text: str, what: str = "size") -> int:
    """Bytes of `text`, a positive number with a unit (B, KiB, MiB, GiB, KB, MB, GB); rounded down.

    Raises ArgumentError naming the accepted forms when `text` is not such a size, or is <= 0 bytes.
    """
    m = _SIZE.fullmatch(text) if isinstance(text, str) else None
    unit = _BY_FOLDED.get(m.group(2).lower()) if m else None
    if m is None or unit is None:
        raise ArgumentError(
            f"{what}: {text!r} is not a size; write a number and a unit, one of {FORMS} (e.g. '64MiB', '1.5GB')"
        )
    value = float(m.group(1)) * unit
    if not value < 2**63:
        raise ArgumentError(f"{what}: {text!r} is too large a size (at most 8 EiB)")
    if value < 1:  # negative, zero, or under one byte
        raise ArgumentError(f"{what}: a budget must be at least 1 byte, got {text!r} (e.g. '64MiB'; units {FORMS})")
    return int(value)


def format_size(n: int | float) -> str:
    """`n` bytes in the largest binary unit that keeps the number >= 1: '64.0 MiB', '512 B'."""
    if abs(n) < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")
