"""Where a cold compile's time goes: the LSTM (I=128, H=256) training program, numba-cpu, empty cache.

    python benchmarks/compile_breakdown.py [--example lstm_128x256]

One process, a fresh program cache (Numba's cache of rnncomp's helpers as it is: run it twice, the
first run fills it). Times rc.compile + the first value_and_grad by stage: rnncomp's passes, source
generation, the import of each generated module (its row-block cfuncs compile there) and the first
call's compile of `program`; inside Numba, the time of its typing and lowering passes per function and
of LLVM (function passes, module passes, machine code) per library. Timers wrap Numba's internals
(numba 0.6x names), so the figures are for reading, not for tests.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _timed(owner, name: str, record) -> None:
    """Wrap owner.name so that each call's seconds go to record(self_or_first_arg, seconds)."""
    f = getattr(owner, name)

    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            record(a[0] if a else None, time.perf_counter() - t)

    setattr(owner, name, wrapper)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--example", default="lstm_128x256")
    args = ap.parse_args(argv)
    os.environ["RNNCOMP_CACHE_DIR"] = tempfile.mkdtemp(prefix="rnncomp-breakdown-")
    t0 = time.perf_counter()
    import numpy as np
    from numba.core import codegen, compiler_machinery

    import rnncomp as rc
    from benchmarks.compile_time import ROOT
    from passes import pipeline
    from rnncomp.backends.common import cache
    from rnncomp.backends.numba_cpu import runner
    from rnncomp.backends.registry import preload

    preload("numba-cpu")
    sys.path.insert(0, ROOT + "/examples")
    from _demo import random_arguments  # examples/_demo.py

    print(f"imports and preload: {time.perf_counter() - t0:.3f} s; loadavg {open('/proc/loadavg').read().split()[:3]}")
    stages: list[tuple[str, float]] = []
    _timed(pipeline.PassManager, "run", lambda _, s: stages.append(("passes (one pipeline)", s)))
    _timed(runner, "generate", lambda _, s: stages.append(("source generation", s)))
    _timed(cache, "_import", lambda _, s: stages.append(("module import: its row-block cfuncs compile", s)))
    _timed(runner.Runner, "_compile", lambda _, s: stages.append(("first call: `program` compiles", s)))
    numba_passes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    keep = ("translate_bytecode", "nopython_type_inference", "native_lowering")
    run_pass = compiler_machinery.PassManager._runPass

    def timed_pass(self, index, pss, state):
        t = time.perf_counter()
        try:
            return run_pass(self, index, pss, state)
        finally:
            if pss.name() in keep:
                numba_passes[state.func_id.func_qualname][pss.name()] += time.perf_counter() - t

    compiler_machinery.PassManager._runPass = timed_pass
    llvm: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

    def on_library(label: str):
        return lambda lib, s: llvm[lib.name.split("$")[0]].update({label: s})

    _timed(codegen.CPUCodeLibrary, "_optimize_functions", on_library("fpm"))
    _timed(codegen.CPUCodeLibrary, "_optimize_final_module", on_library("mpm"))
    _timed(codegen.JITCodeLibrary, "_finalize_specific", on_library("mc"))

    if args.example == "lstm_128x256":
        from benchmarks.cells import lstm_cell

        cell = lstm_cell(128, 256)
    else:
        cell = getattr(__import__(args.example), args.example)
    arrays = {k: v.astype(np.float32) for k, v in random_arguments(cell, T=5, B=3).items()}
    loss = next(k for k in cell.outputs if k not in cell.states)
    t1 = time.perf_counter()
    prog = rc.compile(cell, backend="numba-cpu")
    prog.value_and_grad(loss, **arrays)
    total = time.perf_counter() - t1
    print(f"{args.example}: build + first value_and_grad {total:.3f} s, by stage (in order):")
    for label, s in stages:
        print(f"  {label:48s} {s:7.3f}")
    print("Numba passes per function (nested compiles counted in their caller too), s:")
    for fn, c in sorted(numba_passes.items(), key=lambda kv: -sum(kv[1].values()))[:8]:
        print(f"  {fn[-44:]:44s} " + "  ".join(f"{k} {c[k]:.3f}" for k in keep))
    print("LLVM per library (fpm: function passes, mpm: module passes, mc: machine code), s:")
    for lib, c in sorted(llvm.items(), key=lambda kv: -sum(kv[1].values()))[:8]:
        print(f"  {lib[-44:]:44s} " + "  ".join(f"{k} {c[k]:.3f}" for k in ("fpm", "mpm", "mc")))


if __name__ == "__main__":
    main()
