"""Read the text form of cells (see `ir.printer`) back into verified `Cell`s. Never evaluates the text.

Grammar (newlines end statements; `#` starts a comment to the end of the line):

    file   := cell*                                  parse_cells; parse_cell wants exactly one
    cell   := 'cell' NAME '{' NL stmt* '}'
    stmt   := 'seq' NAME ':' type | 'param' NAME ':' type | 'static' NAME ':' type
            | 'state' NAME [':' type]
            | 'out' NAME '=' expr                    a per-step output
            | 'yield' item (',' item)*               item := NAME ['=' ref]: states in order
            | (NAME | %INT) '=' expr [':' type]      a node; NAME may be a declared state's
    expr   := ref | NAME '(' [arg (',' arg)*] ')'    nested calls become unnamed nodes
    arg    := expr | NAME '=' value                  operands first, then attributes
    ref    := (NAME | %INT) ['[' 't' ['-' INT] ']']  NAME[t-d] reads NAME d steps back
    type   := NAME '[' [dim (',' dim)*] ']' | '(' [type (',' type)*] ')'   dim := INT | NAME
    value  := ['-'] NUMBER | ['-'] 'inf' | 'nan' | 'true' | 'false' | 'none' | NAME
            | STRING | '(' [dim (',' dim)* [',']] ')' | '[' [value (',' value)*] ']'

Names: `%k` labels a node only in the text (its `Node.name` is None); any other name is stored.
A NAME may carry `@` parts as unrolling writes them (`h@3`, `h@t-1`; see `ir.tokens`).
A keyword (seq, param, static, state, out, yield) followed by `=` is an ordinary node name. References may
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

Modules: `ir.tokens` (tokens, the cursor), `ir.term_parser` (types, attribute values, argument
lists: shared with `ir.program_parser`), this file (the cell grammar), `ir.cell_builder` (names,
states and types -> a verified Cell).
"""

from __future__ import annotations

from .cell_builder import Call, CellText, Ref, build_cell
from .graph import Cell
from .limits import MAX_DELAY
from .ops import REQUIRED
from .shapes import is_identifier
from .term_parser import TermParser
from .tokens import Token, tokenize

__all__ = ["Parser", "Token", "build_cell", "parse_cell", "parse_cells", "tokenize"]


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


class Parser(TermParser):
    """Recursive descent over the tokens of `text`; `cell()` reads one cell and returns it verified.

    Types, attribute values and argument lists come from `TermParser`, which the Program parser
    shares; `expr`, `call` and `ref` read the cell's operands (nested calls, delayed reads).
    """

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
        if keyword in ("seq", "param", "static", "state"):
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
                {"seq": ct.seqs, "param": ct.params, "static": ct.statics}[keyword].append((name.text, t, name))  # type: ignore[arg-type]
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
                "expected a statement (seq, param, static, state, out, yield or NAME = op(...)), "
                f"found {tok.describe()}",
                tok,
            )

    def declare(self, ct: CellText, name: Token, kind: str) -> None:
        """Record a declaration's name; names of seqs, params, states and outputs are unique."""
        if not is_identifier(name.text):
            raise self.error(f"{kind} name {name.text!r} is not an identifier (or is a Python keyword)", name)
        node = ct.def_at.get(name.text) if kind in ("seq", "param", "static") else None
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
        prev = ct.def_at.get(target.text) or ct.input_at(target.text)
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
        """`op(operands..., key=value...)`; operands may nest calls and read delays."""
        tok = self.next()
        op = self.op_def(tok)
        self.enter("calls", tok)
        args, attrs = self.arguments(op, self.next(), self.expr)
        self.leave()
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
            if delay > MAX_DELAY:
                raise self.error(
                    f"{tok.text}[t-{delay}]: delay {delay} is above the limit of {MAX_DELAY} steps "
                    "(ir.limits.MAX_DELAY); each step of delay is a carried value",
                    n,
                )
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
