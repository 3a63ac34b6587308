"""Work thresholds that an environment variable may override (RNNCOMP_ROW_WORK, RNNCOMP_SCAN_WORK)."""

from __future__ import annotations

import os

from .errors import NumbaBackendError


def positive_env(name: str, default: int) -> int:
    """The int >= 1 in environment variable `name`, or `default` where it is unset or blank."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise NumbaBackendError(f"environment variable {name}: expected an int >= 1, got {text!r}")
    return n
