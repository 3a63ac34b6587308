"""Golden snapshots of the generated source: every example, both Numba backends, the main variants;
and of the kernel program after `plan` (what both printers follow), as `<example>-plan-<variant>.txt`.

A change to generated code shows up here as a diff to review. After a deliberate change, rewrite
the snapshots and read the diff: `RNNCOMP_UPDATE_GOLDEN=1 python -m pytest -q tests/test_golden.py`
(or `pytest --update-golden tests/test_golden.py`), then `git diff tests/golden`.

Source is generated from the final Program only (the IR is built on the numpy backend, and
neither generator imports Numba), so this suite compiles nothing and needs no GPU.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import pytest

import rnncomp as rc
from passes.fuse import fuse
from passes.plan import plan
from rnncomp.backends.numba_cpu import generate_source as cpu_source
from rnncomp.backends.numba_cuda import generate_source as cuda_source
from tests.support import EXAMPLES, cell_of

GOLDEN = Path(__file__).resolve().parent / "golden"
GENERATORS = {
    "numba-cpu": cpu_source,
    "numba-cuda": cuda_source,
    "plan": lambda prog, dtype: str(plan(fuse(prog))),  # the kernel program both printers follow
}
SUFFIX = {"plan": ".txt"}  # generated source is .py
# name: (unroll, length, lengths, grad, T for a full unroll)
VARIANTS = {
    "loop": ("loop", "T", False, False, None),
    "loop-lengths": ("loop", "T", True, False, None),
    "unroll2": (2, "T", False, False, None),
    "full3": ("full", 3, False, False, None),
    "loop-grad": ("loop", "T", False, True, None),
    "full3-grad": ("full", "T", False, True, 3),
}


# numba-cpu's module names the BLAS found at import (MKL when torch loaded it first, else OpenBLAS or none):
# a fact of the machine, not of the code generator, so snapshots hold a stand-in for it.
BLAS_LINE = re.compile(r"^BLAS = \d+  # the BLAS the GEMM helpers call: .*$", re.M)
BLAS_STANDIN = "BLAS = <mode>  # the BLAS the GEMM helpers call: <found at import>"


def snapshot_name(example: str, backend: str, variant: str) -> str:
    return f"{example}-{backend}-{variant}{SUFFIX.get(backend, '.py')}"


def updating(config: pytest.Config) -> bool:
    return bool(config.getoption("--update-golden")) or os.environ.get("RNNCOMP_UPDATE_GOLDEN", "") not in ("", "0")


def generated(example: str, backend: str, variant: str) -> str:
    unroll, length, lengths, grad, T = VARIANTS[variant]
    prog = rc.compile(cell_of(example), length=length, unroll=unroll, backend="numpy", dtype="float32")
    final = list(prog.stages(lengths=lengths, T=T, grad=grad).values())[-1]
    return BLAS_LINE.sub(BLAS_STANDIN, GENERATORS[backend](final, "float32"))


def mismatch(path: Path, text: str) -> str | None:
    """None when `path` holds `text`; otherwise what to tell the reviewer (with a unified diff)."""
    if not path.exists():
        return f"{path.name}: no snapshot; write it with RNNCOMP_UPDATE_GOLDEN=1 and review it"
    want = path.read_text(encoding="utf-8")
    if text == want:
        return None
    diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True), "snapshot", "generated", n=2))
    return (
        f"{path.name}: generated source differs from its snapshot (review, then regenerate with "
        f"RNNCOMP_UPDATE_GOLDEN=1):\n{diff[:6000]}"
    )


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("backend", list(GENERATORS))
@pytest.mark.parametrize("example", EXAMPLES)
def test_generated_source_matches_its_snapshot(example, backend, variant, request):
    path = GOLDEN / snapshot_name(example, backend, variant)
    text = generated(example, backend, variant)
    if updating(request.config):
        GOLDEN.mkdir(exist_ok=True)
        if mismatch(path, text) is not None:
            path.write_text(text, encoding="utf-8")
        return
    message = mismatch(path, text)
    if message is not None:
        pytest.fail(message, pytrace=False)


def test_every_snapshot_has_a_variant():
    """No stale snapshot lingers after a variant or example is removed."""
    want = {snapshot_name(e, b, v) for e in EXAMPLES for b in GENERATORS for v in VARIANTS}
    assert sorted(p.name for p in GOLDEN.iterdir()) == sorted(want)


def test_a_changed_snapshot_is_reported_with_its_diff(tmp_path):
    text = generated("elman", "numba-cpu", "loop")
    path = tmp_path / "elman-numba-cpu-loop.py"
    assert "no snapshot" in mismatch(path, text)
    path.write_text(text.replace("def program(", "def programme("), encoding="utf-8")
    message = mismatch(path, text)
    assert "differs from its snapshot" in message
    assert "-def programme(" in message and "+def program(" in message
    path.write_text(text, encoding="utf-8")
    assert mismatch(path, text) is None


def test_printer_words_are_reserved_from_ir_names():
    """Every word the printers write themselves (not a counter like `t3`, not `in_x` / `d_B` / a
    CUDA kernel `k3_fused`, not named after an IR node) is in common/names.py's RESERVED, so that
    a variable named after an IR node can never shadow it."""
    import ast
    import builtins
    import keyword

    from rnncomp.backends.common.names import RESERVED, ir_base

    derived: set[str] = set()
    words: set[str] = set()
    for example in EXAMPLES:
        for unroll, length, lengths, grad, T in VARIANTS.values():
            prog = rc.compile(cell_of(example), length=length, unroll=unroll, backend="numpy", dtype="float32")
            final = list(prog.stages(lengths=lengths, T=T, grad=grad).values())[-1]
            stack = list(final.nodes())
            while stack:
                n = stack.pop()
                base = ir_base(n.name)
                if base is not None:
                    derived.update({base, base + "_state", base + "_next"})
                if n.op == "loop":
                    stack += n.attrs["body"].nodes()
            for backend in ("numba-cpu", "numba-cuda"):
                for node in ast.walk(ast.parse(GENERATORS[backend](final, "float32"))):
                    if isinstance(node, ast.Name):
                        words.add(node.id)
                    elif isinstance(node, ast.FunctionDef):
                        words.update([node.name] + [a.arg for a in node.args.args])
    printer = {
        w
        for w in words
        if not (w[-1].isdigit() or w.endswith("_") or w.startswith(("in_", "d_", "f_")))
        and not (w[0] == "k" and w[1].isdigit())
        and not keyword.iskeyword(w)
        and not hasattr(builtins, w)
        and w not in derived
    }
    assert printer <= RESERVED, sorted(printer - RESERVED)
    assert {"h", "c", "h_state"} <= words  # IR names do reach the code
