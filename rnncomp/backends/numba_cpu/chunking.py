"""How much work a chunk of a parallel scan over time must get (scan.py), as generated code sees it."""

from __future__ import annotations

from .work_env import positive_env

SCAN_WORK_ENV = "RNNCOMP_SCAN_WORK"
SCAN_WORK = 1 << 20  # element-steps (T*B*F / chunks) each chunk must get before a scan is split


def scan_work() -> int:
    """SCAN_WORK, or RNNCOMP_SCAN_WORK where set (generated modules hold it as a constant: their text,
    and so their cache entries, change with it; tests set it to 1 so that small scans run in chunks)."""
    return positive_env(SCAN_WORK_ENV, SCAN_WORK)
