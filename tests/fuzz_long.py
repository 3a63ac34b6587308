"""The fuzzers' long mode: thousands of inputs, new ones each run unless `--seed` is given.

    python -m tests.fuzz_long                      # 5,000 of each text fuzzer, 2,000 names, 40 cells
    python -m tests.fuzz_long --text 20000 --cells 1000 --per-batch 2 --seed 7

Prints one line per class (inputs tried, handled cleanly, failures) and exits 1 if any input failed.
Cells for the differential fuzzer cost 10-60 s each of Numba compile: `--cells` is the slow knob.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

os.environ.setdefault("RNNCOMP_VERIFY", "1")


def run_strategy(strategy: st.SearchStrategy[Any], check: Callable[[Any], Any], n: int, seed: int) -> tuple[int, list]:
    """`check` on `n` draws of `strategy` (seeded); (how many ran, the failures as (input, error))."""
    ran, failures = [0], []

    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def body(x: Any) -> None:
        ran[0] += 1
        try:
            check(x)
        except AssertionError as e:  # a FuzzFailure or a broken round trip: record it, go on
            failures.append((x, e))

    from hypothesis import seed as hseed

    hseed(seed)(body)()
    return ran[0], failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz_long", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--text", type=int, default=5000, help="inputs per text fuzzer (cell grammar, program grammar, mutations)"
    )
    ap.add_argument("--names", type=int, default=2000, help="hostile names through the DSL into generated code")
    ap.add_argument("--cells", type=int, default=40, help="random cells for the differential fuzzer")
    ap.add_argument("--per-batch", type=int, default=2, help="cells compiled together in one union")
    ap.add_argument("--max-ops", type=int, default=8, help="ops per random cell")
    ap.add_argument("--seed", type=int, default=None, help="reproduce a run (default: a new seed)")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    print(f"seed {seed}", flush=True)

    from tests import test_fuzz as tf
    from tests import text_fuzz as fz

    failed = 0
    classes: list[tuple[str, st.SearchStrategy[Any], Callable[[Any], Any], int]] = [
        ("cell grammar", fz.cell_texts, tf.check_cell_text, a.text),
        ("program grammar", fz.program_texts, tf.check_program_text, a.text),
        ("mutated printer output", fz.mutants(tf.SEEDS),
         lambda m: (tf.check_cell_text if m[0] == "cell" else tf.check_program_text)(m[1]), a.text),
        ("names as injection attempts", st.tuples(st.sampled_from(sorted(tf._NAME_SLOTS)), tf._HOSTILE),
         lambda sn: tf.check_names({**tf._NAME_SLOTS, sn[0]: sn[1]}), a.names),
    ]  # fmt: skip
    for name, strategy, check, n in classes:
        if n <= 0:
            continue
        t = time.time()
        ran, failures = run_strategy(strategy, check, n, seed)
        failed += len(failures)
        print(f"{name}: {ran} inputs, {ran - len(failures)} handled cleanly, {time.time() - t:.0f} s", flush=True)
        for x, e in failures[:5]:
            print(f"  FAILED on {x!r}: {str(e)[:500]}")
        assert not os.path.exists(fz.MARKER), "a payload ran"

    if a.cells > 0:
        from tests.differential import batches, check_batch

        t, done, bad = time.time(), 0, 0
        for seeds, batch_seed in batches(a.cells, a.per_batch, first_seed=seed % 1_000_000):
            b = check_batch(seeds, batch_seed, max_ops=a.max_ops)
            done += len(seeds)
            if b.problems:
                bad += len({p.split("cell seed ")[1].split(")")[0] for p in b.problems if "cell seed" in p}) or 1
                print(f"  DISAGREE {seeds} {b.options}: {b.problems[:5]}", flush=True)
        failed += bad
        print(f"differential (numba-cpu vs numpy): {done} cells, {done - bad} agree, {time.time() - t:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
