"""Named passes and the pass manager: a visible sequence, verification after each pass, IR dumps.

A pipeline is written as text, e.g. `simplify,hoist` or `unroll{mode=4},simplify`; each name is
looked up in `PASSES`. `RNNCOMP_PRINT_AFTER=all` (or a comma list of pass names) prints the IR
after those passes under an MLIR-style header, on stderr.
"""

from __future__ import annotations

import gc
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ir import Cell, PassError, Program, RnncompError, verify_cell
from ir.verify_program import verify_program

PASSES: dict[str, Callable[..., Any]] = {}


def register_pass(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a pass function `f(ir, **options) -> ir` under `name`."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        PASSES[name] = fn
        return fn

    return deco


def parse_pipeline(spec: str) -> list[tuple[str, dict[str, Any]]]:
    """`unroll{mode=4,reverse=true},simplify` -> [("unroll", {"mode": 4, "reverse": True}), ("simplify", {})]."""
    out = []
    for m in re.finditer(r"\s*([A-Za-z_][A-Za-z0-9_-]*)\s*(?:\{([^}]*)\})?\s*(?:,|$)", spec):
        if not m.group(1):
            continue
        opts: dict[str, Any] = {}
        for item in filter(None, (s.strip() for s in (m.group(2) or "").split(","))):
            key, _, val = item.partition("=")
            opts[key.strip()] = _option(val.strip())
        out.append((m.group(1), opts))
    if "".join(spec.split()) and not out:
        raise PassError(f"cannot read pipeline {spec!r}")
    return out


def _option(v: str) -> Any:
    if re.fullmatch(r"-?\d+", v):
        return int(v)
    return {"true": True, "false": False}.get(v, v)


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
    """Runs passes in order; keeps each stage's IR; verifies after each pass when asked."""

    passes: list[tuple[str, dict[str, Any]]]
    verify_each: bool = field(default_factory=lambda: os.environ.get("RNNCOMP_VERIFY", "") not in ("", "0"))
    print_after: set[str] | None = field(default_factory=print_after_from_env)

    def run(self, ir: Any) -> tuple[Any, dict[str, Any]]:
        # The IR is many small acyclic objects: the cyclic GC only rescans them (quadratic in T for a
        # full unroll), so it is paused while passes run.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._run(ir)
        finally:
            if enabled:
                gc.enable()

    def _run(self, ir: Any) -> tuple[Any, dict[str, Any]]:
        stages: dict[str, Any] = {}
        done: list[str] = []
        for name, opts in self.passes:
            if name not in PASSES:
                raise PassError(f"unknown pass {name!r}; registered passes: {', '.join(sorted(PASSES))}")
            try:
                ir = PASSES[name](ir, **opts)
                if self.verify_each:
                    verify(ir)
            except RnncompError as e:
                if isinstance(e, PassError) and "pass after" in str(e):
                    raise
                raise PassError(
                    f"an error occurred when running the {name!r} pass after the following passes: {done}: {e}"
                ) from e
            key = name if name not in stages else f"{name}#{done.count(name) + 1}"
            stages[key] = ir
            done.append(name)
            if self.print_after and ("all" in self.print_after or name in self.print_after):
                print(f"// -----// IR Dump After {key} //----- //\n{ir}", file=sys.stderr)
        return ir, stages
