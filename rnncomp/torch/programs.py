"""Compiled programs shared between modules: layers of one shape (a stack's upper layers, many
imports of one nn.LSTM) compile a cell once per (structure, options), not once per module."""

from __future__ import annotations

from collections import OrderedDict

import rnncomp as rc
from ir import Cell

_CACHE: OrderedDict = OrderedDict()
_MAX = 128


def compiled(cell: Cell, **options) -> rc.CompiledProgram:
    """`rc.compile(cell, **options)`, reusing an earlier compile of an equal cell with equal options."""
    key = (cell.structure(), repr(sorted(options.items())))
    prog = _CACHE.get(key)
    if prog is None:
        prog = rc.compile(cell, **options)
        _CACHE[key] = prog
        if len(_CACHE) > _MAX:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return prog
