"""Compiler passes: pure functions IR -> IR, each with a registered name. Imports `ir`, networkx, numpy only.

Importing this package registers every pass in `passes.pipeline.PASSES`.
"""

from . import grad, hoist, simplify, unroll  # noqa: F401  (registration)
from .pipeline import PASSES, PassManager, parse_pipeline, register_pass
from .retype import retype_cell

__all__ = ["PASSES", "PassManager", "parse_pipeline", "register_pass", "retype_cell"]
