"""The reliability table: each class of hostile input or fault tried, how many cases, how many were
handled cleanly (a value, or one of rnncomp's own errors, within the time limit; for the cache, one
warning and right numbers), and the command that reproduces the count.

    python -m benchmarks.reliability [--text 5000] [--names 2000] [--cells 8] [--seed 2]

The fuzzers' classes run through `python -m tests.fuzz_long` (seeded: the same seed, the same inputs);
the classes that are test suites (runtime misuse, limits, numerics, CLI, cache faults) run their test
files, whose cases are counted as pytest collects them (a parametrised case is one case). Prints a
Markdown table (RELIABILITY.md holds the last one recorded).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (class, test files): suites whose every case is an input a user could get wrong; files not on
# this checkout are reported as missing, not counted
SUITES = [
    ("runtime misuse (names, vjp aliasing, memory(), dtypes)", ["tests/test_misuse.py"]),
    ("array kinds (ints, bools, objects, masked, huge shapes)", ["tests/test_argument_kinds.py"]),
    ("limits (nesting, literal sizes, delays, name lengths)", ["tests/test_limits.py"]),
    ("unroll limits (steps, lengths past 2**63)", ["tests/test_unroll_limits.py"]),
    ("numerics (every op near its limits, float32 bounds)", ["tests/test_numerics.py"]),
    ("CLI cases", ["tests/test_cli.py"]),
    ("CLI with hostile files (binary, interrupts, internal errors)", ["tests/test_cli_hostile.py"]),
    ("parse and verify errors: each message", ["tests/test_text_errors.py", "tests/test_compile_errors.py"]),
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def fuzzers(text: int, names: int, cells: int, seed: int) -> list[tuple[str, int, int, str]]:
    cmd = [sys.executable, "-m", "tests.fuzz_long", "--text", str(text), "--names", str(names)]
    cmd += ["--cells", str(cells), "--seed", str(seed)]
    shown = " ".join(["python"] + cmd[1:])
    out = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"(.+?): (\d+) (?:inputs|cells), (\d+) (?:handled cleanly|agree)", line)
        if m:
            rows.append((m.group(1), int(m.group(2)), int(m.group(3)), shown))
    return rows


def suite(files: list[str]) -> tuple[int, int] | None:
    present = [f for f in files if (ROOT / f).exists()]
    if not present:
        return None
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *present]
    out = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True).stdout
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|error|errors|skipped)", out.splitlines()[-1])}
    total = sum(counts.values())
    return total, counts.get("passed", 0)


def cache_faults() -> tuple[int, int]:
    sys.path.insert(0, str(ROOT))
    from tests.test_cache_faults import FAULTS, OTHER_FAULTS

    result = suite(["tests/test_cache_faults.py"])
    assert result is not None
    total, passed = result
    return FAULTS + OTHER_FAULTS, (FAULTS + OTHER_FAULTS) if passed == total else 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.reliability", description=__doc__.split("\n")[0])
    ap.add_argument("--text", type=int, default=5000)
    ap.add_argument("--names", type=int, default=2000)
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument("--seed", type=int, default=2)
    a = ap.parse_args(argv)
    rows = fuzzers(a.text, a.names, a.cells, a.seed)
    n, ok = cache_faults()
    rows.append(("cache faults (files and directory)", n, ok, "python -m pytest -q tests/test_cache_faults.py"))
    for what, files in SUITES:
        r = suite(files)
        cmd = "python -m pytest -q " + " ".join(files)
        rows.append((what, *r, cmd) if r else (what, 0, 0, f"({', '.join(files)}: not on this checkout)"))
    print("| class of input | cases | handled cleanly | reproduce with |")
    print("|---|---:|---:|---|")
    for what, n, ok, cmd in rows:
        print(f"| {what} | {n:,} | {ok:,} | `{cmd}` |")


if __name__ == "__main__":
    main()
