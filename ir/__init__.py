"""rnncomp's intermediate representation: types, the op table, cells and programs, text form, verifier.

Imports nothing above it (no passes, no rnncomp, no Numba): NumPy only.
"""

from . import adjoint_ops, mask_ops, program_ops, scan_ops  # noqa: F401  (register the Program-only, grad, mask and scan ops)
from .dtypes import DType, as_dtype
from .errors import (
    ArgumentError,
    DSLError,
    ParseError,
    PassError,
    RnncompError,
    ShapeError,
    UnknownOpError,
    VerifyError,
)
from .graph import Cell, Node, Use, topo_order
from .ops import OPS, OpDef, get_op
from .parser import parse_cell, parse_cells
from .printer import print_cell
from .program import LoopView, Program, Region
from .program_parser import parse_program
from .program_printer import print_program
from .shapes import Dim, Shape, as_shape, broadcast, is_identifier
from .types import TensorType, TupleType
from .verify import verify_cell

__all__ = [
    "ArgumentError",
    "Cell",
    "DSLError",
    "DType",
    "Dim",
    "LoopView",
    "Node",
    "OPS",
    "OpDef",
    "ParseError",
    "PassError",
    "Program",
    "Region",
    "RnncompError",
    "Shape",
    "ShapeError",
    "TensorType",
    "TupleType",
    "UnknownOpError",
    "Use",
    "VerifyError",
    "as_dtype",
    "as_shape",
    "broadcast",
    "get_op",
    "is_identifier",
    "parse_cell",
    "parse_cells",
    "parse_program",
    "print_cell",
    "print_program",
    "topo_order",
    "verify_cell",
]
