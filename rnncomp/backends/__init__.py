"""Backends: code generation and launch. The only place Numba is imported."""
