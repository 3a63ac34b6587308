"""Units as kernels: each unit's code is built as its own function with local names, kernels equal
up to the names of their locals are one kernel, and a kernel called only once is written inline where it is called.

Names a kernel makes (its locals, Generator.tmp, and its parameters) are marked where they are
written (common/names.py): the marks tell which parameters a body uses and which names an inlined
copy renames, without reading the code back.

Kernels nest: a unit emitted while another kernel is being built is a kernel of its own called
from that one (a row block's fused loops, rowloops.py). A name bound in one kernel reaches a
kernel nested in it as a parameter (`local`, with the kernel that binds it as `home`).
A `parallel` kernel (a loop over row blocks) is written as a block `cfunc` of launch.py's fixed
signature, which reads its parameters from int64 words that `program` writes at the call (launch.py's
`block_args`, `block_int`, `block_array`: one intrinsic call per parameter); the
one `run_blocks` (compiled once, cached) runs the blocks on Numba's threads. A `parallel=True`
function per loop would cost seconds of Numba's parallel compilation each.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..common.names import Namespace, mark, names_in, plain, substitute
from ..common.values import tuple_text
from ..common.writer import Writer
from .errors import NumbaBackendError

PARALLEL = ("rows",)  # kinds of unit written as a block cfunc run by launch.run_blocks
BLOCK = "p0"  # the block index, the first parameter of a parallel kernel's block function
_NP = {"f32": "np.float32", "f64": "np.float64", "i32": "np.int32", "i64": "np.int64"}
_uids = itertools.count(1)


# A kernel called from at most this many places, all inside row blocks, is written out at each call
# (as a kernel called once is): a partial unroll's k steps then run as one straight piece of code in
# their block (at S, k=4: 0.39 -> 0.35 ms). Written out rather than inlined by Numba (inline="always"):
# Numba's inliner cost a cold compile 5% more (three_node, narx, layernorm_lstm; benchmarks/RESULTS.md).
# A full unroll's T calls of one kernel, and `program`'s own calls, stay calls (compile time stays
# flat in T, and separate functions compiled faster than the same code written into `program`).
INLINE_CALLS = 8


class CallLine(str):
    """The line where a kernel is called (calls[index]): replaced by `finish` with the call or the
    kernel's text. Its text only keeps calls apart in a kernel's dedup key."""

    index: int

    def __new__(cls, index: int) -> CallLine:
        line = super().__new__(cls, f"<call {index}>")
        line.index = index
        return line


@dataclass(eq=False)
class KernelText:
    """A kernel under construction: its parameters, as (local name, expression at the call)."""

    parent: KernelText | None = None
    params: list[tuple[str, str]] = field(default_factory=list)
    by_expr: dict[str, str] = field(default_factory=dict)
    per_prefix: Counter = field(default_factory=Counter)
    names: Namespace = field(default_factory=Namespace)  # its variables named after IR nodes
    uid: int = field(default_factory=lambda: next(_uids))
    over: str | None = None  # a parallel kernel's block count (a parameter)

    def param(self, expr: str, prefix: str) -> str:
        if expr not in self.by_expr:
            name = mark(f"{prefix}{self.per_prefix[prefix]}")
            self.per_prefix[prefix] += 1
            self.by_expr[expr] = name
            self.params.append((name, expr))
        return self.by_expr[expr]


@dataclass
class KernelDef:
    kind: str
    params: list[str]
    text: Writer
    over: str | None
    ir_names: frozenset[str] = frozenset()  # its variables named after IR nodes (`h`)


class Units:
    """The part of the generator that turns units into kernels (a mixin of codegen.Generator)."""

    w: Writer
    counter: dict[str, int]
    kernel: KernelText | None
    kernels: dict[tuple[str, ...], KernelDef]  # code -> definition
    calls: list[tuple[tuple[str, ...], list[str], str]]  # (kernel, arguments, label)
    kernel_writers: list[tuple[str, Writer, str]]  # (signature, body, "njit" or "cfunc")
    abi: dict[str, tuple]  # program's names -> ("int",) | ("array", dtype, rank) | ("pack", dtype)
    args: list

    def address_arg(self, function: str) -> str:
        raise NotImplementedError

    def main_name(self, prefix: str) -> str:
        raise NotImplementedError

    def home(self) -> int:
        """The kernel being built (0: `program`), where names bound now live."""
        return self.kernel.uid if self.kernel is not None else 0

    def local(self, expr: str, prefix: str, home: int = 0) -> str:
        """The name, in the kernel being built, of `expr` bound in kernel `home` (0: `program`):
        itself there, else a parameter of each kernel in between."""
        chain, k = [], self.kernel
        while k is not None and k.uid != home:
            chain.append(k)
            k = k.parent
        for k in reversed(chain):
            expr = k.param(expr, prefix)
        return expr

    def main_expr(self, name: str) -> str:
        """What a name of the kernel being built stands for in `program` (a parameter, followed out)."""
        k = self.kernel
        while k is not None:
            inv = {v: e for e, v in k.by_expr.items()}
            if name not in inv:
                break
            name, k = inv[name], k.parent
        return name

    def unit(self, kind: str, label: str, body: Callable[[], None]) -> None:
        """Emit `body` as a kernel called from the code being written. The call is a marker
        until `finish`: a kernel called once (and not parallel) is written inline after all."""
        saved = (self.w, self.counter, self.kernel)
        self.w, self.counter, self.kernel = Writer(1), {}, KernelText(parent=self.kernel)
        try:
            with self.w.owned_by(label):
                body()
            text, k = self.w, self.kernel
        finally:
            self.w, self.counter, self.kernel = saved
        code = [f"{d} {t.split('  # ')[0]}" for d, t, _ in text.lines if not t.startswith("#")]
        calls = [" ".join(self.calls[t.index][1]) for _, t, _ in text.lines if isinstance(t, CallLine)]
        used = set(names_in(" ".join(code + calls))) | {k.over}
        params = [(p, e) for p, e in k.params if p in used]  # dims an emitter asked for but did not use
        order: dict[str, str] = {}  # the key renames locals by first appearance: equal up to names is equal

        def canonical(name: str) -> str:
            return order.setdefault(name, f"#{len(order)}")

        key = (", ".join(canonical(p) for p, _ in params), kind) + tuple(substitute(c, canonical) for c in code)
        self.kernels.setdefault(key, KernelDef(kind, [p for p, _ in params], text, k.over, frozenset(k.names.taken)))
        self.calls.append((key, [e for _, e in params], label))
        self.w.line(CallLine(len(self.calls) - 1))

    def _called_outside_blocks(self) -> set[tuple]:
        """The kernels with a call site that is not inside a row block (reached from `program`
        through non-parallel kernels only): those stay calls, so that `program` compiles as fast."""
        outside: set[tuple] = set()
        walked: set[tuple] = set()  # (kernel, inside a block): a kernel's text is walked once each way

        def walk(lines, inside: bool) -> None:
            for _, text, _ in lines:
                if isinstance(text, CallLine):
                    key = self.calls[text.index][0]
                    here = inside or self.kernels[key].kind in PARALLEL
                    if not here:
                        outside.add(key)
                    if (key, here) not in walked:
                        walked.add((key, here))
                        walk(self.kernels[key].text.lines, here)

        walk(self.w.lines, False)
        return outside

    def finish(self) -> Writer:
        """`program`'s body with each call marker replaced: a call of a kernel used more than once
        (or parallel), or the kernel's text inline (its locals renamed apart, parameters bound first)."""
        count = Counter(key for key, _, _ in self.calls)
        names: dict[tuple, str] = {}
        numbered: Counter = Counter()  # kernel functions named so far, per kind
        outside = self._called_outside_blocks()

        def define(key: tuple) -> str:
            if key not in names:
                d = self.kernels[key]
                names[key] = name = f"{d.kind}_{numbered[d.kind]}"
                numbered[d.kind] += 1
                body = Writer(0)
                body.lines = expand(d.text.lines, plain, 0, set(d.ir_names))
                self.kernel_writers.append((f"def {name}({', '.join(map(plain, d.params))}):", body, "njit"))
            return names[key]

        def parallel(key: tuple, exprs: list[str], label: str, depth: int) -> list:
            """A block cfunc for this call (its parameters' types are this call's), and the call."""
            d = self.kernels[key]
            name = f"{d.kind}_{numbered[d.kind]}"
            numbered[d.kind] += 1
            unpack, pack, at = [], [], 0
            for p, e in zip(map(plain, d.params), exprs):
                what = self.abi.get(e)
                if what is None:
                    raise NumbaBackendError(f"numba-cpu internal error: {e!r} cannot be passed to a row block")
                pack.append(e)
                if what[0] == "int":
                    unpack.append(f"{p} = block_int(args, {at})")
                    at += 1
                    continue
                rank = 1 if what[0] == "pack" else what[2]
                view = f"block_array(args, {at}, {_NP[what[1]]}, {rank})"
                if what[0] == "pack":
                    view = f"({view}, block_int(args, {at + 1 + rank}))"
                unpack.append(f"{p} = {view}")
                at += 1 + rank + (what[0] == "pack")
            body = Writer(0)
            body.lines = [(1, line, label) for line in unpack] + expand(d.text.lines, plain, 0, set(d.ir_names))
            self.kernel_writers.append((f"def {name}({BLOCK}, args):", body, "cfunc"))
            blocks = exprs[d.params.index(d.over)] if d.over in d.params else "1"
            args = tuple_text(pack)
            call = f"run_blocks({self.address_arg(name)}, {blocks}, block_args({args}))"
            lines = [(depth, f"{call}  # {label}: the {at} words of {name}'s parameters", label)]
            return lines

        def expand(lines, rename: Callable[[str], str], shift: int, taken: set[str]) -> list:
            """Lines with their marked names spelled by `rename` (final text), calls expanded;
            `taken`: the IR-named variables of the function being written (an inlined kernel's keep
            their names where still free there)."""
            out = []
            for depth, text, owner in lines:
                if not isinstance(text, CallLine):
                    code, sep, note = text.partition("  # ")
                    line = text if text.startswith("#") else substitute(code, rename) + sep + note
                    out.append((depth + shift, line, owner))
                    continue
                key, exprs, label = self.calls[text.index]
                exprs = [substitute(e, rename) for e in exprs]
                d = self.kernels[key]
                if d.kind in PARALLEL:
                    out += parallel(key, exprs, label, depth + shift)
                    continue
                if count[key] > (1 if key in outside else INLINE_CALLS):  # a call; an int literal is passed
                    # as np.int64 (Numba compiles a kernel per literal)
                    args = ", ".join(f"np.int64({e})" if e.isdigit() else e for e in exprs)
                    out.append((depth + shift, f"{define(key)}({args})  # {label}", label))
                    continue
                n = self.main_name("u")
                subst = {}  # a parameter -> what it is at this call; every other marked name is a local
                for p, e in zip(d.params, exprs):
                    if e.isidentifier() or e.isdigit():
                        subst[p] = e
                    else:
                        subst[p] = f"{plain(p)}_{n}"
                        out.append((depth + shift, f"{subst[p]} = {e}", label))

                kept = {x: x if x not in taken else f"{x}_{n}" for x in d.ir_names}  # h, or h_u3 if taken
                taken |= set(kept.values())

                def inner(name: str, subst=subst, n=n, kept=kept) -> str:
                    return subst.get(name) or kept.get(plain(name)) or f"{plain(name)}_{n}"

                out += expand(d.text.lines, inner, depth + shift - 1, taken)
            return out

        result = Writer(0)
        result.lines = expand(self.w.lines, plain, 0, set(self.main_names.taken))
        return result
