"""Names a printer makes, marked where it writes them, so that it can later tell them apart in its
own lines without reading the code back: which parameters a kernel's body uses, which names to
rename when a kernel is written inline, which host names a CUDA kernel takes as parameters.

A marked name is the name between two MARK characters. MARK is a control character: no IR name,
literal or comment can hold one (comments go through `comment_text`, which escapes it), so the
marks in a line are exactly the names the printer made there. `plain` drops the marks when the
source is rendered.
"""

from __future__ import annotations

import builtins
import keyword
from collections.abc import Callable

MARK = "\x1f"  # ASCII unit separator


def mark(name: str) -> str:
    """`name` as the printer writes it into its lines."""
    return f"{MARK}{name}{MARK}"


def is_marked(text: str) -> bool:
    """Whether `text` is exactly one marked name."""
    return len(text) > 2 and text[0] == MARK and text[-1] == MARK and text.count(MARK) == 2


def is_name(text: str) -> bool:
    """Whether `text` is one name (marked or a plain identifier), so that it needs no binding."""
    return is_marked(text) or text.isidentifier()


def names_in(text: str) -> list[str]:
    """The marked names in `text`, marks kept, in order of appearance."""
    parts = text.split(MARK)
    return [mark(parts[k]) for k in range(1, len(parts), 2)]


def substitute(text: str, rename: Callable[[str], str]) -> str:
    """`text` with each marked name `m` replaced by `rename(m)` (the rest of the text untouched)."""
    parts = text.split(MARK)
    for k in range(1, len(parts), 2):
        parts[k] = rename(mark(parts[k]))
    return "".join(parts)


def plain(text: str) -> str:
    """`text` as it is rendered: the marks dropped."""
    return text.replace(MARK, "")


# ---------------------------------------------------------------- variables named after IR nodes

# Words the printers write themselves (module globals, helpers and their locals, fixed kernel locals), besides
# Python's keywords and builtins. A variable named after an IR node never takes one of these:
# tests/test_golden.py checks that every such word in generated code is listed here.
RESERVED = frozenset(
    """BLAS BLOCK_THREADS FASTMATH LLVM_LEVEL MAX_BLOCKS PERSISTENT_THREADS ROW_WORK STEP_WORK THREADS TILE acc args
    as_pointer block_args block_array block_int blocks_for carray
    cfunc cl col cuda dyn e float32 float64 gemm gemm_nt gemm_packed gemm_step gemm_tn grid grid_1d grid_gemm it ka
    kb kk m math n n_threads njit np numba one p pack_b prange program q row rows_nt rt run_blocks sa sb
    shaped step_parts tx ty u wide_vectors x z""".split()
)
_PRINTER_PREFIXES = ("in_", "d_", "f_")  # inputs, dims and addresses: names the printers make from others
_STEP = frozenset("0123456789")


def ir_base(name: str | None) -> str | None:
    """The part of an IR node's name a variable is named after: `h@3` -> `h`, `c@t-1` -> `c`,
    `dstate@h@2` -> `dstate_h` (the step, the same in every unrolled copy, is dropped, so that the
    copies of a step still write equal kernels); characters outside [A-Za-z0-9_] become `_` (an
    allowlist). None for an unnamed node or a name that does not start with a letter."""
    if not name:
        return None
    parts = name.split("@")
    if len(parts) > 1 and _is_step(parts[-1]):
        parts = parts[:-1]
    base = "_".join("".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in p) for p in parts)
    return base if base[:1].isascii() and base[:1].isalpha() else None


def _is_step(tag: str) -> bool:
    """`3`, `t`, `t-1`, `t+2`: the step part of an unrolled node's name."""
    rest = tag[1:].lstrip("+-") if tag.startswith("t") else tag
    return (rest == "" and tag == "t") or (rest != "" and set(rest) <= _STEP)


def _safe(base: str) -> str:
    """`base`, or `base_` where it could be taken for a printer's own name: a keyword, a builtin, a
    reserved word, a name ending in a digit (the printers' counters: `t3`, `copy_0`, `t3_u2`), one
    with a printer's prefix, or a CUDA kernel's name (`k3_fused`)."""
    clash = (
        keyword.iskeyword(base)
        or keyword.issoftkeyword(base)
        or hasattr(builtins, base)
        or base in RESERVED
        or base[-1].isdigit()
        or base.startswith(_PRINTER_PREFIXES)
        or (base[0] == "k" and base[1:2].isdigit())
    )
    return base + "_" if clash else base


class Namespace:
    """The variables named after IR nodes in one scope, made unique there: `h`, then `h_1_`, `h_2_`
    (a trailing `_` never ends a printer's own name). `outer`: a scope whose names this one must
    not reuse either (a CUDA kernel's locals and the host names it takes as parameters)."""

    def __init__(self, outer: Namespace | None = None) -> None:
        self.taken: set[str] = set()
        self.outer = outer

    def _free(self, name: str) -> bool:
        ns: Namespace | None = self
        while ns is not None:
            if name in ns.taken:
                return False
            ns = ns.outer
        return True

    def take(self, base: str) -> str:
        """A fresh name for `base` (see ir_base) in this scope."""
        name, k = _safe(base), 1
        while not self._free(name):
            name, k = f"{_safe(base)}_{k}_", k + 1
        self.taken.add(name)
        return name
