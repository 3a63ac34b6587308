"""The Python DSL: `@rc.cell` functions and the `rc.Graph` builder, both producing a verified `Cell`.

Values carry a node and a delay; ops check shapes as they are applied, so a mistake is reported
at the line of the user's code that made it, naming the op and its operand types.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ir import (
    Cell,
    DSLError,
    Node,
    RnncompError,
    ShapeError,
    TensorType,
    Use,
    VerifyError,
    as_dtype,
    as_shape,
    verify_cell,
)
from ir.graph import CycleFound
from ir.limits import MAX_DELAY
from ir.ops import check_attrs, describe_call, get_op, infer_type
from ir.shapes import is_identifier

if TYPE_CHECKING:
    from .cell_decorator import _Decl

_HERE = os.path.dirname(os.path.abspath(__file__))


def _check_prev(d: object, have: int = 0) -> None:
    """`prev(d)`'s delay: an int >= 1, and the total delay at most ir.limits.MAX_DELAY."""
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise DSLError(f"{_user_site()}: prev({d!r}): the delay must be an int >= 1")
    if d + have > MAX_DELAY:
        raise DSLError(
            f"{_user_site()}: prev({d if d < 10**30 else '...'}): a delay of {d + have if d < 10**30 else 'more'} "
            f"steps is above the limit of {MAX_DELAY} (ir.limits.MAX_DELAY); each step of delay is a carried value"
        )


def _user_site() -> str:
    """`file.py:12`: the innermost frame outside rnncomp, where the user's call happened."""
    f = sys._getframe(1)
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(_HERE):
        f = f.f_back
    return f"{f.f_code.co_filename}:{f.f_lineno}" if f is not None else "?"


class Value:
    """A value in a cell under construction: a node read at a delay (0: this step)."""

    __slots__ = ("node", "delay")
    __array_priority__ = 1000  # let `ndarray * Value` reach our __rmul__

    def __init__(self, node: Node, delay: int = 0):
        self.node, self.delay = node, delay

    @property
    def type(self) -> TensorType:
        return self.node.type  # type: ignore[return-value]

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def dtype(self):
        return self.type.dtype

    def prev(self, d: int = 1) -> Value:
        """This sequence input or state read d >= 1 steps back (`h[t-d]`)."""
        _check_prev(d, self.delay)
        if self.node.op not in ("seq", "state"):
            same = " (the same at every step)" if self.node.op in ("param", "static") else ""
            raise DSLError(
                f"{_user_site()}: prev() reads a sequence input or a state at an earlier step; "
                f"{self.node.name or 'this value'} is a {self.node.op}{same}"
            )
        return Value(self.node, self.delay + d)

    def use(self) -> Use:
        return Use(self.node, self.delay)

    def __repr__(self) -> str:
        at = f"[t-{self.delay}]" if self.delay else ""
        return f"<Value {self.node.name or self.node.op}{at}: {self.type}>"

    def __bool__(self) -> bool:
        raise DSLError(
            f"{_user_site()}: a cell value has no truth value at trace time: Python control flow (`if`, `while`, "
            "`and`, `or`, `not`) runs once, when the cell is traced, and cannot depend on a value; "
            "use rc.where(cond, a, b) to choose elementwise"
        )

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """NumPy's arithmetic operators on a value (`array * v`, `np.float64(2) * v`) build DSL ops; any
        other NumPy function is an error naming the rc function to use."""
        op = _OPERATOR_UFUNCS.get(ufunc.__name__)
        if op is not None and method == "__call__" and not kwargs:
            return apply(op, *inputs)
        raise DSLError(f"{_user_site()}: {_numpy_misuse('np.' + ufunc.__name__, method)}")

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        name = getattr(func, "__name__", str(func))
        raise DSLError(f"{_user_site()}: {_numpy_misuse('np.' + name)}")

    __add__ = lambda a, b: apply("add", a, b)  # noqa: E731
    __radd__ = lambda a, b: apply("add", b, a)  # noqa: E731
    __sub__ = lambda a, b: apply("sub", a, b)  # noqa: E731
    __rsub__ = lambda a, b: apply("sub", b, a)  # noqa: E731
    __mul__ = lambda a, b: apply("mul", a, b)  # noqa: E731
    __rmul__ = lambda a, b: apply("mul", b, a)  # noqa: E731
    __truediv__ = lambda a, b: apply("div", a, b)  # noqa: E731
    __rtruediv__ = lambda a, b: apply("div", b, a)  # noqa: E731
    __matmul__ = lambda a, b: apply("matmul", a, b)  # noqa: E731
    __rmatmul__ = lambda a, b: apply("matmul", b, a)  # noqa: E731
    __neg__ = lambda a: apply("neg", a)  # noqa: E731
    __pos__ = lambda a: a  # noqa: E731
    __abs__ = lambda a: apply("abs", a)  # noqa: E731
    # Comparisons give 0/1 values of the operands' dtype. `==` and `!=` stay Python's identity
    # tests (values are dict keys and set members): use rc.equal / rc.not_equal.
    __lt__ = lambda a, b: apply("less", a, b)  # noqa: E731
    __le__ = lambda a, b: apply("less_equal", a, b)  # noqa: E731
    __gt__ = lambda a, b: apply("greater", a, b)  # noqa: E731
    __ge__ = lambda a, b: apply("greater_equal", a, b)  # noqa: E731

    def __pow__(self, exponent: Any) -> Value:
        """`x ** p` for a constant p (a Python number): the pow op with that exponent."""
        return pow(self, exponent)

    def __rpow__(self, base: Any) -> Value:
        raise DSLError(
            f"{_user_site()}: {base!r} ** <cell value>: the exponent of ** must be a constant; "
            "write rc.exp(x * math.log(base)) for a constant base"
        )


# NumPy ufuncs that Python's operators reach (`ndarray * v` calls np.multiply): they mean the DSL op.
_OPERATOR_UFUNCS = {
    "add": "add",
    "subtract": "sub",
    "multiply": "mul",
    "true_divide": "div",
    "divide": "div",
    "matmul": "matmul",
    "less": "less",
    "less_equal": "less_equal",
    "greater": "greater",
    "greater_equal": "greater_equal",
}
# NumPy names whose rc function is spelt differently.
_NUMPY_TO_RC = {
    "absolute": "abs",
    "negative": "neg",
    "power": "pow",
    "float_power": "pow",
    "concatenate": "concat",
    "amax": "max",
    "dot": "matmul",
    "subtract": "- (sub)",
    "multiply": "*",
    "true_divide": "/",
    "divide": "/",
    "add": "+",
}


def _numpy_misuse(what: str, method: str = "__call__") -> str:
    """The message for a NumPy function applied to a cell value: which rc function to use instead."""
    name = what.removeprefix("np.")
    call = what if method == "__call__" else f"{what}.{method}"
    rc_name = _NUMPY_TO_RC.get(name, name)
    import rnncomp

    if rc_name in rnncomp.__all__:
        hint = f"use rc.{rc_name}(...)"
    elif rc_name in ("+", "*", "/", "- (sub)"):
        hint = f"use the operator {rc_name}"
    else:
        hint = f"rnncomp has no {name!r} op; the op functions are listed in help(rnncomp) (README: Ops)"
    return f"{call}() on a cell value: NumPy functions compute on arrays and cannot trace a cell; {hint}"


def _as_value(x: Any, like: Value | None, op: str) -> Value:
    if isinstance(x, Value):
        return x
    if isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "iuf":
        x = x[()]  # a NumPy scalar that a ufunc turned into a 0-d array (`np.float64(2) < v`)
    if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_)):
        if like is None:
            raise DSLError(f"{_user_site()}: {op}: needs at least one cell value, got only numbers")
        return constant(float(x), like.dtype)
    if isinstance(x, np.ndarray):
        raise DSLError(
            f"{_user_site()}: {op}: operand is a NumPy array of shape {x.shape}, not a cell value; "
            "pass it as a Param (the same at every step) or wrap it as rc.constant(array)"
        )
    raise DSLError(f"{_user_site()}: {op}: operand {x!r} is neither a cell value nor a Python number")


def apply(op: str, *args: Any, **attrs: Any) -> Value:
    """Apply an op from the table to values (Python numbers become constants of the others' dtype)."""
    like = next((a for a in args if isinstance(a, Value)), None)
    vals = [_as_value(a, like, op) for a in args]
    opdef = get_op(op)
    types = [v.type for v in vals]
    try:
        attrs = check_attrs(opdef, attrs)
        t = infer_type(opdef, types, attrs)
    except RnncompError as e:
        call = describe_call(op, types, [_vname(v) for v in vals])
        raise type(e)(f"{_user_site()}: {e} in {call}") from None
    return Value(Node(op, [v.use() for v in vals], attrs, t, loc=_user_site()))


def _vname(v: Value) -> str:
    base = v.node.name or v.node.op
    return f"{base}[t-{v.delay}]" if v.delay else base


# ---------------------------------------------------------------- user-facing ops


def _unary(op: str) -> Callable[[Value], Value]:
    def f(x: Value) -> Value:
        return apply(op, x)

    f.__name__ = op
    f.__doc__ = f"Elementwise {op}."
    return f


tanh, sigmoid, relu, exp, log, softplus, neg, sqrt, rsqrt, abs, erf = (  # noqa: A001
    _unary(n) for n in ("tanh", "sigmoid", "relu", "exp", "log", "softplus", "neg", "sqrt", "rsqrt", "abs", "erf")
)
rsqrt.__doc__ = "Elementwise 1 / sqrt(x) (inf at 0, NaN below 0)."
abs.__doc__ = "Elementwise |x| (also `abs(x)`); its gradient at 0 is 0, as PyTorch's."
erf.__doc__ = "Elementwise error function erf(x) = 2/sqrt(pi) * integral of exp(-t^2) from 0 to x."


def gelu(x: Value, approximate: str = "none") -> Value:
    """GELU, x * Phi(x): exact (the erf form, `approximate="none"`) or PyTorch's `approximate="tanh"` form."""
    if approximate not in ("none", "tanh"):
        raise DSLError(f"{_user_site()}: gelu: approximate must be 'none' (exact, erf) or 'tanh', got {approximate!r}")
    return apply("gelu", x, tanh_approx=approximate == "tanh")


def pow(x: Value, exponent: float) -> Value:  # noqa: A001
    """Elementwise x ** exponent for a constant exponent (also `x ** 2.0`); NaN for x < 0 and a
    non-integer exponent, inf for 0 ** negative, as NumPy."""
    if isinstance(exponent, Value):
        raise DSLError(
            f"{_user_site()}: pow: the exponent must be a constant (a Python number), got a cell value; "
            "write rc.exp(y * rc.log(x)) for x > 0"
        )
    if isinstance(exponent, (bool, np.bool_)) or not isinstance(exponent, (int, float, np.integer, np.floating)):
        raise DSLError(f"{_user_site()}: pow: the exponent must be a Python number, got {exponent!r}")
    return apply("pow", x, exponent=float(exponent))


def _binary(op: str, doc: str) -> Callable[[Any, Any], Value]:
    def f(a: Any, b: Any) -> Value:
        return apply(op, a, b)

    f.__name__, f.__doc__ = op, doc
    return f


minimum = _binary("minimum", "Elementwise minimum (NaN if either is NaN; a tie splits the gradient equally).")
maximum = _binary("maximum", "Elementwise maximum (NaN if either is NaN; a tie splits the gradient equally).")
less = _binary("less", "Elementwise a < b as 0/1 values of the operands' dtype (also `a < b`); zero gradient.")
greater = _binary("greater", "Elementwise a > b as 0/1 values (also `a > b`); zero gradient.")
less_equal = _binary("less_equal", "Elementwise a <= b as 0/1 values (also `a <= b`); zero gradient.")
greater_equal = _binary("greater_equal", "Elementwise a >= b as 0/1 values (also `a >= b`); zero gradient.")
equal = _binary("equal", "Elementwise a == b as 0/1 values (`==` on values is Python's identity test); zero gradient.")
not_equal = _binary("not_equal", "Elementwise a != b as 0/1 values (1 where either is NaN); zero gradient.")


def where(cond: Value, a: Value | float, b: Value | float) -> Value:
    """Elementwise `a` where `cond` is nonzero, else `b` (broadcasting)."""
    like = next((v for v in (a, b, cond) if isinstance(v, Value)), None)
    return apply("where", _as_value(cond, like, "where"), a, b)


def cast(x: Value, dtype: Any) -> Value:
    return apply("cast", x, to=as_dtype(dtype))


def constant(value: Any, dtype: Any = "f32") -> Value:
    """A constant array or scalar, the same at every step."""
    return apply("constant", value=value, dtype=as_dtype(dtype))


def concat(xs: Sequence[Value], axis: int = -1) -> Value:
    if not isinstance(xs, (list, tuple)) or not xs:
        raise DSLError(f"{_user_site()}: concat takes a non-empty list of values")
    return apply("concat", *xs, axis=axis)


def split(x: Value, parts: int, axis: int = -1) -> list[Value]:
    """Split into `parts` equal pieces along `axis` (one node per piece)."""
    return [apply("split", x, parts=parts, index=i, axis=axis) for i in range(parts)]


def slice(x: Value, start: int, stop: int, axis: int = -1) -> Value:  # noqa: A001
    return apply("slice", x, axis=axis, start=start, stop=stop)


def sum(x: Value, axis: Any = None, keepdims: bool = False) -> Value:  # noqa: A001
    return apply("sum", x, axis=axis, keepdims=keepdims)


def mean(x: Value, axis: Any = None, keepdims: bool = False) -> Value:
    return apply("mean", x, axis=axis, keepdims=keepdims)


def max(x: Value, axis: Any = None, keepdims: bool = False) -> Value:  # noqa: A001
    return apply("max", x, axis=axis, keepdims=keepdims)


def softmax(x: Value, axis: int = -1) -> Value:
    return apply("softmax", x, axis=axis)


def log_softmax(x: Value, axis: int = -1) -> Value:
    return apply("log_softmax", x, axis=axis)


def matmul(a: Value, b: Value) -> Value:
    return apply("matmul", a, b)


# ---------------------------------------------------------------- the builder


class State(Value):
    """A state under construction: reading it gives its value this step; `.prev(d)` reads step t-d."""

    __slots__ = ("graph",)

    def __init__(self, node: Node, graph: Graph):
        super().__init__(node, 0)
        self.graph = graph

    def __class_getitem__(cls, dims: Any) -> _Decl:
        """`State["B", 32]` annotates an `@rc.cell` argument as a state."""
        from .cell_decorator import _State_role  # the decorator module builds on this one

        return _State_role[dims]

    def define(self, value: Value) -> None:
        """Give the state its value at step t (may be called once)."""
        self.graph._define(self.node.name, value)  # type: ignore[arg-type]


class Graph:
    """Build a cell node by node; states may be read (`.prev(d)`) before they are defined."""

    def __init__(self, name: str):
        if not is_identifier(name):
            raise DSLError(f"cell name {name!r} is not an identifier")
        self.name = name
        self._seqs: list[Node] = []
        self._params: list[Node] = []
        self._statics: list[Node] = []
        self._placeholders: dict[str, Node] = {}
        self._defs: dict[str, Value] = {}
        self._outputs: dict[str, Value] = {}
        self._names: set[str] = set()

    def _claim(self, name: str, what: str) -> None:
        if not is_identifier(name):
            raise DSLError(f"{_user_site()}: {what} name {name!r} is not an identifier")
        if name in self._names:
            raise DSLError(f"{_user_site()}: name {name!r} is already used in cell {self.name!r}")
        self._names.add(name)

    def _source(self, op: str, name: str, shape: Any, dtype: Any, loc: str | None = None) -> Node:
        self._claim(name, op)
        loc = loc or _user_site()
        try:
            t = TensorType(as_dtype(dtype), as_shape(shape))
        except RnncompError as e:
            raise DSLError(f"{loc}: {op} {name!r}: {e}") from None
        return Node(op, (), {}, t, name, loc=loc)

    def seq(self, name: str, shape: Any, dtype: Any = "f32", *, loc: str | None = None) -> Value:
        """A sequence input: one value per step, shape `shape` (the array passed is (T, *shape))."""
        node = self._source("seq", name, shape, dtype, loc)
        self._seqs.append(node)
        return Value(node)

    def param(self, name: str, shape: Any, dtype: Any = "f32", *, loc: str | None = None) -> Value:
        """A parameter: the same value at every step."""
        node = self._source("param", name, shape, dtype, loc)
        self._params.append(node)
        return Value(node)

    def static(self, name: str, shape: Any, dtype: Any = "f32", *, loc: str | None = None) -> Value:
        """A per-row input: one value per batch row (leading dim B), the same at every step (a
        conditioning vector, a mask fixed across time); the array passed is `shape` itself, no T."""
        node = self._source("static", name, shape, dtype, loc)
        self._statics.append(node)
        return Value(node)

    def state(self, name: str, shape: Any, dtype: Any = "f32", *, loc: str | None = None) -> State:
        """A recurrent value; its init (zeros unless passed) is read at steps before 0."""
        node = self._source("state", name, shape, dtype, loc)
        self._placeholders[name] = node
        return State(node, self)

    def _define(self, name: str, value: Value) -> None:
        if name in self._defs:
            raise DSLError(f"{_user_site()}: state {name!r} is defined twice")
        if not isinstance(value, Value):
            raise DSLError(f"{_user_site()}: state {name!r} must be defined by a cell value, got {value!r}")
        decl = self._placeholders.get(name)
        if decl is not None and decl.type != value.type:
            raise ShapeError(
                f"{value.node.loc or _user_site()}: state {name!r} is given a new value of type {value.type}, but "
                f"the state is {decl.type} (declared at {decl.loc}); its value at every step must have the "
                f"state's shape and dtype (cell {self.name!r})"
            )
        self._defs[name] = value

    def output(self, name: str, value: Value) -> None:
        """A per-step output, stacked to (T, ...) by a run."""
        self._claim(name, "output")
        if not isinstance(value, Value):
            raise DSLError(f"{_user_site()}: output {name!r} must be a cell value, got {value!r}")
        self._outputs[name] = value

    def build(self) -> Cell:
        """Resolve state placeholders to their definitions and return the verified Cell."""
        try:
            return _assemble(
                self.name, self._seqs, self._params, self._placeholders, self._defs, self._outputs, self._statics
            )
        except VerifyError as e:
            if not e.cycle or "algebraic loop" not in str(e):
                raise
            raise VerifyError(_loop_message(self.name, e.cycle), node=e.node, cycle=e.cycle) from None


def _loop_message(cell: str, cycle: tuple) -> str:
    """An algebraic loop told in the user's terms: each node by its name or op and the line that made it."""

    def show(n: Node) -> str:
        what = f"{n.name} ({n.op})" if n.name else n.op
        return f"{what} at {n.loc}" if n.loc else what

    ring = "\n  -> ".join(show(n) for n in (*cycle, cycle[0]))
    return (
        f"cell {cell!r}: algebraic loop: a cycle of delay-0 edges (each value needs the next one at the same "
        f"step):\n  {ring}\nevery cycle must pass through a delay >= 1: read a state one step back with "
        f".prev() (h.prev(1) is h[t-1])"
    )


def _assemble(name, seqs, params, placeholders, defs, outputs, statics=()) -> Cell:
    # A definition must be a fresh compute node carrying the state's name; wrap anything else.
    def_nodes: dict[str, Node] = {}
    claimed: set[int] = set()
    for sname in [k for k in placeholders if k in defs] + [k for k in defs if k not in placeholders]:
        v = defs[sname]  # in declaration order, so the order states are returned in does not matter
        node = v.node
        if v.delay or node.op in ("seq", "param", "static", "state", "constant") or id(node) in claimed or node.name:
            node = Node("identity", [v.use()], {}, v.type, loc=v.node.loc)
        node.name = sname
        claimed.add(id(node))
        def_nodes[sname] = node
    out_nodes: dict[str, Node] = {}
    for oname, v in outputs.items():
        node = v.node
        if not v.delay and node.op == "state" and node.name in def_nodes:
            node = def_nodes[node.name]  # the state's value this step is its definition
        elif v.delay or node.op in ("seq", "param", "static", "state"):
            node = Node("identity", [v.use()], {}, v.type)
        out_nodes[oname] = node
    # Rewire every read of a placeholder to its definition, keeping the delay.
    subst = {id(placeholders[k]): n for k, n in def_nodes.items() if k in placeholders}
    seen: set[int] = set()
    stack = list(def_nodes.values()) + list(out_nodes.values())
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        n.inputs = tuple(Use(subst.get(id(u.node), u.node), u.delay) for u in n.inputs)
        stack.extend(u.node for u in n.inputs)
    state_types = {k: p.type for k, p in placeholders.items()}
    cell = Cell(name, seqs, params, state_types, def_nodes, out_nodes, statics)
    try:
        for k, n in enumerate(n for n in cell.nodes() if n.op == "dropout_mask"):
            n.attrs["site"] = k  # each mask its own Philox counter word (rc.dropout, rc.zoneout)
    except CycleFound:
        pass  # an algebraic loop: verify_cell says where
    return verify_cell(cell)
