"""Read the text form of programs (see `ir.program_printer`) back into verified `Program`s. Never evaluates the text.

Grammar (newlines end statements; `#` starts a comment to the end of the line):

    program := 'program' NAME ['(' [SYM (',' SYM)*] ')'] '{' NL stmt* '}'
    stmt    := 'input' ROLE NAME ':' type               top level only: a program input and its role
             | 'out' NAME '=' ref                       top level only: a named output
             | ref '=' NAME '(' args ')' [block] ':' type      a node; a block only for `loop`
    block   := '{' NL '^' '(' [ref ':' type (',' ref ':' type)*] ')' NL stmt* 'yield' [ref (',' ref)*] NL '}'
    ref     := NAME | %INT                              operands are names, never nested calls or delays

`args`, `type` and attribute values are those of the cell text (`ir.term_parser`); a loop's `body`
is its block, never an attribute. Counts are quoted symbolic expressions (`length="T//2"`) read by
`ir.symexpr`, or ints.

Names: NAME may carry `@` parts (`h@t-1`, `grad@y@0`, `res@0@1`); a NAME becomes the node's name,
`%k` labels a node only in the text (its name is None). Every region (the top level, each loop body)
has its own names: a body sees its `^(...)` params and its own nodes, nothing outside. A name is
defined once per region, before it is used (the printer writes operands before users).

Rules the printer's output always meets, checked here: the header lists exactly the symbols of
the inputs' shapes (in any order); every node is used by an output (a body's: by its yield), since a
Program holds only what its outputs need. Attributes left out take their defaults.

Errors: syntax errors are `ParseError`s (line, column, the source line and a caret). The program is
then checked by `verify_program`; its errors are `VerifyError`s shown the same way, at the line of
the node they name (with `line` and `column` attributes).
"""

from __future__ import annotations

from .errors import RnncompError, VerifyError
from .graph import Node, Use
from .ops import REQUIRED, OpDef, check_attrs
from .program import Program, Region
from .shapes import is_identifier, symbols_of
from .term_parser import TermParser
from .tokens import Token, located
from .verify_program import verify_program

__all__ = ["ProgramParser", "parse_program"]


def parse_program(text: str) -> Program:
    """The one program in `text`, verified; a ParseError if there is none or more than one."""
    p = ProgramParser(text)
    p.skip_newlines()
    prog = p.program()
    p.skip_newlines()
    tok = p.peek()
    if tok.kind != "eof":
        raise p.error(
            f"expected end of input after the closing '}}' of program {prog.name!r}, found {tok.describe()}", tok
        )
    return prog


class _Scope:
    """The names one region can read (the program's top level, or one loop body), and where each was defined."""

    def __init__(self, what: str, outer: _Scope | None = None):
        self.what, self.outer = what, outer
        self.nodes: dict[str, Node] = {}
        self.at: dict[str, Token] = {}
        self.defined: list[tuple[Node, Token]] = []  # the nodes defined by `NAME = op(...)` lines, in order


class ProgramParser(TermParser):
    """Recursive descent over the tokens of `text`; `program()` reads one program and returns it verified."""

    def __init__(self, text: str):
        super().__init__(text)
        self.where: dict[int, Token] = {}  # id(node) -> the token a verify error about it points at

    # -- names
    def define(self, scope: _Scope, tok: Token, node: Node) -> None:
        """Bind a name in its region; each name is defined once per region."""
        prev = scope.at.get(tok.text)
        if prev is not None:
            raise self.error(f"name {tok.text!r} is defined twice (first at {prev.line}:{prev.column})", tok)
        scope.nodes[tok.text], scope.at[tok.text] = node, tok

    def check_all_used(self, scope: _Scope, reachable: list[Node]) -> None:
        """Every node a region defines must be needed by its results: a Program holds nothing else."""
        live = {id(n) for n in reachable}
        for node, tok in scope.defined:
            if id(node) not in live:
                raise self.error(
                    f"{tok.text} is defined but never used: every node of {scope.what} must be needed by "
                    f"{'an output' if scope.outer is None else 'its yield'} (a program holds nothing else)",
                    tok,
                )

    # -- the program
    def program(self) -> Program:
        """`program NAME(SYMS) { ... }` -> a verified Program."""
        head = self.peek()
        if not self.at("program"):
            raise self.error(f"expected 'program NAME {{', found {head.describe()}", head)
        self.next()
        name = self.expect_kind("name", "the program's name after 'program'")
        symbols = self.symbols() if self.at("(") else {}
        brace = self.expect("{", f"to open program {name.text!r}")
        scope = _Scope(f"program {name.text!r}")
        inputs: list[Node] = []
        roles: dict[str, str] = {}
        type_at: dict[int, Token] = {}
        outputs: dict[str, Node] = {}
        out_at: dict[str, Token] = {}
        while True:
            self.skip_newlines()
            tok = self.peek()
            if self.at("}"):
                self.next()
                break
            if tok.kind == "eof":
                raise self.error(
                    f"expected '}}' to close program {name.text!r} (opened at {brace.line}:{brace.column}), "
                    "found end of input",
                    tok,
                )
            keyword = tok.text if tok.kind == "name" and not self.at("=", 1) else None
            if keyword == "input":
                node, role, at = self.input_line(scope)
                inputs.append(node)
                roles[node.name], type_at[id(node)] = role, at  # type: ignore[index]
            elif keyword == "out":
                self.output_line(scope, outputs, out_at)
            else:
                self.statement(scope)
        self.check_symbols(name.text, symbols, inputs, type_at)
        prog = Program(name.text, inputs, roles, outputs)
        self.check_all_used(scope, prog.nodes())
        return self.verified(prog, head)

    def symbols(self) -> dict[str, Token]:
        """`(B, T)`: the symbols the header declares."""
        opening = self.next()
        out: dict[str, Token] = {}
        while not self.at(")"):
            tok = self.peek()
            if tok.kind != "name" or not is_identifier(tok.text):
                raise self.error(f"expected a symbol (an identifier like T) in the header, found {tok.describe()}", tok)
            if tok.text in out:
                raise self.error(f"symbol {tok.text!r} is declared twice in the header", tok)
            out[self.next().text] = tok
            if self.at(","):
                self.next()
            elif not self.at(")"):
                self.unclosed("list of symbols", opening, "',' or ')'")
        self.next()
        return out

    def check_symbols(
        self, name: str, declared: dict[str, Token], inputs: list[Node], type_at: dict[int, Token]
    ) -> None:
        """The header lists exactly the symbols of the inputs' shapes (what the printer writes)."""
        used: set[str] = set()
        for n in inputs:
            for d in sorted(symbols_of(getattr(n.type, "shape", ()))):
                if d not in declared:
                    header = ", ".join(sorted([*declared, d]))
                    raise self.error(
                        f"symbol {d!r} in the type of input {n.name!r} is not declared in the header "
                        f"(write program {name}({header}) {{)",
                        type_at[id(n)],
                    )
                used.add(d)
        for s, tok in declared.items():
            if s not in used:
                raise self.error(
                    f"symbol {s!r} is declared in the header but no input's shape uses it "
                    "(the header lists the symbols of the inputs' shapes)",
                    tok,
                )

    def output_line(self, scope: _Scope, outputs: dict[str, Node], out_at: dict[str, Token]) -> None:
        """`out NAME = NAME`: a named output of the program."""
        self.next()
        key = self.expect_kind("name", "an output name after 'out'")
        if key.text in out_at:
            prev = out_at[key.text]
            raise self.error(f"output {key.text!r} is given twice (first at {prev.line}:{prev.column})", key)
        self.expect("=", f"after 'out {key.text}'")
        outputs[key.text], out_at[key.text] = self.operand(scope, f"output {key.text!r}"), key
        self.end_of_statement(f"output {key.text!r}")

    def input_line(self, scope: _Scope) -> tuple[Node, str, Token]:
        """`input ROLE NAME : TYPE` -> the input node, its role, and where its type is written."""
        self.next()
        role = self.expect_kind("name", "a role after 'input' (seq, param, init, lengths, ...)")
        if not is_identifier(role.text):
            raise self.error(f"input role {role.text!r} is not an identifier", role)
        name = self.expect_kind("name", f"the input's name after 'input {role.text}'")
        self.expect(":", f"and a type after input {name.text!r}")
        at = self.peek()
        node = Node("input", (), {}, self.type(), name.text)
        self.define(scope, name, node)
        self.where[id(node)] = name
        self.end_of_statement(f"input {name.text!r}")
        return node, role.text, at

    # -- statements shared by the top level and bodies
    def statement(self, scope: _Scope) -> None:
        """A node line `NAME = op(...) : type` (a loop's with its block), or an error naming what was found."""
        tok = self.peek()
        if tok.kind in ("name", "local") and self.at("=", 1):
            self.definition(scope)
            return
        keyword = tok.text if tok.kind == "name" else None
        if keyword in ("input", "out") and scope.outer is not None:
            raise self.error(
                f"'{keyword}' lines belong to the program's top level; a loop body takes its values as ^(...) "
                "params and hands them back with 'yield'",
                tok,
            )
        if keyword == "yield" and scope.outer is None:
            raise self.error("'yield' ends a loop body; the program's top level ends with 'out NAME = NAME' lines", tok)
        if self.at("^"):
            raise self.error("'^(...)' opens a loop body: it is the first line after 'loop(...) {'", tok)
        allowed = "input, out or NAME = op(...)" if scope.outer is None else "NAME = op(...) or yield"
        raise self.error(f"expected a statement ({allowed}), found {tok.describe()}", tok)

    def definition(self, scope: _Scope) -> None:
        target = self.next()
        self.next()  # '='
        op_tok = self.peek()
        if op_tok.kind != "name" or not self.at("(", 1):
            raise self.error(
                f"expected an op call after '{target.text} =', like add(%0, b); found {op_tok.describe()}", op_tok
            )
        op = self.op_def(self.next())
        args, attrs = self.arguments(op, self.next(), lambda: self.operand(scope, f"an operand of {op.name}"))
        if "body" in attrs:
            raise self.error(
                f"{op.name}: the body is a block after the call, {op.name}(...) {{ ^(...) ... yield ... }}, "
                "not an attribute",
                op_tok,
            )
        missing = [k for k, s in op.attrs.items() if s.default is REQUIRED and k not in attrs and k != "body"]
        if missing:
            raise self.error(f"{op.name}: missing attribute {missing[0]!r}; it takes {', '.join(op.attrs)}", op_tok)
        if "body" in op.attrs:
            if not self.at("{"):
                raise self.error(
                    f"expected '{{' and the body of {target.text} = {op.name}(...), found {self.peek().describe()}",
                    self.peek(),
                )
            attrs = {"body": self.region(scope, target), **attrs}
        elif self.at("{"):
            raise self.error(f"{op.name} takes no body block (only loops do)", self.peek())
        if not self.at(":"):
            raise self.error(
                f"expected ':' and the type of {target.text} (a node line ends with ': type'), "
                f"found {self.peek().describe()}",
                self.peek(),
            )
        self.next()
        name = target.text if target.kind == "name" else None
        node = Node(op.name, [Use(a) for a in args], self.checked_attrs(op, attrs, op_tok), self.type(), name)
        self.define(scope, target, node)
        scope.defined.append((node, target))
        self.where[id(node)] = op_tok
        self.end_of_statement(f"the definition of {target.text!r}")

    def checked_attrs(self, op: OpDef, attrs: dict, at: Token) -> dict:
        """The attributes in normal form, defaults filled in (as the passes build them)."""
        try:
            return check_attrs(op, attrs)
        except RnncompError as e:
            raise located(VerifyError, str(e), self.text, at) from None

    def operand(self, scope: _Scope, where: str) -> Node:
        """A name defined above in this region."""
        tok = self.peek()
        if tok.kind == "name" and self.at("(", 1):
            raise self.error(
                f"expected a name in {where}, found a call {tok.text}(...): a program writes each node on its own line",
                tok,
            )
        if tok.kind not in ("name", "local"):
            raise self.error(f"expected a name in {where} (NAME or %k), found {tok.describe()}", tok)
        self.next()
        if self.at("["):
            raise self.error(
                f"{tok.text}[...] reads a delay, and programs hold no delays "
                "(a loop carries the previous step's value as a ^(...) param)",
                self.peek(),
            )
        node = scope.nodes.get(tok.text)
        if node is None:
            raise self.error(f"undefined name {tok.text!r} in {where}: {self.undefined_hint(scope, tok.text)}", tok)
        return node

    def undefined_hint(self, scope: _Scope, name: str) -> str:
        if scope.outer is None:
            return "not an input or a node defined above"
        outer = scope.outer
        while outer is not None and name not in outer.nodes:
            outer = outer.outer
        if outer is not None:
            return (
                f"not a param or a node defined above in this loop body; {name!r} belongs to {outer.what}, and a "
                "body sees only its ^(...) params and its own nodes (pass the value in as a loop operand)"
            )
        return "not a param or a node defined above in this loop body"

    # -- loop bodies
    def region(self, outer: _Scope, owner: Token) -> Region:
        """`{ ^(params) nodes yield results }` -> the body Region (its own scope)."""
        opening = self.next()
        self.enter("loop bodies", opening)
        scope = _Scope(f"the loop body of {owner.text}", outer)
        self.end_of_statement("'{' (the body starts on the next line)")
        self.skip_newlines()
        if not self.at("^"):
            raise self.error(
                f"expected '^(' and the params of the loop body of {owner.text} (opened at "
                f"{opening.line}:{opening.column}), like ^(t@0: i64[], h@t-1: f32[B, 8]); "
                f"found {self.peek().describe()}",
                self.peek(),
            )
        self.next()
        params = self.params(scope)
        results: list[Node] | None = None
        while True:
            self.skip_newlines()
            tok = self.peek()
            if self.at("}"):
                if results is None:
                    raise self.error(
                        f"the loop body of {owner.text} (opened at {opening.line}:{opening.column}) ends without "
                        "a 'yield' line: a body ends with yield and the values it hands back",
                        tok,
                    )
                self.next()
                break
            if tok.kind == "eof":
                raise self.error(
                    f"expected '}}' to close the loop body of {owner.text} (opened at "
                    f"{opening.line}:{opening.column}), found end of input",
                    tok,
                )
            if results is not None:
                raise self.error(
                    f"expected '}}' to close the loop body of {owner.text} after its 'yield' line, "
                    f"found {tok.describe()}",
                    tok,
                )
            if tok.kind == "name" and tok.text == "yield" and not self.at("=", 1):
                self.next()
                results = self.yields(scope)
            else:
                self.statement(scope)
        region = Region(params, results)
        self.check_all_used(scope, region.nodes())
        self.leave()
        return region

    def params(self, scope: _Scope) -> list[Node]:
        """`(t@0: i64[], h@t-1: f32[B, 8], ...)` after '^'."""
        opening = self.expect("(", "after '^' (the body's params, like ^(t@0: i64[], x@0: f32[B, 4]))")
        params: list[Node] = []
        while not self.at(")"):
            tok = self.peek()
            if tok.kind not in ("name", "local"):
                raise self.error(f"expected a param name in ^(...), found {tok.describe()}", tok)
            self.next()
            self.expect(":", f"and a type after param {tok.text!r}")
            node = Node("input", (), {}, self.type(), tok.text if tok.kind == "name" else None)
            self.define(scope, tok, node)
            self.where[id(node)] = tok
            params.append(node)
            if self.at(","):
                self.next()
            elif not self.at(")"):
                self.unclosed("body params", opening, "',' or ')'")
        self.next()
        self.end_of_statement("the body's params ^(...)")
        return params

    def yields(self, scope: _Scope) -> list[Node]:
        """`yield a, b, %3`: the body's results, in order."""
        results: list[Node] = []
        while self.peek().kind not in ("nl", "eof") and not self.at("}"):
            results.append(self.operand(scope, "'yield'"))
            if not self.at(","):
                break
            self.next()
        self.end_of_statement("the 'yield' line")
        return results

    # -- verification, reported where the text says it
    def verified(self, prog: Program, head: Token) -> Program:
        """`verify_program(prog)`; an error points at the line of the node it blames."""
        try:
            return verify_program(prog)
        except VerifyError as e:
            err = located(VerifyError, str(e), self.text, self.blame(e) or head)
            err.node, err.region, err.cycle = e.node, e.region, e.cycle  # type: ignore[attr-defined]
            raise err from None

    def blame(self, e: VerifyError) -> Token | None:
        """The token of the node the error blames, or else of the innermost loop around it."""
        for node in (e.node, *reversed(e.region)):
            if node is not None and id(node) in self.where:
                return self.where[id(node)]
        return None
