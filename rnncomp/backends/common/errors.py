"""The error the shared lowering helpers raise (each backend has its own errors for the rest)."""

from __future__ import annotations

from ir import RnncompError


class LoweringError(RnncompError):
    """A node the Numba printers cannot spell: an attribute or dim that would reach generated code unchecked."""
