"""The rnncomp error hierarchy: every problem a user can cause is one of these, never a bare traceback."""

from __future__ import annotations

from typing import Any


class RnncompError(Exception):
    """Base of every error rnncomp raises on purpose."""


class VerifyError(RnncompError):
    """A graph breaks a rule of the IR (cycle, shape, dtype, undefined name, ...).

    `node` is the node the message blames (None when it blames the graph as a whole); `region` is
    the path of loop nodes whose bodies hold it, outermost first (empty at the top level); `cycle`,
    for an algebraic loop or a cyclic program, is the nodes of the cycle.
    """

    def __init__(self, message: str, node: Any = None, region: tuple = (), cycle: tuple = ()):
        super().__init__(message)
        self.node, self.region, self.cycle = node, tuple(region), tuple(cycle)


class ShapeError(VerifyError):
    """Operand shapes or dtypes do not fit an op's rule."""


class UnknownOpError(VerifyError):
    """An op name that is not in the op table."""


class DSLError(RnncompError):
    """The Python DSL was used in a way it does not allow."""


class ParseError(RnncompError):
    """IR text that does not follow the grammar; carries line, column and a caret display."""

    def __init__(self, message: str, text: str = "", line: int = 0, column: int = 0):
        self.message, self.text, self.line, self.column = message, text, line, column
        super().__init__(self._render())

    def _render(self) -> str:
        if not self.line:
            return self.message
        lines = self.text.splitlines() or [""]
        src = lines[self.line - 1] if self.line - 1 < len(lines) else ""
        col = self.column - 1
        if len(src) > _WIDTH:  # a window of a long line around the column, not the whole line
            lo = max(0, min(col - _WIDTH // 2, len(src) - _WIDTH))
            src, col = src[lo : lo + _WIDTH], col - lo
        caret = " " * col + "^"
        return f"{self.line}:{self.column}: {self.message}\n  {src}\n  {caret}"


_WIDTH = 240  # the widest source line a message shows whole


class PassError(RnncompError):
    """A pass failed or left the IR ill-formed, or a pipeline is ill-formed.

    `pass_name` is the pass it blames (None for an error raised inside a pass, before the pipeline
    names it); `after` the passes that ran before it.
    """

    def __init__(self, message: str, pass_name: str | None = None, after: Any = ()):
        super().__init__(message)
        self.pass_name, self.after = pass_name, list(after)


class ArgumentError(RnncompError):
    """A runtime or compile argument is missing, unknown, or of the wrong shape, dtype or value."""
