"""Every Python block in README.md runs as written, in order, in one namespace (as a reader pastes them)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def readme_blocks() -> list[str]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


def test_readme_has_python_blocks():
    assert len(readme_blocks()) >= 4


def test_readme_blocks_run(monkeypatch, tmp_path, capsys):
    """The blocks run with the user's default backend (numba-cpu), not the IR suites' numpy override."""
    monkeypatch.delenv("RNNCOMP_BACKEND", raising=False)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(readme_blocks()):
        line = README.read_text(encoding="utf-8")[: README.read_text(encoding="utf-8").index(block)].count("\n") + 1
        try:
            exec(compile(block, f"README.md:{line}", "exec"), namespace)
        except Exception as e:  # noqa: BLE001 - the test reports which block failed
            pytest.fail(f"README block {i} (line {line}) failed: {type(e).__name__}: {e}")
