"""The import rules of DESIGN.md, checked on the source (AST), not by importing anything.

`ir` imports no passes, rnncomp or numba; `passes` imports no rnncomp or numba; numba only under
rnncomp/backends/; the numba-cpu and numba-cuda backends import nothing from each other (what they
share lives in rnncomp/backends/common/ and passes/).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative imports resolved."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            mod = ".".join(p for p in (base, node.module) if p)
            out += [(node.lineno, mod if node.module else f"{mod}.{a.name}") for a in node.names]
    return out


def offences(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, mod in imports(path):
            if any(mod == f or mod.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    return found


@pytest.mark.parametrize(
    "folder, forbidden",
    [
        ("rnncomp/backends/numba_cpu", ("rnncomp.backends.numba_cuda",)),
        ("rnncomp/backends/numba_cuda", ("rnncomp.backends.numba_cpu",)),
        ("rnncomp/backends/common", ("rnncomp.backends.numba_cpu", "rnncomp.backends.numba_cuda")),
        ("passes", ("rnncomp", "numba", "llvmlite")),
        ("ir", ("passes", "rnncomp", "numba", "llvmlite")),
    ],
)
def test_imports_point_one_way(folder, forbidden):
    assert offences(folder, forbidden) == []


def test_numba_only_under_backends():
    found = [o for o in offences("rnncomp", ("numba", "llvmlite")) if not o.startswith("rnncomp/backends/")]
    assert found == []


def test_the_checker_resolves_relative_imports(tmp_path):
    """A relative import from one backend into the other is caught (the check can fail)."""
    pkg = tmp_path / "rnncomp" / "backends" / "numba_cuda"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("from ..numba_cpu.emit import Index\nfrom . import kernels\nimport numba.cuda\n")
    assert imports(pkg / "x.py", tmp_path) == [
        (1, "rnncomp.backends.numba_cpu.emit"),
        (2, "rnncomp.backends.numba_cuda.kernels"),
        (3, "numba.cuda"),
    ]
