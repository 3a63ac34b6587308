"""`shaped(a, shape)`: a C-contiguous array seen with another shape, for generated code.

What `a.reshape(shape)` gives for the arrays generated code reshapes (C-contiguous, the product of
`shape` equal to `a.size`), as an intrinsic: Numba's `reshape` compiles its shape normalisation
(`normalize_reshape_value`) into every generated module and lowers a general check per call, which
cost a cold compile about 0.05 s per module. An array Numba cannot prove C-contiguous (layout 'A')
is checked at run time: a strided one raises ValueError, as `reshape` does.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


@intrinsic
def shaped(typingctx, a, shape):
    """`a` (C-contiguous, `a.size` elements) as an array of `shape` (a tuple of ints), sharing its data."""
    if not isinstance(a, types.Array) or not isinstance(shape, types.BaseTuple):
        return None
    if not all(isinstance(d, types.Integer) for d in shape):
        return None
    nd = len(shape)
    out_type = types.Array(a.dtype, nd, "C", readonly=not a.mutable)

    def codegen(context, builder, signature, args):
        src = make_array(a)(context, builder, args[0])
        if a.layout != "C":
            _check_contiguous(context, builder, a, src)
        extents = cgutils.unpack_tuple(builder, args[1], nd)
        dims = [context.cast(builder, d, t, types.intp) for d, t in zip(extents, signature.args[1])]
        strides, step = [], src.itemsize
        for d in reversed(dims):
            strides.append(step)
            step = builder.mul(step, d)
        strides.reverse()
        out = make_array(out_type)(context, builder)
        populate_array(out, data=src.data, shape=dims, strides=strides, itemsize=src.itemsize, meminfo=src.meminfo)
        return impl_ret_borrowed(context, builder, out_type, out._getvalue())

    return out_type(a, shape), codegen


def _check_contiguous(context, builder, aryty, src) -> None:
    """Raise ValueError unless the array's strides are those of a C-contiguous array (extents of
    1 may have any stride, as NumPy's flags say)."""
    shape = cgutils.unpack_tuple(builder, src.shape, aryty.ndim)
    strides = cgutils.unpack_tuple(builder, src.strides, aryty.ndim)
    ok, step = cgutils.true_bit, src.itemsize
    one = ir.Constant(step.type, 1)
    for d, s in zip(reversed(shape), reversed(strides)):
        fits = builder.or_(builder.icmp_signed("==", s, step), builder.icmp_signed("<=", d, one))
        ok = builder.and_(ok, fits)
        step = builder.mul(step, d)
    with builder.if_then(builder.not_(ok), likely=False):
        context.call_conv.return_user_exc(builder, ValueError, ("shaped: the array is not C-contiguous",))
