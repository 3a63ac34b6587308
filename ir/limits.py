"""The limits rnncomp puts on what a user can write, each checked up front with an error naming it.

They keep hostile or mistaken input from reaching a Python, NumPy or LLVM limit far from its cause:
nesting drives the recursive-descent parsers (Python's stack), huge literals reach `int()` (4,300
digits) or NumPy, a delay d makes d carried values, and a name becomes an identifier in generated code.
Each is far above anything a real cell needs.
"""

from __future__ import annotations

from .errors import VerifyError

MAX_NESTING = 100  # nested calls, constant lists, parentheses in a count, loop bodies in a program
MAX_NUMBER_CHARS = 100  # characters of one number literal (a float prints in at most 24)
MAX_INT = 2**63 - 1  # an int attribute, count, dim or delay fits int64
MAX_DELAY = 1_000  # h[t-d]: each step of delay is one carried value (compile time is linear in d, but
# numba-cpu compiles ~0.3 s per carried value: d=1000 is minutes)
MAX_NAME_LENGTH = 100  # a user's name (cell, seq, param, state, output, node); @-suffixes come on top
MAX_TOKEN_CHARS = 1_000  # one name token of the text forms, @-suffixes included
MAX_COUNT_CHARS = 200  # a symbolic count like "T//4*4" (its parse and evaluation recurse)
MAX_UNROLL_STEPS = 10_000  # copies of the cell a full unroll (T) or an unroll factor k makes: each is
# nodes in the IR and code to compile (a full unroll of 10**10 steps would end in MemoryError)


def check_name_length(name: str, what: str) -> None:
    """A VerifyError when `name` (before any @-suffix) is longer than MAX_NAME_LENGTH."""
    base = name.partition("@")[0]
    if len(base) > MAX_NAME_LENGTH:
        raise VerifyError(
            f"{what} name {base[:20]!r}... is {len(base)} characters long; names are limited to "
            f"{MAX_NAME_LENGTH} characters (ir.limits.MAX_NAME_LENGTH)"
        )


def check_delay(delay: int, what: str) -> None:
    """A VerifyError when a delay is above MAX_DELAY."""
    if delay > MAX_DELAY:
        raise VerifyError(
            f"{what}: delay {_short(delay)} is above the limit of {MAX_DELAY} steps (ir.limits.MAX_DELAY); "
            "each step of delay is a carried value"
        )


def _short(v: int) -> str:
    return str(v) if v < 10**30 else f"~2**{v.bit_length() - 1}"  # str() of a huge int is itself limited


def check_unroll_steps(steps: int, what: str) -> None:
    """A VerifyError when an unroll would copy the cell more than MAX_UNROLL_STEPS times."""
    if steps > MAX_UNROLL_STEPS:
        raise VerifyError(
            f"{what} of {_short(steps)} steps is above the limit of {MAX_UNROLL_STEPS} (ir.limits.MAX_UNROLL_STEPS); "
            "unroll='loop' or a small int k runs any length"
        )
