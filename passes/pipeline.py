"""The pipeline: a visible sequence of passes, its text form, and the manager that runs it.

Text form (xDSL's `PassPipeline.parse_spec`): `unroll{mode=4,reverse=true},simplify,hoist`:
passes by registered name, options in braces as `name=value` (ints, `true`/`false`, bare words or
double-quoted strings). `Pipeline.parse(text)` reads it, checking every name, option and value;
`str(pipeline)` writes it back. `Pipeline.check(kind)` checks that each pass takes the kind of IR the
one before it gives. `RNNCOMP_PRINT_AFTER=all` (or a comma list of pass names) prints the IR after
those passes under an MLIR-style header, on stderr; `RNNCOMP_VERIFY=1` verifies after each pass.
"""

from __future__ import annotations

import gc
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ir import Cell, PassError, Program, RnncompError, verify_cell
from ir.verify_program import verify_program

from .registry import PASSES, Analyses, IRKind, Pass, kind_of, register_pass

__all__ = ["PASSES", "Analyses", "IRKind", "Pass", "PassManager", "Pipeline", "parse_pipeline", "register_pass"]

_TOKEN = re.compile(r'\s*(?:(?P<word>[A-Za-z0-9_.+-]+)|(?P<str>"(?:[^"\\]|\\.)*")|(?P<punct>[{}=,])|(?P<bad>\S))')


class Pipeline:
    """An ordered list of passes; `str()` gives its text form, which `Pipeline.parse` reads back."""

    def __init__(self, passes: Iterable[Pass] = ()):
        self.passes = list(passes)

    @classmethod
    def parse(cls, spec: str) -> Pipeline:
        """Read `unroll{mode=4},simplify,hoist`; a PassError names the place, the pass and the option."""
        return cls(_SpecParser(spec).pipeline())

    def check(self, start: IRKind) -> IRKind:
        """The kind of IR the pipeline gives when it starts from `start`; a PassError if a pass gets
        a kind it does not take."""
        kind, before = start, "the start"
        for i, p in enumerate(self.passes):
            if p.takes != kind:
                raise PassError(
                    f"pipeline {str(self)!r}: pass {p.name!r} takes a {p.takes} but gets a {kind} "
                    f"(after {before}); the IR kinds must chain (cell -> cell, cell -> program, program -> program)",
                    pass_name=p.name,
                    after=[q.name for q in self.passes[:i]],
                )
            kind, before = p.gives, f"{p.name!r}, which gives a {p.gives}"
        return kind

    def __add__(self, other: Pipeline) -> Pipeline:
        return Pipeline(self.passes + other.passes)

    def __iter__(self):
        return iter(self.passes)

    def __len__(self) -> int:
        return len(self.passes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pipeline) and self.passes == other.passes

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return ",".join(str(p) for p in self.passes)

    def __repr__(self) -> str:
        return f"Pipeline({str(self)!r})"


def parse_pipeline(spec: str) -> Pipeline:
    """`Pipeline.parse(spec)`."""
    return Pipeline.parse(spec)


class _SpecParser:
    """Reads the text form one token at a time; errors show the text with a caret under the place."""

    def __init__(self, spec: str):
        if not isinstance(spec, str):
            raise PassError(f"a pipeline is text such as 'simplify,hoist', got {type(spec).__name__}")
        self.spec, self.tokens = spec, []
        for m in _TOKEN.finditer(spec):
            kind = m.lastgroup
            self.tokens.append((kind, m.group(kind), m.start(kind)))  # type: ignore[arg-type]
        self.i = 0

    def error(self, message: str, at: int | None = None) -> PassError:
        col = len(self.spec) if at is None else at
        return PassError(f"pipeline {self.spec!r}, column {col + 1}: {message}\n  {self.spec}\n  {' ' * col}^")

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, what: str, kinds: tuple[str, ...] = ("word",), text: str | None = None) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None or tok[0] not in kinds or (text is not None and tok[1] != text):
            found = "the end" if tok is None else repr(tok[1])
            raise self.error(f"expected {what}, found {found}", None if tok is None else tok[2])
        self.i += 1
        return tok

    def pipeline(self) -> list[Pass]:
        out: list[Pass] = []
        if self.peek() is None:
            return out
        while True:
            out.append(self.one())
            if self.peek() is None:
                return out
            self.take("',' between passes", ("punct",), ",")

    def one(self) -> Pass:
        _, name, at = self.take("a pass name")
        if name not in PASSES:
            import difflib

            near = difflib.get_close_matches(name, list(PASSES), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise self.error(f"unknown pass {name!r}{hint}; registered passes: {', '.join(sorted(PASSES))}", at)
        opts: dict[str, Any] = {}
        tok = self.peek()
        if tok is not None and tok[1] == "{":
            self.i += 1
            while not (self.peek() or ("", "", 0))[1] == "}":
                _, key, kat = self.take(f"an option name of pass {name!r}")
                if key in opts:
                    raise self.error(f"pass {name!r}: option {key!r} is given twice", kat)
                self.take(f"'=' after option {key!r}", ("punct",), "=")
                kind, text, _ = self.take(f"a value for option {key!r}", ("word", "str"))
                opts[key] = _value(text) if kind == "word" else _unquote(text)
                nxt = self.peek()
                if nxt is None or nxt[1] != ",":
                    break
                self.i += 1
            self.take(f"'}}' closing the options of pass {name!r}", ("punct",), "}")
        try:
            return PASSES[name].make(**opts)
        except PassError as e:
            raise self.error(str(e), at) from None


def _value(text: str) -> Any:
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return {"true": True, "false": False}.get(text, text)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def as_pipeline(passes: Pipeline | str | Iterable[Pass | str]) -> Pipeline:
    """A Pipeline from one: its text form, or a list of passes and texts."""
    if isinstance(passes, Pipeline):
        return passes
    if isinstance(passes, str):
        return Pipeline.parse(passes)
    out: list[Pass] = []
    for p in passes:
        out.extend(Pipeline.parse(p).passes if isinstance(p, str) else [p])
    return Pipeline(out)


def verify(x: Any) -> Any:
    if isinstance(x, Cell):
        return verify_cell(x)
    if isinstance(x, Program):
        return verify_program(x)
    return x


def print_after_from_env() -> set[str] | None:
    v = os.environ.get("RNNCOMP_PRINT_AFTER", "").strip()
    if not v:
        return None
    return {"all"} if v == "all" else {s.strip() for s in v.split(",") if s.strip()}


@dataclass
class PassManager:
    """Runs a pipeline (checked when the manager is made); keeps each stage's IR; verifies after
    each pass when asked; names a failing pass with those that ran before it (torch.fx style)."""

    pipeline: Pipeline | str | list
    verify_each: bool = field(default_factory=lambda: os.environ.get("RNNCOMP_VERIFY", "") not in ("", "0"))
    print_after: set[str] | None = field(default_factory=print_after_from_env)
    start: IRKind = IRKind.cell

    def __post_init__(self) -> None:
        self.pipeline = as_pipeline(self.pipeline)
        self.gives = self.pipeline.check(self.start)

    def run(self, ir: Any, analyses: Analyses | None = None) -> tuple[Any, dict[str, Any]]:
        """(final IR, {stage name: IR after it}); a repeated pass's stages are `name#2`, ..."""
        if kind_of(ir) != self.start:
            raise PassError(f"pipeline {str(self.pipeline)!r} starts from a {self.start}, got {type(ir).__name__}")
        # The IR is many small acyclic objects: the cyclic GC only rescans them (quadratic in T for a
        # full unroll), so it is paused while passes run.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._run(ir, analyses or Analyses())
        finally:
            if enabled:
                gc.enable()

    def _run(self, ir: Any, analyses: Analyses) -> tuple[Any, dict[str, Any]]:
        stages: dict[str, Any] = {}
        done: list[str] = []
        for p in self.pipeline:  # type: ignore[union-attr]
            name = p.name
            try:
                ir = p.apply(ir, analyses)
                if self.verify_each:
                    verify(ir)
            except RnncompError as e:
                if isinstance(e, PassError) and e.pass_name is not None:
                    raise  # already names its pass (a pipeline run inside a pass)
                raise PassError(
                    f"an error occurred when running the {name!r} pass after the following passes: {done}: {e}",
                    pass_name=name,
                    after=done,
                ) from e
            key = name if name not in stages else f"{name}#{done.count(name) + 1}"
            stages[key] = ir
            done.append(name)
            if self.print_after and ("all" in self.print_after or name in self.print_after):
                print(f"// -----// IR Dump After {key} //----- //\n{ir}", file=sys.stderr)
        return ir, stages
