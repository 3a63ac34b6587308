"""Units as kernels: each unit's code is built as its own function with local names, identical
texts are one kernel, and a kernel called only once is written inline in `program` after all."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .writer import Writer

_CALL = "\x00call "  # a marker line in program's body, replaced by `finish`
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOCAL = re.compile(r"[tiamsk][0-9]+")  # names a kernel makes for itself (see Generator.tmp and emit.py)


@dataclass
class KernelText:
    """A kernel under construction: its parameters, as (local name, expression at the call)."""

    params: list[tuple[str, str]] = field(default_factory=list)
    by_expr: dict[str, str] = field(default_factory=dict)


class Units:
    """The part of the generator that turns units into kernels (a mixin of codegen.Generator)."""

    w: Writer
    counter: dict[str, int]
    kernel: KernelText | None
    kernels: dict[tuple[str, ...], tuple[str, list[str], Writer]]  # code -> (kind, params, text)
    calls: list[tuple[tuple[str, ...], list[str], str]]  # (kernel, arguments, label)
    kernel_writers: list[tuple[str, Writer]]

    def main_name(self, prefix: str) -> str:
        raise NotImplementedError

    def local(self, expr: str, prefix: str) -> str:
        """Inside a kernel: the parameter that receives `expr` (evaluated in `program`)."""
        k = self.kernel
        if k is None:
            return expr
        if expr not in k.by_expr:
            name = f"{prefix}{sum(p.startswith(prefix) for p, _ in k.params)}"
            k.by_expr[expr] = name
            k.params.append((name, expr))
        return k.by_expr[expr]

    def unit(self, kind: str, label: str, body: Callable[[], None]) -> None:
        """Emit `body` as a kernel called from `program` (inline if a kernel is already being built).
        The call is a marker until `finish`: a kernel called once is written inline after all."""
        if self.kernel is not None:
            body()
            return
        saved = (self.w, self.counter)
        self.w, self.counter, self.kernel = Writer(1), {}, KernelText()
        try:
            with self.w.owned_by(label):
                body()
            text, params = self.w, self.kernel.params
        finally:
            (self.w, self.counter), self.kernel = saved, None
        code = tuple(f"{d} {t.split('  # ')[0]}" for d, t, _ in text.lines if not t.startswith("#"))
        used = set(_NAME.findall(" ".join(code)))
        params = [(p, e) for p, e in params if p in used]  # dims an emitter asked for but did not use
        key = (", ".join(p for p, _ in params),) + code
        self.kernels.setdefault(key, (kind, [p for p, _ in params], text))
        self.calls.append((key, [e for _, e in params], label))
        self.w.line(f"{_CALL}{len(self.calls) - 1}")

    def finish(self) -> Writer:
        """`program`'s body with each call marker replaced: a call of a kernel used more than once,
        or the kernel's text inline (its locals renamed apart, its parameters bound first)."""
        count: dict[tuple, int] = {}
        for key, _, _ in self.calls:
            count[key] = count.get(key, 0) + 1
        names: dict[tuple, str] = {}
        out = Writer(0)
        for depth, text, owner in self.w.lines:
            if not text.startswith(_CALL):
                out.lines.append((depth, text, owner))
                continue
            key, exprs, label = self.calls[int(text[len(_CALL) :])]
            kind, params, body = self.kernels[key]
            if count[key] > 1:
                if key not in names:
                    names[key] = f"{kind}_{sum(v.startswith(kind + '_') for v in names.values())}"
                    self.kernel_writers.append((f"def {names[key]}({', '.join(params)}):", body))
                out.lines.append((depth, f"{names[key]}({', '.join(exprs)})  # {label}", label))
                continue
            n = self.main_name("u")
            subst = {}
            for p, e in zip(params, exprs):
                if _NAME.fullmatch(e) or e.isdigit():
                    subst[p] = e
                else:
                    subst[p] = f"{p}_{n}"
                    out.lines.append((depth, f"{p}_{n} = {e}", label))

            def rename(m: re.Match, subst=subst, n=n) -> str:
                w = m.group(0)
                return subst.get(w, f"{w}_{n}" if _LOCAL.fullmatch(w) else w)

            for d, t, o in body.lines:
                code, sep, note = t.partition("  # ")
                line = t if t.startswith("#") else _NAME.sub(rename, code) + sep + note
                out.lines.append((depth + d - 1, line, o))
        return out
