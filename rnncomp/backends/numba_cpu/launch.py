"""Running a row-parallel loop's blocks on Numba's threads through a fixed C ABI.

A block function is a `cfunc` `void(int64 block, int64 args)`: `args` is the address of an int64
array holding its parameters (each array as its data address and extents, each int as itself),
which the block unpacks with `carray(as_pointer(...), shape)`. `run_blocks(fn, n, args)` calls
`fn(b, args)` for b in prange(n). Because every block has the same signature, `run_blocks` is
compiled (and cached on disk) once, not once per program: Numba's parallel compilation costs
seconds per function, and a loop body compiled under it even more. Each worker runs its block under
the launching thread's subnormal mode (fpenv.py: MXCSR is per thread) and gets its own back after.
"""

from __future__ import annotations

import os

from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from .errors import NumbaBackendError
from .fpenv import adopt, caller_bits, restore

BLOCK_SIGNATURE = "void(int64, int64)"
ROW_WORK_ENV = "RNNCOMP_ROW_WORK"
ROW_WORK = 1 << 23  # multiply-adds each block of a row-parallel loop must get (benchmarks/parallel_work.py)


def row_work() -> int:
    """ROW_WORK, or RNNCOMP_ROW_WORK where set (a generated module holds it as a constant: its text,
    and so its cache entry, changes with it; the test suite sets 1, so that small loops run in blocks)."""
    text = os.environ.get(ROW_WORK_ENV, "").strip()
    if not text:
        return ROW_WORK
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise NumbaBackendError(f"environment variable {ROW_WORK_ENV}: expected an int >= 1, got {text!r}")
    return n


@njit("int64(int64, int64, int64, int64)", cache=True)
def blocks_for(threads, rows, work, min_work):
    """How many blocks of rows a row-parallel loop runs as (one per thread): at most `threads` and
    `rows`, and only as many as each gets `min_work` of the loop's `work` (its multiply-adds over every
    row and step, estimated by the generator). A loop too small for that runs as one block on the
    calling thread: no fork-join, nothing left for another thread to wake for."""
    return max(1, min(threads, rows, work // max(1, min_work)))


@intrinsic
def _call_block(typingctx, fn, block, args):
    """fn(block, args) for `fn` the address of a function of BLOCK_SIGNATURE."""
    sig = types.void(types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, values):
        i64 = ir.IntType(64)
        f = builder.inttoptr(values[0], ir.FunctionType(ir.VoidType(), [i64, i64]).as_pointer())
        builder.call(f, [values[1], values[2]])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def as_pointer(typingctx, address, dtype):
    """A typed pointer (for `carray`) to `dtype` elements at an int64 address."""
    elem = dtype.instance_type if isinstance(dtype, types.TypeRef) else dtype.dtype
    sig = types.CPointer(elem)(types.int64, dtype)

    def codegen(context, builder, signature, values):
        return builder.inttoptr(values[0], context.get_value_type(signature.return_type))

    return sig, codegen


@njit("void(int64, int64, int64)", parallel=True, cache=True)
def run_blocks(fn, n, args):
    """fn(b, args) for every block b < n, one block per Numba thread at a time (one block: on
    this thread, without waking the others)."""
    if n == 1:
        _call_block(fn, 0, args)
        return
    bits = caller_bits()
    for b in prange(n):
        saved = adopt(bits)
        _call_block(fn, b, args)
        restore(saved)
