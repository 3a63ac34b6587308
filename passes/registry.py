"""Passes as typed objects: a name, options as dataclass fields, the kind of IR taken and given.

A pass is a frozen dataclass subclassing `Pass`; `@register_pass` files it under its `name` in
`PASSES` (xDSL's `ModulePass`, Numba's `register_pass`). A plain function `f(ir, **options)` can be
registered too: its annotations give the IR kinds and its keyword defaults the option fields.
Options are checked when a pass is made (`Pass.make`), so a pipeline fails when it is built.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from ir import Cell, PassError, Program


class IRKind(StrEnum):
    """The kinds of IR a pass takes and gives (the arrows of DESIGN.md's pipeline)."""

    cell = "cell"
    program = "program"
    kernel = "kernel program"


def kind_of(ir: Any) -> IRKind | None:
    """The kind of an IR object, or None for an object that is no IR this registry knows."""
    if isinstance(ir, Cell):
        return IRKind.cell
    if isinstance(ir, Program):
        return IRKind.program
    return getattr(ir, "ir_kind", None)


class Analyses:
    """Results computed from an IR object once and shared by the passes that need them (MLIR's
    analysis manager): `get(fn, ir)` is `fn(ir)`, cached for the lifetime of this object."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Any, int], tuple[Any, Any]] = {}

    def get(self, fn: Callable[[Any], Any], ir: Any) -> Any:
        key = (fn, id(ir))
        if key not in self._cache:
            self._cache[key] = (ir, fn(ir))  # the IR is held so that its id is not reused
        return self._cache[key][1]


@dataclass(frozen=True)
class Pass:
    """One transformation. Subclasses set `name`, `takes`, `gives`, declare options as fields
    (with defaults) and implement `apply`; `check` rejects option values out of range."""

    name: ClassVar[str] = ""
    takes: ClassVar[IRKind] = IRKind.program
    gives: ClassVar[IRKind] = IRKind.program

    def apply(self, ir: Any, analyses: Analyses) -> Any:  # pragma: no cover - every subclass overrides
        raise NotImplementedError(type(self).__name__)

    def check(self) -> None:
        """Raise PassError naming the option whose value this pass cannot take."""

    @classmethod
    def make(cls, **options: Any) -> Pass:
        """The pass with these options, each checked against its field's type and `check`."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for k in options:
            if k not in fields:
                known = ", ".join(fields) or "none"
                raise PassError(f"pass {cls.name!r} has no option {k!r}; its options: {known}")
        hints = typing.get_type_hints(cls)
        for k, v in options.items():
            allowed = _types(hints[k])
            if not any(_is(v, t) for t in allowed):
                want = " or ".join(t.__name__ for t in allowed)
                raise PassError(f"pass {cls.name!r}: option {k!r} must be {want}, got {v!r}")
        p = cls(**options)
        p.check()
        return p

    def options(self) -> dict[str, Any]:
        """The options that differ from their defaults, in field order (what the text form shows)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.default is dataclasses.MISSING or v != f.default or type(v) is not type(f.default):
                out[f.name] = v
        return out

    def __str__(self) -> str:
        opts = self.options()
        if not opts:
            return self.name
        return f"{self.name}{{{','.join(f'{k}={format_value(v)}' for k, v in opts.items())}}}"


def _types(hint: Any) -> tuple[type, ...]:
    args = typing.get_args(hint)
    return tuple(a for a in args if isinstance(a, type)) if args else (hint,)


def _is(v: Any, t: type) -> bool:
    if t is int:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, t)


_PLAIN = re.compile(r"[A-Za-z0-9_.+-]+\Z")


def format_value(v: Any) -> str:
    """An option value as the text form writes it: `true`, `4`, `loop`, or a quoted string."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str) and (not _PLAIN.match(v) or v in ("true", "false") or re.fullmatch(r"-?\d+", v)):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(v)


PASSES: dict[str, type[Pass]] = {}


def register_pass(target: Any = None, *, takes: IRKind | None = None, gives: IRKind | None = None) -> Any:
    """Register a pass: `@register_pass` on a `Pass` subclass, or `@register_pass("name")` on a
    function `f(ir, **options) -> ir` whose annotations (Cell, Program) give the IR kinds."""
    if isinstance(target, type) and issubclass(target, Pass):
        return _register(target)
    if not isinstance(target, str):
        raise TypeError("register_pass: use @register_pass on a Pass subclass or @register_pass('name') on a function")
    name = target

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        _register(_function_pass(name, fn, takes, gives))
        return fn

    return deco


def _register(cls: type[Pass]) -> type[Pass]:
    if not cls.name:
        raise TypeError(f"register_pass: {cls.__name__} has no name")
    PASSES[cls.name] = cls
    return cls


def _function_pass(name: str, fn: Callable[..., Any], takes: IRKind | None, gives: IRKind | None) -> type[Pass]:
    """A Pass subclass around `fn`: one field per keyword parameter with a default."""
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn)
    params = list(sig.parameters.values())
    first = hints.get(params[0].name) if params else None
    fields = []
    for p in params[1:]:
        if p.default is inspect.Parameter.empty:
            raise TypeError(f"register_pass({name!r}): option {p.name!r} of {fn.__name__} needs a default")
        fields.append((p.name, hints.get(p.name, type(p.default)), dataclasses.field(default=p.default)))

    def apply(self, ir, analyses):
        return fn(ir, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    ns = {
        "name": name,
        "takes": takes or _KINDS.get(first, IRKind.program),
        "gives": gives or _KINDS.get(hints.get("return"), IRKind.program),
        "apply": apply,
        "__doc__": fn.__doc__,
    }
    return dataclasses.make_dataclass(f"{fn.__name__}_pass", fields, bases=(Pass,), namespace=ns, frozen=True)


_KINDS: dict[Any, IRKind] = {Cell: IRKind.cell, Program: IRKind.program}
