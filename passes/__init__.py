"""Compiler passes: pure functions IR -> IR, each a typed, registered pass object. Imports `ir`, networkx, numpy only.

Importing this package registers every pass in `passes.registry.PASSES`.
"""

from . import grad, hoist, linear_scan, simplify, unroll  # noqa: F401  (registration)
from .pipeline import PassManager, Pipeline, parse_pipeline
from .registry import PASSES, Analyses, IRKind, Pass, register_pass
from .retype import retype_cell

__all__ = [
    "PASSES",
    "Analyses",
    "IRKind",
    "Pass",
    "PassManager",
    "Pipeline",
    "parse_pipeline",
    "register_pass",
    "retype_cell",
]
