"""The `@rc.cell` decorator: trace a Python function of one step, its arguments annotated
`Seq[...]`, `State[...]`, `Param[...]` or `Static[...]`, into a verified Cell through the `rc.Graph` builder."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from ir import DSLError, Node

from .dsl import Graph, Value, _check_prev


class _Decl:
    """`Seq["B", 16]`, `State["B", 32]`, `Param[16, 128]`, `Static["B", 16]`: a role and a shape (and an
    optional dtype)."""

    def __init__(self, role: str, dims: tuple, dtype: str = "f32"):
        self.role, self.dims, self.dtype = role, dims, dtype

    def __repr__(self) -> str:
        return f"{self.role.capitalize()}{list(self.dims)}"


class _Role:
    def __init__(self, role: str):
        self.role = role

    def __getitem__(self, dims: Any) -> _Decl:
        dims = dims if isinstance(dims, tuple) else (dims,)
        dtype = "f32"
        if dims and isinstance(dims[-1], str) and dims[-1] in ("f32", "f64", "float32", "float64"):
            dims, dtype = dims[:-1], dims[-1]
        return _Decl(self.role, dims, dtype)

    def __repr__(self) -> str:
        return self.role.capitalize()


Seq = _Role("seq")
Param = _Role("param")
Static = _Role("static")
_State_role = _Role("state")


def cell(fn: Callable | None = None, *, name: str | None = None) -> Any:
    """Trace a Python function of one step into a Cell.

    Arguments are annotated `Seq[...]`, `State[...]`, `Param[...]` or `Static[...]` (one value per
    batch row, the same at every step); a state argument holds its
    value from the previous step. The function returns a dict: keys naming a state give its new
    value, other keys are per-step outputs.
    """
    if fn is None:
        return lambda f: cell(f, name=name)
    try:
        # String annotations (`from __future__ import annotations`) may name closure variables too.
        free = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__ or ())))
        anns = inspect.get_annotations(fn, eval_str=True, locals=free)
    except Exception as e:  # an annotation that does not evaluate
        hint = ""
        if isinstance(e, NameError) and any(isinstance(a, str) for a in getattr(fn, "__annotations__", {}).values()):
            hint = (
                " (the annotations are strings, as under `from __future__ import annotations`, so names local to"
                " an enclosing function are not visible: drop that import in this module or use module-level names)"
            )
        raise DSLError(f"@rc.cell {fn.__name__}: cannot read its annotations: {e}{hint}") from None
    g = Graph(name or fn.__name__)
    args: dict[str, Value] = {}
    code = fn.__code__
    loc = f"{code.co_filename}:{code.co_firstlineno}"  # the arguments are declared at the def line
    for pname in inspect.signature(fn).parameters:
        decl = anns.get(pname)
        if not isinstance(decl, _Decl):
            raise DSLError(
                f"@rc.cell {fn.__name__}: argument {pname!r} needs an annotation "
                "Seq[...], State[...], Param[...] or Static[...]"
            )
        if decl.role == "seq":
            args[pname] = g.seq(pname, decl.dims, decl.dtype, loc=loc)
        elif decl.role == "param":
            args[pname] = g.param(pname, decl.dims, decl.dtype, loc=loc)
        elif decl.role == "static":
            args[pname] = g.static(pname, decl.dims, decl.dtype, loc=loc)
        else:
            st = g.state(pname, decl.dims, decl.dtype, loc=loc)
            args[pname] = _PrevState(st.node)
    result = fn(**args)
    if not isinstance(result, dict) or not result:
        raise DSLError(
            f"@rc.cell {fn.__name__}: must return a non-empty dict (state name -> new value, output name -> value), "
            f"got {type(result).__name__}"
        )
    for key, v in result.items():
        if not isinstance(key, str):
            raise DSLError(f"@rc.cell {fn.__name__}: return key {key!r} is not a string")
        if not isinstance(v, Value):
            raise DSLError(f"@rc.cell {fn.__name__}: returned {key!r} is {v!r}, not a cell value")
        if key in g._placeholders:
            g._define(key, v)
        elif key in args:
            raise DSLError(
                f"@rc.cell {fn.__name__}: return key {key!r} names an input, not a state or a new output"
                f"{_closest(key, list(g._placeholders), 'state')}"
            )
        else:
            g.output(key, v)
    missing = [k for k in g._placeholders if k not in g._defs]
    if missing:
        k = missing[0]
        near = difflib.get_close_matches(k, list(g._outputs), n=1)
        hint = (
            f" (the key {near[0]!r} names no state, so it made a new per-step output: did you mean {k!r}?)"
            if near
            else ""
        )
        raise DSLError(f"@rc.cell {fn.__name__}: state {k!r} is not given a new value: return it under key {k!r}{hint}")
    return g.build()


def _closest(name: str, options: list[str], what: str) -> str:
    near = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {what} {near[0]!r}?)" if near else ""


class _PrevState(Value):
    """A state argument of an `@rc.cell` function: its value one step back; `.prev(d)` goes further."""

    __slots__ = ()

    def __init__(self, node: Node):
        super().__init__(node, 1)

    def prev(self, d: int = 1) -> Value:
        """The state d steps back (`h.prev(1)` is the argument itself, `h.prev(2)` is h[t-2])."""
        _check_prev(d)
        return Value(self.node, d)
