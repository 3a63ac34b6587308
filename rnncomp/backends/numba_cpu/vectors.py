"""`wide_vectors()`: lets LLVM use the CPU's widest vectors (AVX-512) in the function that calls it.

LLVM's tuning for AVX-512 Intel cores (Skylake-X to Sapphire Rapids) prefers 256-bit vectors, so
Numba's code never uses zmm registers. Generated kernels are mostly FMAs on arrays in L1 (a small
recurrent product, the gate loops), bound by loads and FMAs per element: 512-bit vectors halve
both (S forward, 1x32 @ 32x128 a step and its gates: 185 -> 129 us over 1000 steps). The
function gets the attribute `"prefer-vector-width"="512"` (what clang's -mprefer-vector-width=512
sets), for this function only: the rest of the process, the user's own Numba code included, keeps
Numba's target. On a CPU without AVX-512 it changes nothing (a preference, not a feature).
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

ATTRIBUTE = '"prefer-vector-width"="512"'


@intrinsic
def wide_vectors(typingctx):
    """Mark the calling function (the one being lowered) to prefer 512-bit vectors; no code."""

    def codegen(context, builder, signature, args):
        # llvmlite's FunctionAttributes accepts only enum attributes by name; a string attribute
        # is printed as written, which is LLVM's syntax for one.
        set.add(builder.function.attributes, ATTRIBUTE)
        return context.get_dummy_value()

    return types.void(), codegen
