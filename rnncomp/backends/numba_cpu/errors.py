"""Errors of the numba-cpu backend: both are RnncompErrors, so callers catch one base class."""

from __future__ import annotations

from ir import RnncompError


class NumbaBackendError(RnncompError):
    """The numba-cpu backend cannot generate code for a program (e.g. an op without an emitter)."""


class NumbaCompileError(NumbaBackendError):
    """Numba failed to type or lower generated code; names the IR node and the generated file."""
