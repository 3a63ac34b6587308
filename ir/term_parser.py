"""The pieces the cell and program grammars share: types, attribute values, op names and argument lists.

    type   := NAME '[' [dim (',' dim)*] ']' | '(' [type (',' type)*] ')'
    dim    := INT | NAME | a dim expression like 4*H, (H+I)//2 (ir.dimexpr's grammar)
    args   := [arg (',' arg)*]         operands first (the grammar's own rule), then KEY '=' value
    value  := ['-'] NUMBER | ['-'] 'inf' | 'nan' | 'true' | 'false' | 'none' | NAME
            | STRING | '(' [dim (',' dim)* [',']] ')' | '[' [value (',' value)*] ']'

In an attribute's tuple, a dim expression is quoted (`(B, "4*H")`). An attribute value must fit its
kind in the op table (`_KIND_TEXT`); a quoted count such as `"T//4"` is read by `ir.symexpr`'s own
closed grammar. Nothing here evaluates text.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .dtypes import DType, as_dtype
from .errors import RnncompError
from .limits import MAX_INT
from .ops import OPS, OpDef
from .shapes import as_shape, is_identifier
from .symexpr import count
from .tokens import Token, TokenReader
from .types import TensorType, TupleType

_DIM_PUNCT = ("+", "-", "*", "/", "(", ")")


class TermParser(TokenReader):
    """Reads types, attribute values and `op(args...)` argument lists at the cursor."""

    # -- op calls
    def op_def(self, tok: Token) -> OpDef:
        """The op a name token names; an unknown one is an error with the closest known name."""
        op = OPS.get(tok.text)
        if op is None:
            close = difflib.get_close_matches(tok.text, OPS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known ops: {', '.join(sorted(OPS))}"
            raise self.error(f"unknown op {tok.text!r}{hint}", tok)
        return op

    def arguments(self, op: OpDef, opening: Token, operand: Callable[[], Any]) -> tuple[list[Any], dict[str, Any]]:
        """The operands (each read by `operand`) and attributes of a call, up to and including its ')'."""
        args: list[Any] = []
        attrs: dict[str, Any] = {}
        while not self.at(")"):
            if self.peek().kind == "name" and self.at("=", 1):
                key = self.next()
                self.next()
                attrs[key.text] = self.attribute(op, key, attrs)
            elif attrs:
                raise self.error(
                    f"{op.name}: operands come before attributes, found an operand after them", self.peek()
                )
            else:
                args.append(operand())
            if self.at(","):
                self.next()
            elif not self.at(")"):
                self.unclosed(f"call to {op.name}", opening, "',' or ')'")
        self.next()
        return args, attrs

    # -- types
    def type(self) -> TensorType | TupleType:
        """`f32[B, 16]` or a tuple of types `(f32[B], f32[2])`; `()` is the empty tuple."""
        if self.at("("):
            opening = self.next()
            items = [] if self.at(")") else [self.tensor_type()]
            while self.at(","):
                self.next()
                items.append(self.tensor_type())
            if not self.at(")"):
                self.unclosed("tuple type", opening, "',' or ')'")
            self.next()
            return TupleType(tuple(items))
        return self.tensor_type()

    def tensor_type(self) -> TensorType:
        """`f32[B, 16]`; `f32[]` is a scalar."""
        tok = self.expect_kind("name", "a type like f32[B, 16]")
        try:
            dtype = as_dtype(tok.text)
        except RnncompError:
            raise self.error(f"unknown dtype {tok.text!r}: expected one of f32, f64, i32, i64", tok) from None
        self.expect("[", f"after dtype {tok.text} (a type is like {tok.text}[B, 16])")
        dims: list[int | str] = []
        opening = self.peek(-1)
        while not self.at("]"):
            d = self.peek()
            plain = self.peek(1).text not in _DIM_PUNCT  # else an expression: 4*H
            if plain and d.kind == "number" and d.text.isdigit():
                dims.append(self.bounded_int(d, "a dim"))
                self.next()
            elif plain and d.kind == "name" and is_identifier(d.text):
                dims.append(d.text)
                self.next()
            elif d.kind in ("number", "name") or d.text in _DIM_PUNCT:
                dims.append(self.dim_expression())
            else:
                raise self.error(f"expected a dim (an int or a symbol like B), found {d.describe()}", d)
            if self.at(","):
                self.next()
            elif not self.at("]"):
                self.unclosed("type", opening, "',' or ']'")
        self.next()
        return TensorType(dtype, tuple(dims))

    def dim_expression(self) -> int | str:
        """A dim like `4*H` or `(H+I)//2` inside a type, in canonical form."""
        first, depth, words = self.peek(), 0, []
        while True:
            tok = self.peek()
            if tok.kind not in ("number", "name") and tok.text not in _DIM_PUNCT or depth == 0 and tok.text == ")":
                if depth == 0:
                    break
                raise self.error(f"expected ')' to close the dim expression, found {tok.describe()}", tok)
            depth += {"(": 1, ")": -1}.get(tok.text, 0)
            words.append(self.next().text)
        try:
            return as_shape(("".join(words),))[0]
        except RnncompError as e:
            raise self.error(str(e), first) from None

    # -- attribute values
    def attribute(self, op: OpDef, key: Token, attrs: dict[str, Any]) -> Any:
        """`key=value` of `op`: the key must be declared, the value must fit the attribute's kind."""
        spec = op.attrs.get(key.text)
        if spec is None:
            takes = ", ".join(op.attrs) or "no attributes"
            raise self.error(f"{op.name}: unknown attribute {key.text!r}; it takes {takes}", key)
        if key.text in attrs:
            raise self.error(f"{op.name}: attribute {key.text!r} is given twice", key)
        tok = self.peek()
        value = self.attr_value()
        if not _fits(spec.kind, value):
            raise self.error(
                f"{op.name}: attribute {key.text} expects {_KIND_TEXT.get(spec.kind, spec.kind)}, "
                f"found {self.text_between(tok)}",
                tok,
            )
        if spec.kind == "dtype":
            return as_dtype(value.text)
        if spec.kind == "count" and isinstance(value, _Str):
            try:
                return count(value.text)  # symexpr's own closed grammar, never Python
            except RnncompError as e:
                raise self.error(f"{op.name}: attribute {key.text}: {e}", tok) from None
        if isinstance(value, (_Word, _Str)):
            return value.text
        return value

    def attr_value(self) -> Any:
        """An int, float, bool, none, a name (a dtype), a tuple of ints or a nested list of numbers."""
        tok = self.peek()
        if self.at("-") or tok.kind == "number" or tok.text in ("inf", "nan"):
            return self.number()
        if tok.kind == "name":
            self.next()
            return {"true": True, "false": False, "none": None}.get(tok.text, _Word(tok.text))
        if tok.kind == "string":
            self.next()
            return _Str(tok.text[1:-1])
        if self.at("("):
            return self.dim_tuple()
        if self.at("["):
            return self.number_list()
        raise self.error(f"expected an attribute value, found {tok.describe()}", tok)

    def number(self) -> int | float:
        """`3`, `-1`, `2.5`, `1e-05`, `inf`, `-inf`, `nan`."""
        neg = self.at("-")
        if neg:
            self.next()
        tok = self.next()
        if tok.kind == "number":
            is_int = tok.text.isdigit()
            v: int | float = self.bounded_int(tok, "an int") if is_int else float(tok.text)
        elif tok.text in ("inf", "nan") and not (neg and tok.text == "nan"):
            v = float(tok.text)
        else:
            raise self.error(f"expected a number, found {tok.describe()}", tok)
        return -v if neg else v

    def bounded_int(self, tok: Token, what: str) -> int:
        """The int a number token spells, at most MAX_INT (an int64)."""
        v = int(tok.text)
        if v > MAX_INT:
            raise self.error(f"{what} of {len(tok.text)} digits is above the limit of 2**63-1 (ir.limits.MAX_INT)", tok)
        return v

    def dim_tuple(self) -> tuple[int | str, ...]:
        """`(0, 1)`, `(-1,)`, `(B, 16)`: ints and symbols."""
        opening = self.next()
        items: list[int | str] = []
        while not self.at(")"):
            tok = self.peek()
            if tok.kind == "name" and is_identifier(tok.text):
                items.append(self.next().text)
            elif tok.kind == "string":  # a dim expression, quoted: (B, "4*H")
                try:
                    items.append(as_shape((tok.text[1:-1],))[0])
                except RnncompError as e:
                    raise self.error(str(e), tok) from None
                self.next()
            else:
                v = self.number() if tok.kind == "number" or self.at("-") else None
                if not isinstance(v, int):
                    raise self.error(f"expected an int or a symbol in a tuple, found {tok.describe()}", tok)
                items.append(v)
            if self.at(","):
                self.next()
            elif not self.at(")"):
                self.unclosed("tuple", opening, "',' or ')'")
        self.next()
        return tuple(items)

    def number_list(self) -> list:
        """`[1.0, 2.0]`, `[[1.0], [2.0]]`: rows of one length, numbers at one depth."""
        opening = self.next()
        self.enter("a constant list", opening)
        items: list = []
        while not self.at("]"):
            items.append(self.number_list() if self.at("[") else self.number())
            if self.at(","):
                self.next()
            elif not self.at("]"):
                self.unclosed("list", opening, "',' or ']'")
        self.next()
        self.leave()
        if len({_list_shape(x) for x in items}) > 1:
            raise self.error("a constant's rows must all have the same length and depth (the list is ragged)", opening)
        return items


# ---------------------------------------------------------------- attribute kinds


@dataclass(frozen=True)
class _Word:
    """A bare name as an attribute value (a dtype, or a value for an attribute of kind 'any')."""

    text: str


@dataclass(frozen=True)
class _Str:
    """A quoted string as an attribute value (a symbolic count like "T//4")."""

    text: str


_KIND_TEXT = {
    "int": "an int",
    "float": "a number",
    "bool": "true or false",
    "dtype": "a dtype (f32, f64, i32, i64)",
    "axes": "none, an int or a tuple of ints like (0, 1)",
    "axis_list": "an int or a tuple of ints like (0, 1)",
    "shape": "a tuple of ints and symbols like (B, 16)",
    "count": 'an int >= 0 or a quoted expression like "T//4"',
    "value": "a number or a nested list of numbers",
}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fits(kind: str, v: Any) -> bool:
    if kind == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "float":
        return _is_number(v)
    if kind == "bool":
        return isinstance(v, bool)
    if kind == "dtype":
        return isinstance(v, _Word) and v.text in DType.__members__
    if kind == "axes":
        ints = isinstance(v, tuple) and all(isinstance(a, int) for a in v)
        return v is None or ints or (isinstance(v, int) and not isinstance(v, bool))
    if kind == "axis_list":
        return (isinstance(v, tuple) and all(isinstance(a, int) for a in v)) or (
            isinstance(v, int) and not isinstance(v, bool)
        )
    if kind == "shape":
        return isinstance(v, tuple) and all(isinstance(d, str) or d >= 0 for d in v)
    if kind == "count":
        return isinstance(v, _Str) or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
    if kind == "value":
        return _is_number(v) or isinstance(v, list)
    return True


def _list_shape(v: Any) -> tuple:
    """The shape of a nested list whose sublists are already known to be rectangular."""
    return (len(v),) + (_list_shape(v[0]) if v else ()) if isinstance(v, list) else ()
