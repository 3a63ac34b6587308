"""Running a row-parallel loop's blocks on Numba's threads through a fixed C ABI.

A block function is a `cfunc` `void(int64 block, int64 args)`: `args` is the address of an int64
array holding its parameters (each array as its data address and extents, each int as itself).
`program` writes them with one `block_args((...))` and the block reads each with `block_int` or
`block_array`: intrinsics, so Numba types and lowers one call per parameter, not a store or a
`carray` per word (most of a cold compile's typing was those). `run_blocks(fn, n, args)` calls
`fn(b, args)` for b in prange(n). Because every block has the same signature, `run_blocks` is
compiled (and cached on disk) once, not once per program: Numba's parallel compilation costs
seconds per function, and a loop body compiled under it even more. Each worker runs its block under
the launching thread's subnormal mode (fpenv.py: MXCSR is per thread) and gets its own back after.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

from .fpenv import adopt, caller_bits, restore
from .work_env import positive_env

BLOCK_SIGNATURE = "void(int64, int64)"
ROW_WORK_ENV = "RNNCOMP_ROW_WORK"
ROW_WORK = 1 << 23  # multiply-adds each block of a row-parallel loop must get (benchmarks/parallel_work.py)


STEP_WORK_ENV = "RNNCOMP_STEP_WORK"
# multiply-adds a step's recurrent GEMM must give each thread to split it, paying a fork-join a step:
# 2 threads lost at 131K a slice (LSTM H=256 B=1) and won at 393K (GRU H=512 B=1, H=256 B=4), on
# 2 idle cores (benchmarks/step_split.py --step-work; RESULTS.md "Column-split steps")
STEP_WORK = 1 << 18
CACHE_BYTES = 1 << 21  # a core's own cache (L2) that a row block's copy of the weights must fit in
FEW_ROWS = 3  # (gemm.LOOP_ROWS) up to this many rows a block's product is a loop nest, not BLAS


def row_work() -> int:
    """ROW_WORK, or RNNCOMP_ROW_WORK where set (a generated module holds it as a constant: its text,
    and so its cache entry, changes with it; the test suite sets 1, so that small loops run in blocks)."""
    return positive_env(ROW_WORK_ENV, ROW_WORK)


@njit("int64(int64, int64, int64, int64)", cache=True)
def blocks_for(threads, rows, work, min_work):
    """How many blocks of rows a row-parallel loop runs as (one per thread): at most `threads` and
    `rows`, and only as many as each gets `min_work` of the loop's `work` (its multiply-adds over every
    row and step, estimated by the generator). A loop too small for that runs as one block on the
    calling thread: no fork-join, nothing left for another thread to wake for."""
    return max(1, min(threads, rows, work // max(1, min_work)))


def step_work() -> int:
    """STEP_WORK, or RNNCOMP_STEP_WORK where set (a constant of the generated module, as ROW_WORK)."""
    return positive_env(STEP_WORK_ENV, STEP_WORK)


@njit("int64(int64, int64, int64, int64, int64)", cache=True)
def step_parts(threads, rows, work, weight_bytes, min_work):
    """How many column slices each step's recurrent GEMM of a row-parallel loop is split into
    (stepgemm.py; 1: none, the rows go to blocks_for): at most `threads`, only as many as each gets
    `min_work` of the step's `work` (its recurrent multiply-adds over every row), and only where the
    rows cannot usefully be split instead: a block of a few rows, or of rows whose weights
    (`weight_bytes`) do not fit in a core's own cache, which every block would stream at every step."""
    parts = max(1, min(threads, work // max(1, min_work)))
    if parts < 2:
        return 1
    if rows // threads > FEW_ROWS and weight_bytes <= CACHE_BYTES:
        return 1
    return parts


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


def _words(t) -> int:
    """How many int64 words a block parameter of type `t` takes (an int, an array, a tuple of them)."""
    if isinstance(t, (types.Integer, types.Boolean)):
        return 1
    if isinstance(t, types.Array):
        return 1 + t.ndim
    if isinstance(t, types.BaseTuple):
        return sum(_words(e) for e in t)
    raise TypingError(f"block_args: a row block cannot take a {t}")


@intrinsic
def block_args(typingctx, values):
    """The address of int64 words holding `values` (a tuple of ints, arrays and tuples of them, each
    array as its data address and extents), on the caller's stack: valid until the caller returns,
    and the arrays are referenced by the tuple until the statement that holds the call ends."""
    n = _words(values)
    sig = types.int64(values)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        words = []

        def flatten(t, v):
            if isinstance(t, (types.Integer, types.Boolean)):
                words.append(context.cast(builder, v, t, types.int64))
            elif isinstance(t, types.Array):
                a = make_array(t)(context, builder, v)
                words.append(builder.ptrtoint(a.data, i64))
                words.extend(cgutils.unpack_tuple(builder, a.shape, t.ndim))
            else:
                for i, e in enumerate(t):
                    flatten(e, builder.extract_value(v, i))

        flatten(signature.args[0], args[0])
        buf = cgutils.alloca_once(builder, i64, size=max(1, n), name="block_args")  # in the entry block
        for i, w in enumerate(words):
            builder.store(w, builder.gep(buf, [ir.Constant(i64, i)]))
        return builder.ptrtoint(buf, i64)

    return sig, codegen


def _word(builder, args, at: int):
    i64 = ir.IntType(64)
    return builder.load(builder.gep(builder.inttoptr(args, i64.as_pointer()), [ir.Constant(i64, at)]))


@intrinsic(prefer_literal=True)
def block_int(typingctx, args, at):
    """The int64 word `at` of a row block's parameters (`args`: their address)."""
    if not isinstance(at, types.IntegerLiteral):
        return None
    k = at.literal_value

    def codegen(context, builder, signature, values):
        return _word(builder, values[0], k)

    return types.int64(types.int64, at), codegen


@intrinsic(prefer_literal=True)
def block_array(typingctx, args, at, dtype, ndim):
    """A C-contiguous view of the array whose data address and `ndim` extents are the words from `at`
    of a row block's parameters (what `carray` of them gives, in one call)."""
    if not (isinstance(at, types.IntegerLiteral) and isinstance(ndim, types.IntegerLiteral)):
        return None
    elem = dtype.instance_type if isinstance(dtype, types.TypeRef) else dtype.dtype
    k, nd = at.literal_value, ndim.literal_value
    aryty = types.Array(elem, nd, "C")

    def codegen(context, builder, signature, values):
        i64 = ir.IntType(64)
        shape = [_word(builder, values[0], k + 1 + i) for i in range(nd)]
        itemsize = context.get_abi_sizeof(context.get_data_type(elem))
        strides, off = [], ir.Constant(i64, itemsize)
        for s in reversed(shape):
            strides.append(off)
            off = builder.mul(off, s)
        strides.reverse()
        data = builder.inttoptr(_word(builder, values[0], k), context.get_data_type(elem).as_pointer())
        out = make_array(aryty)(context, builder)
        populate_array(out, data=data, shape=shape, strides=strides, itemsize=ir.Constant(i64, itemsize), meminfo=None)
        return out._getvalue()

    return aryty(types.int64, at, dtype, ndim), codegen


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
