"""Tokens of the IR text forms (cells and programs), and a cursor over them whose errors show a caret.

Names are identifiers with optional `@` parts, as unrolling and the grad pass write them:
`h@3`, `h@t-1`, `grad@y@0`, `res@0@1`, `dstate@h@t-1`, `h@d1`. `%k` is a local label. `#` starts a
comment to the end of the line; newlines are tokens (they end statements).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import ParseError
from .limits import MAX_NESTING, MAX_NUMBER_CHARS, MAX_TOKEN_CHARS

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(
    rf"""
    [ \t\r]*                                  # blanks before a token belong to no token
    (?: (?P<comment>\#[^\n]*)
  | (?P<nl>\n)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<local>%\d+)
  | (?P<string>"[^"\n]*")
  | (?P<name>{_NAME}(?:@(?:t-\d+|\d+|{_NAME}))*)
  | (?P<punct>[{{}}()\[\],=:+^*/-])
  | (?P<bad>.) )
    """,
    re.VERBOSE | re.ASCII,  # ASCII: `\d` is 0-9 only (int() would read other scripts' digits, or fail on '²')
)


class Token(NamedTuple):
    """One token: kind ('name', 'local', 'number', 'string', 'punct', 'nl', 'eof'), its text, its 1-based position.

    A NamedTuple: immutable, and cheap to make (a long program has hundreds of thousands of tokens)."""

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
    line, line_start = 1, 0
    for m in _TOKEN.finditer(text):  # every character but trailing blanks is in a match ('bad' catches the rest)
        kind = m.lastgroup
        if kind == "comment":
            continue
        pos = m.start(kind)
        if kind == "nl":
            tokens.append(Token("nl", "\n", line, pos - line_start + 1))
            line, line_start = line + 1, pos + 1
        elif kind == "bad":
            what = "unterminated string" if text[pos] == '"' else f"unexpected character {text[pos]!r}"
            raise ParseError(what, text, line, pos - line_start + 1)
        elif kind is not None:
            word = m.group(kind)
            limit = MAX_NUMBER_CHARS if kind == "number" else MAX_TOKEN_CHARS
            if len(word) > limit:
                what = "number literal" if kind == "number" else f"{kind} token"
                raise ParseError(
                    f"{what} of {len(word)} characters is above the limit of {limit} "
                    f"(ir.limits.{'MAX_NUMBER_CHARS' if kind == 'number' else 'MAX_TOKEN_CHARS'})",
                    text,
                    line,
                    pos - line_start + 1,
                )
            tokens.append(Token(kind, word, line, pos - line_start + 1))
    tokens.append(Token("eof", "", line, len(text) - line_start + 1))
    return tokens


def located(cls: type[Exception], message: str, text: str, tok: Token) -> Exception:
    """An error of class `cls` whose message shows `line:col`, the source line and a caret; it carries
    `line` and `column` attributes like a ParseError (so a VerifyError found while parsing reads the same)."""
    err = ParseError(message, text, tok.line, tok.column)
    if cls is ParseError:
        return err
    out = cls(str(err))
    out.line, out.column = tok.line, tok.column  # type: ignore[attr-defined]
    return out


class TokenReader:
    """A cursor over the tokens of `text`, with the checks every grammar rule uses."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.last = len(self.tokens) - 1  # the 'eof' token, where the cursor stays
        self.pos = 0
        self.depth = 0  # how deeply the rule being read is nested (calls, lists, loop bodies)

    def peek(self, k: int = 0) -> Token:
        i = self.pos + k
        return self.tokens[i if i < self.last else self.last]

    def next(self) -> Token:
        tok = self.tokens[self.pos]
        if self.pos < self.last:
            self.pos += 1
        return tok

    def at(self, text: str, k: int = 0) -> bool:
        """Whether the token `k` ahead is the punctuation or name `text`."""
        tok = self.peek(k)
        return tok.text == text and tok.kind in ("punct", "name")

    def enter(self, what: str, tok: Token) -> None:
        """One level deeper into a nested rule; past MAX_NESTING a ParseError (the parsers recurse)."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"{what} nested more than {MAX_NESTING} deep (ir.limits.MAX_NESTING)", tok)

    def leave(self) -> None:
        self.depth -= 1

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

    def unclosed(self, what: str, opening: Token, expected: str) -> None:
        """Raise for a bracket that is not closed: 'unterminated' when the line ends first."""
        tok, at = self.peek(), f"opened at {opening.line}:{opening.column}"
        if tok.kind in ("nl", "eof"):
            raise self.error(f"unterminated {what} ({at}): expected {expected}, found {tok.describe()}", tok)
        raise self.error(f"expected {expected} in the {what} ({at}), found {tok.describe()}", tok)

    def text_between(self, start: Token) -> str:
        """The source text from `start` up to the current token (for messages)."""
        line = self.text.splitlines()[start.line - 1]  # a value never spans lines
        return line[start.column - 1 : self.peek().column - 1].strip()
