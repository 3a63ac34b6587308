"""Read the text form of cells (see `ir.printer`) back into verified `Cell`s. Never evaluates the text.

Grammar (newlines end statements; `#` starts a comment to the end of the line):

    file   := cell*                                  parse_cells; parse_cell wants exactly one
    cell   := 'cell' NAME '{' NL stmt* '}'
    stmt   := 'seq' NAME ':' type | 'param' NAME ':' type | 'state' NAME [':' type]
            | 'out' NAME '=' expr                    a per-step output
            | 'yield' item (',' item)*               item := NAME ['=' ref]: states in order
            | (NAME | %INT) '=' expr [':' type]      a node; NAME may be a declared state's
    expr   := ref | NAME '(' [arg (',' arg)*] ')'    nested calls become unnamed nodes
    arg    := expr | NAME '=' value                  operands first, then attributes
    ref    := (NAME | %INT) ['[' 't' ['-' INT] ']']  NAME[t-d] reads NAME d steps back
    type   := NAME '[' [dim (',' dim)*] ']' | '(' type (',' type)* ')'     dim := INT | NAME
    value  := ['-'] NUMBER | ['-'] 'inf' | 'nan' | 'true' | 'false' | 'none' | NAME
            | STRING | '(' [dim (',' dim)* [',']] ')' | '[' [value (',' value)*] ']'

Names: `%k` labels a node only in the text (its `Node.name` is None); any other name is stored.
A keyword (seq, param, state, out, yield) followed by `=` is an ordinary node name. References may
point forward: names are resolved after the whole cell is read, and order comes from topology.

States: without a `yield` line, each declared state is the node written `NAME = ...` under its
name, in declaration order, and a named node read with a delay but not declared is a state too
(its init type is its own type), so the DESIGN.md sketch parses as written. A `yield` line (the
printer writes one only when it must) lists every state in order, optionally bound to a node.

Types: annotations are optional; each node's type is inferred with the op table and, where
annotated, must agree. A delayed read `h[t-1]` takes the declared type of state h (else h's
annotation), so recurrent cells type without a fixed point.

Errors: syntax errors are `ParseError`s (line, column, the source line and a caret); type,
shape, delay and cycle errors are `VerifyError`s rendered the same way (with `line` and `column`
attributes); then the whole cell goes through `verify_cell`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from .dtypes import DType, as_dtype
from .errors import ParseError, RnncompError, VerifyError
from .graph import Cell, Node, Use
from .ops import OPS, REQUIRED, OpDef, check_attrs, describe_call, infer_type
from .shapes import is_identifier
from .symexpr import count
from .types import TensorType, TupleType
from .verify import verify_cell

# ---------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r]+|\#[^\n]*)
  | (?P<nl>\n)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<local>%\d+)
  | (?P<string>"[^"\n]*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:@\d+)?)
  | (?P<punct>[{}()\[\],=:+-])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    """One token: kind ('name', 'local', 'number', 'punct', 'nl', 'eof'), its text and its 1-based position."""

    kind: str
    text: str
    line: int
    column: int

    def describe(self) -> str:
        if self.kind == "eof":
            return "end of input"
        if self.kind == "nl":
            return "end of line"
        return f"{self.kind} {self.text!r}" if self.kind in ("name", "number", "string") else repr(self.text)


def tokenize(text: str) -> list[Token]:
    """Split `text` into tokens (comments and blanks dropped, newlines kept); ends with an 'eof' token."""
    tokens: list[Token] = []
    pos, line, line_start = 0, 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        column = pos - line_start + 1
        if m is None:
            what = "unterminated string" if text[pos] == '"' else f"unexpected character {text[pos]!r}"
            raise ParseError(what, text, line, column)
        kind = m.lastgroup
        if kind == "nl":
            tokens.append(Token("nl", "\n", line, column))
            line, line_start = line + 1, m.end()
        elif kind != "ws":
            tokens.append(Token(kind, m.group(), line, column))  # type: ignore[arg-type]
        pos = m.end()
    tokens.append(Token("eof", "", line, pos - line_start + 1))
    return tokens


# ---------------------------------------------------------------- syntax tree of one cell


@dataclass
class Ref:
    """`h` or `h[t-2]` in the text."""

    name: str
    delay: int
    at: Token


@dataclass
class Call:
    """`op(args..., key=value...)` in the text; `node` is filled when the cell is built."""

    op: OpDef
    args: list[Ref | Call]
    attrs: dict[str, Any]
    at: Token
    annotation: TensorType | TupleType | None = None
    annotation_at: Token | None = None
    target: str | None = None  # the name it is defined under; None for a nested call
    node: Node | None = field(default=None, repr=False)


@dataclass
class CellText:
    """A parsed but not yet built cell: declarations and definitions with their positions."""

    name: str
    at: Token
    seqs: list[tuple[str, TensorType, Token]] = field(default_factory=list)
    params: list[tuple[str, TensorType, Token]] = field(default_factory=list)
    states: dict[str, tuple[TensorType | None, Token]] = field(default_factory=dict)
    defs: dict[str, Call] = field(default_factory=dict)  # target (NAME or %k) -> its call
    def_at: dict[str, Token] = field(default_factory=dict)
    outputs: dict[str, tuple[Ref | Call, Token]] = field(default_factory=dict)
    yields: list[tuple[str, Ref | None, Token]] | None = None
    declared_at: dict[str, tuple[str, Token]] = field(default_factory=dict)


# ---------------------------------------------------------------- public entry points


def parse_cells(text: str) -> list[Cell]:
    """Every cell in `text`, in order, each verified."""
    p = Parser(text)
    cells = []
    p.skip_newlines()
    while p.peek().kind != "eof":
        cells.append(p.cell())
        p.skip_newlines()
    return cells


def parse_cell(text: str) -> Cell:
    """The one cell in `text`, verified; a ParseError if there is none or more than one."""
    p = Parser(text)
    p.skip_newlines()
    cell = p.cell()
    p.skip_newlines()
    tok = p.peek()
    if p.at("cell"):
        raise p.error("parse_cell reads exactly one cell, and a second one starts here (use parse_cells)", tok)
    if tok.kind != "eof":
        raise p.error(
            f"expected end of input after the closing '}}' of cell {cell.name!r}, found {tok.describe()}", tok
        )
    return cell


# ---------------------------------------------------------------- the parser


class Parser:
    """Recursive descent over the tokens of `text`; `cell()` reads one cell and returns it verified.

    The statement-level pieces (`type`, `expr`, `attr_value`, `ref`) are separate methods so that a
    Program parser can reuse them.
    """

    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0

    # -- token helpers
    def peek(self, k: int = 0) -> Token:
        return self.tokens[min(self.pos + k, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.peek()
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return tok

    def at(self, text: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok.kind in ("punct", "name") and tok.text == text

    def error(self, message: str, tok: Token) -> ParseError:
        return ParseError(message, self.text, tok.line, tok.column)

    def expect(self, text: str, what: str) -> Token:
        if not self.at(text):
            raise self.error(f"expected {text!r} {what}, found {self.peek().describe()}", self.peek())
        return self.next()

    def expect_kind(self, kind: str, what: str) -> Token:
        tok = self.peek()
        if tok.kind != kind:
            raise self.error(f"expected {what}, found {tok.describe()}", tok)
        return self.next()

    def end_of_statement(self, what: str) -> None:
        tok = self.peek()
        if tok.kind == "nl":
            self.next()
        elif tok.kind != "eof" and not self.at("}"):
            raise self.error(f"expected end of line after {what}, found {tok.describe()}", tok)

    def skip_newlines(self) -> None:
        while self.peek().kind == "nl":
            self.next()

    # -- cell
    def cell(self) -> Cell:
        """`cell NAME { ... }` -> a verified Cell."""
        tok = self.peek()
        if not self.at("cell") or self.peek(1).kind != "name":
            if self.at("cell"):
                raise self.error(
                    f"expected the cell's name after 'cell', found {self.peek(1).describe()}", self.peek(1)
                )
            raise self.error(f"expected 'cell NAME {{', found {tok.describe()}", tok)
        self.next()
        name = self.next()
        if not is_identifier(name.text):
            raise self.error(f"cell name {name.text!r} is not an identifier (or is a Python keyword)", name)
        ct = CellText(name.text, tok)
        brace = self.expect("{", f"to open cell {ct.name!r}")
        while True:
            self.skip_newlines()
            t = self.peek()
            if self.at("}"):
                self.next()
                break
            if t.kind == "eof":
                raise self.error(
                    f"expected '}}' to close cell {ct.name!r} (opened at {brace.line}:{brace.column}), "
                    "found end of input",
                    t,
                )
            self.statement(ct)
        return build_cell(ct, self.text)

    def statement(self, ct: CellText) -> None:
        tok = self.peek()
        keyword = tok.text if tok.kind == "name" and not self.at("=", 1) else None
        if keyword in ("seq", "param", "state"):
            self.next()
            name = self.expect_kind("name", f"a {keyword} name after {keyword!r}")
            self.declare(ct, name, keyword)
            t = None
            if keyword != "state" or self.at(":"):
                self.expect(":", f"and a type after {keyword} {name.text!r}")
                t = self.tensor_type()
            if keyword == "state":
                ct.states[name.text] = (t, name)
            else:
                (ct.seqs if keyword == "seq" else ct.params).append((name.text, t, name))  # type: ignore[arg-type]
            self.end_of_statement(f"the declaration of {keyword} {name.text!r}")
        elif keyword == "out":
            self.next()
            name = self.expect_kind("name", "an output name after 'out'")
            self.declare(ct, name, "output")
            self.expect("=", f"after 'out {name.text}'")
            ct.outputs[name.text] = (self.expr(), name)
            self.end_of_statement(f"output {name.text!r}")
        elif keyword == "yield":
            self.next()
            self.yield_items(ct, tok)
        elif tok.kind in ("name", "local") and self.at("=", 1):
            self.definition(ct)
        else:
            raise self.error(
                f"expected a statement (seq, param, state, out, yield or NAME = op(...)), found {tok.describe()}", tok
            )

    def declare(self, ct: CellText, name: Token, kind: str) -> None:
        """Record a declaration's name; names of seqs, params, states and outputs are unique."""
        if not is_identifier(name.text):
            raise self.error(f"{kind} name {name.text!r} is not an identifier (or is a Python keyword)", name)
        node = ct.def_at.get(name.text) if kind in ("seq", "param") else None
        if node is not None:
            raise self.error(f"name {name.text!r} is defined twice (first at {node.line}:{node.column})", name)
        prev = ct.declared_at.get(name.text)
        if prev is not None:
            raise self.error(
                f"name {name.text!r} is defined twice: as {kind} here, "
                f"and as {prev[0]} at {prev[1].line}:{prev[1].column}",
                name,
            )
        ct.declared_at[name.text] = (kind, name)

    def definition(self, ct: CellText) -> None:
        target = self.next()
        prev = ct.def_at.get(target.text) or _input_at(ct, target.text)
        if prev is not None:
            raise self.error(f"name {target.text!r} is defined twice (first at {prev.line}:{prev.column})", target)
        self.next()  # '='
        rhs = self.expr()
        if isinstance(rhs, Ref):
            written = f"{rhs.name}[t-{rhs.delay}]" if rhs.delay else rhs.name
            raise self.error(
                f"a definition needs an op call, found the name {written}; write {target.text} = identity({written})",
                rhs.at,
            )
        if self.at(":"):
            self.next()
            rhs.annotation_at = self.peek()
            rhs.annotation = self.type()
        rhs.target = target.text
        ct.defs[target.text] = rhs
        ct.def_at[target.text] = target
        self.end_of_statement(f"the definition of {target.text!r}")

    def yield_items(self, ct: CellText, tok: Token) -> None:
        if ct.yields is not None:
            raise self.error("a cell has at most one 'yield' line", tok)
        ct.yields = []
        while True:
            name = self.expect_kind("name", "a state name in 'yield'")
            ref = None
            if self.at("="):
                self.next()
                ref = self.ref()
            ct.yields.append((name.text, ref, name))
            if not self.at(","):
                break
            self.next()
        self.end_of_statement("the 'yield' line")

    # -- expressions
    def expr(self) -> Ref | Call:
        """`op(args)` or a reference `h` / `h[t-1]`."""
        tok = self.peek()
        if tok.kind == "name" and self.at("(", 1):
            return self.call()
        if tok.kind in ("name", "local"):
            return self.ref()
        raise self.error(f"expected an operand (a name, h[t-1] or op(...)), found {tok.describe()}", tok)

    def call(self) -> Call:
        tok = self.next()
        op = OPS.get(tok.text)
        if op is None:
            close = difflib.get_close_matches(tok.text, OPS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known ops: {', '.join(sorted(OPS))}"
            raise self.error(f"unknown op {tok.text!r}{hint}", tok)
        opening = self.next()  # '('
        args: list[Ref | Call] = []
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
                args.append(self.expr())
            if self.at(","):
                self.next()
            elif not self.at(")"):
                self.unclosed(f"call to {op.name}", opening, "',' or ')'")
        self.next()
        missing = [k for k, spec in op.attrs.items() if spec.default is REQUIRED and k not in attrs]
        if missing:
            raise self.error(f"{op.name}: missing attribute {missing[0]!r}; it takes {', '.join(op.attrs)}", tok)
        return Call(op, args, attrs, tok)

    def ref(self) -> Ref:
        """`NAME`, `%k` or `NAME[t-d]`."""
        tok = self.next()
        if tok.kind not in ("name", "local"):
            raise self.error(f"expected a name, found {tok.describe()}", tok)
        if not self.at("["):
            return Ref(tok.text, 0, tok)
        self.next()
        t = self.peek()
        if not self.at("t"):
            raise self.error(
                f"expected a delay 't-<int>' in {tok.text}[...], like {tok.text}[t-1]; found {t.describe()}", t
            )
        self.next()
        delay = 0
        sign = self.peek()
        if self.at("-") or self.at("+"):
            self.next()
            n = self.peek()
            if n.kind != "number" or not n.text.isdigit():
                raise self.error(
                    f"expected an integer delay after 't{sign.text}' in {tok.text}[...], found {n.describe()}", n
                )
            self.next()
            delay = int(n.text)
            if sign.text == "+" and delay:
                raise self.error(
                    f"{tok.text}[t+{delay}] reads a future step: delays must be >= 0 "
                    f"(write {tok.text}[t-1] for the previous step)",
                    sign,
                )
        if not self.at("]"):
            raise self.error(
                f"expected ']' to close the delay of {tok.text}, found {self.peek().describe()}", self.peek()
            )
        self.next()
        return Ref(tok.text, delay, tok)

    # -- types
    def type(self) -> TensorType | TupleType:
        """`f32[B, 16]` or a tuple of types `(f32[B], f32[2])`."""
        if self.at("("):
            opening = self.next()
            items = [self.tensor_type()]
            while self.at(","):
                self.next()
                items.append(self.tensor_type())
            if not self.at(")"):
                self.unclosed("tuple type", opening, "',' or ')'")
            self.next()
            return TupleType(tuple(items))
        return self.tensor_type()

    def unclosed(self, what: str, opening: Token, expected: str) -> None:
        """Raise for a bracket that is not closed: 'unterminated' when the line ends first."""
        tok, at = self.peek(), f"opened at {opening.line}:{opening.column}"
        if tok.kind in ("nl", "eof"):
            raise self.error(f"unterminated {what} ({at}): expected {expected}, found {tok.describe()}", tok)
        raise self.error(f"expected {expected} in the {what} ({at}), found {tok.describe()}", tok)

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
            if d.kind == "number" and d.text.isdigit():
                dims.append(int(d.text))
            elif d.kind == "name" and is_identifier(d.text):
                dims.append(d.text)
            else:
                raise self.error(f"expected a dim (an int or a symbol like B), found {d.describe()}", d)
            self.next()
            if self.at(","):
                self.next()
            elif not self.at("]"):
                self.unclosed("type", opening, "',' or ']'")
        self.next()
        return TensorType(dtype, tuple(dims))

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

    def text_between(self, start: Token) -> str:
        """The source text from `start` up to the current token (for messages)."""
        line = self.text.splitlines()[start.line - 1]  # a value never spans lines
        return line[start.column - 1 : self.peek().column - 1].strip()

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
            v: int | float = int(tok.text) if is_int else float(tok.text)
        elif tok.text in ("inf", "nan") and not (neg and tok.text == "nan"):
            v = float(tok.text)
        else:
            raise self.error(f"expected a number, found {tok.describe()}", tok)
        return -v if neg else v

    def dim_tuple(self) -> tuple[int | str, ...]:
        """`(0, 1)`, `(-1,)`, `(B, 16)`: ints and symbols."""
        opening = self.next()
        items: list[int | str] = []
        while not self.at(")"):
            tok = self.peek()
            if tok.kind == "name" and is_identifier(tok.text):
                items.append(self.next().text)
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
        items: list = []
        while not self.at("]"):
            items.append(self.number_list() if self.at("[") else self.number())
            if self.at(","):
                self.next()
            elif not self.at("]"):
                self.unclosed("list", opening, "',' or ']'")
        self.next()
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


def _input_at(ct: CellText, name: str) -> Token | None:
    for n, _, tok in ct.seqs + ct.params:
        if n == name:
            return tok
    return None


# ---------------------------------------------------------------- building the cell


def build_cell(ct: CellText, text: str) -> Cell:
    """Turn a parsed cell into a verified Cell: resolve names, bind states, infer and check types."""
    return _Builder(ct, text).build()


class _Builder:
    """Resolves the names of one `CellText` into Nodes, types them, and verifies the Cell."""

    def __init__(self, ct: CellText, text: str):
        self.ct, self.text = ct, text
        self.nodes: dict[str, Node] = {}  # the names a reference can use
        for name, t, _ in ct.seqs:
            self.nodes[name] = Node("seq", (), {}, t, name)
        for name, t, _ in ct.params:
            self.nodes[name] = Node("param", (), {}, t, name)
        self.calls: dict[int, Call] = {}  # id(node) -> the call that made it, in text order

    def located(self, cls: type[Exception], message: str, tok: Token) -> Exception:
        """An error of class `cls` whose message shows `line:col`, the source line and a caret;
        it carries `line` and `column` attributes like a ParseError."""
        err = ParseError(message, self.text, tok.line, tok.column)
        if cls is ParseError:
            return err
        located = cls(str(err))
        located.line, located.column = tok.line, tok.column  # type: ignore[attr-defined]
        return located

    def build(self) -> Cell:
        ct = self.ct
        for target, call in ct.defs.items():  # every named node exists before any reference is resolved
            self.nodes[target] = self.new_node(call, None if target.startswith("%") else target)
        for call in ct.defs.values():
            self.wire(call)
        outputs = {k: self.operand(rhs, f"output {k!r}", delay_ok=False) for k, (rhs, _) in ct.outputs.items()}
        states = self.bind_states()
        self.check_delays({id(n) for n in states.values()})
        declared = {k: t for k, (t, _) in ct.states.items() if t is not None}
        self.state_type = {id(n): declared[k] for k, n in states.items() if k in declared}
        done: set[int] = set()
        for call in list(self.calls.values()):
            self.infer_from(call, done)
        seqs = [self.nodes[n] for n, _, _ in ct.seqs]
        params = [self.nodes[n] for n, _, _ in ct.params]
        state_types = dict(declared)
        state_types.update({k: states[k].type for k in self.implicit})  # type: ignore[misc]
        return verify_cell(Cell(ct.name, seqs, params, state_types, states, outputs))

    # -- names
    def new_node(self, call: Call, name: str | None) -> Node:
        call.node = Node(call.op.name, (), {}, None, name)
        self.calls[id(call.node)] = call
        return call.node

    def wire(self, call: Call) -> None:
        """Resolve the operands of `call` (making nodes for nested calls) into its node's uses."""
        uses = []
        for arg in call.args:
            delay = arg.delay if isinstance(arg, Ref) else 0
            uses.append(Use(self.operand(arg, f"an operand of {call.op.name}"), delay))
        call.node.inputs = tuple(uses)  # type: ignore[union-attr]

    def operand(self, e: Ref | Call, where: str, delay_ok: bool = True) -> Node:
        """The node an operand names (a nested call becomes a new unnamed node)."""
        if isinstance(e, Call):
            node = self.new_node(e, None)
            self.wire(e)
            return node
        node = self.nodes.get(e.name)
        if node is None:
            hint = ""
            if e.name in self.ct.states:
                hint = f"; state {e.name!r} is declared but no line defines it ({e.name} = op(...))"
            elif e.name in self.ct.outputs:
                hint = "; an output cannot be read, read the node it names"
            raise self.located(
                ParseError, f"undefined name {e.name!r} in {where}: not a seq, param or node of this cell{hint}", e.at
            )
        if e.delay and not delay_ok:
            raise self.located(
                ParseError, f"{where} names a node at this step; {e.name}[t-{e.delay}] has a delay", e.at
            )
        return node

    def bind_states(self) -> dict[str, Node]:
        """Each state's defining node: its `yield` binding, else the node written under its name.

        Without a `yield` line, a named node that is read with a delay and not declared is a state
        too (as in `h = tanh(matmul(h[t-1], U))`), its init type its own type, after the declared ones.
        """
        ct = self.ct
        self.implicit: list[str] = []
        if ct.yields is None:
            states = {}
            for k, (_, tok) in ct.states.items():
                if k not in ct.defs:
                    raise self.located(
                        VerifyError, f"state {k!r} is declared but never defined: add a line '{k} = op(...)'", tok
                    )
                states[k] = self.nodes[k]
            delayed = {id(u.node) for c in self.calls.values() for u in c.node.inputs if u.delay}  # type: ignore[union-attr]
            for k in ct.defs:
                if not k.startswith("%") and k not in states and id(self.nodes[k]) in delayed:
                    states[k] = self.nodes[k]
                    self.implicit.append(k)
            return states
        states = {}
        for k, ref, tok in ct.yields:
            if k not in ct.states:
                raise self.located(ParseError, f"yield names {k!r}, which is not a declared state", tok)
            if k in states:
                raise self.located(ParseError, f"yield names state {k!r} twice", tok)
            states[k] = self.operand(ref or Ref(k, 0, tok), f"yield {k!r}", delay_ok=False)
        return states

    def check_delays(self, state_nodes: set[int]) -> None:
        """Only states and seqs may be read with a delay (the verifier's rule, reported at the read)."""
        for call in self.calls.values():
            for arg, use in zip(call.args, call.node.inputs, strict=True):  # type: ignore[union-attr]
                if use.delay and use.node.op != "seq" and id(use.node) not in state_nodes:
                    why = "a param is the same at every step" if use.node.op == "param" else "declare it as a state"
                    raise self.located(
                        VerifyError,
                        f"{arg.name} is read with delay {use.delay} ({_arg_text(arg)}), "  # type: ignore[union-attr]
                        f"but only states and seqs can be delayed ({why})",
                        arg.at,
                    )

    # -- types
    def delayed_type(self, node: Node) -> TensorType | TupleType | None:
        """The type of a delayed read that needs no inference: a declared input or state, or an annotation."""
        if id(node) not in self.calls:  # a seq or param
            return node.type
        if id(node) in self.state_type:
            return self.state_type[id(node)]
        return self.calls[id(node)].annotation

    def deps(self, call: Call) -> list[tuple[Call, bool]]:
        """The calls whose types `call` needs first, each with whether it is read through a delay."""
        out = []
        for use in call.node.inputs:  # type: ignore[union-attr]
            dep = self.calls.get(id(use.node))
            if dep is not None and not (use.delay and self.delayed_type(use.node) is not None):
                out.append((dep, use.delay > 0))
        return out

    def infer_from(self, root: Call, done: set[int]) -> None:
        """Type `root` and every call it depends on, each after its dependencies (iterative DFS)."""
        if id(root.node) in done:
            return
        stack = [(root, iter(self.deps(root)), False)]
        on_path = {id(root.node): 0}
        while stack:
            call, it, _ = stack[-1]
            for dep, delayed in it:
                if id(dep.node) in done:
                    continue
                if id(dep.node) in on_path:
                    ring = stack[on_path[id(dep.node)] :]
                    # the calls read through a delay along the ring (the edge back to `dep` last)
                    via_delay = [c for c, _, d in ring[1:] if d] + ([dep] if delayed else [])
                    self.cycle_error([c for c, _, _ in ring], via_delay)
                on_path[id(dep.node)] = len(stack)
                stack.append((dep, iter(self.deps(dep)), delayed))
                break
            else:
                stack.pop()
                del on_path[id(call.node)]
                self.type_call(call)
                done.add(id(call.node))

    def cycle_error(self, ring: list[Call], via_delay: list[Call]) -> None:
        """A dependency cycle: through a delay, a type that cannot be inferred; else an algebraic loop."""
        names = [c.target or f"{c.op.name}(...)" for c in ring]
        if via_delay:
            c = via_delay[0]
            name = c.target or f"{c.op.name}(...)"
            raise self.located(
                VerifyError,
                f"cannot infer the type of {name}: it is read through a delay before its type is known; "
                f"declare the state with a type (state {name} : f32[...]) or annotate its definition",
                c.at,
            )
        loop = " -> ".join(names + names[:1])
        raise self.located(
            VerifyError,
            f"algebraic loop: {loop} is a cycle of delay-0 edges; "
            "every cycle must pass through a delay >= 1 (read a state as h[t-1])",
            ring[0].at,
        )

    def type_call(self, call: Call) -> None:
        """Apply the op's type rule to the operand types; check the annotation where there is one."""
        node = call.node
        assert node is not None
        if call.op.infer is None:  # a source op written as a call (only in invalid cells): trust the annotation
            if call.annotation is None:
                raise self.located(VerifyError, f"{call.op.name} is a source op: annotate its type", call.at)
            node.type = call.annotation
            return
        ins = []
        for use in node.inputs:
            t = self.delayed_type(use.node) if use.delay else None
            ins.append(t if t is not None else use.node.type)
        try:
            attrs = check_attrs(call.op, call.attrs)
            t = infer_type(call.op, ins, attrs)
        except RnncompError as e:
            names = [_arg_text(a) for a in call.args]
            raise self.located(VerifyError, f"{e} in {describe_call(call.op.name, ins, names)}", call.at) from None
        if call.annotation is not None and call.annotation != t:
            raise self.located(
                VerifyError,
                f"{call.target or call.op.name} = {call.op.name}(...) has type {t}, but is annotated {call.annotation}",
                call.annotation_at or call.at,
            )
        node.attrs, node.type = attrs, t


def _arg_text(a: Ref | Call) -> str:
    if isinstance(a, Call):
        return f"{a.op.name}(...)"
    return f"{a.name}[t-{a.delay}]" if a.delay else a.name
