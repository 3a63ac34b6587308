"""unroll="auto" against every fixed mode it chooses among, at the LSTM configs of lstm_cpu.py.

    python benchmarks/autotune.py [--configs S,M,L] [--repeat 7] [--threads 2] [--keep]

float32, numba-cpu. For each config: forward and forward+backward (value_and_grad of the sum of
outputs). The auto program's first call makes its choice (timed; unless --keep, a choice already on
disk is deleted first so that it is timed again in this run); then auto and the fixed modes loop, 2,
4, 8 are timed side by side, medians of interleaved passes (lstm_cpu.interleaved_ms). Prints each
time, auto's ratio to the best fixed mode (target <= 1.05), the mode auto picked and the times it
measured, how long its choosing first call took, and a control: a second, separately compiled copy
of the picked mode, whose ratio to the first is the noise floor of the run (1.00 on a quiet machine).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.lstm_cpu import CONFIGS, _threads, interleaved_ms  # noqa: E402

FIXED = ["loop", 2, 4, 8]


def run_config(tag: str, repeat: int, keep: bool) -> list[str]:

    import rnncomp as rc
    from benchmarks.cells import lstm_arrays, lstm_cell

    I, H, B, T = CONFIGS[tag]  # noqa: E741
    arrays = lstm_arrays(I, H, B, T)
    cell = lstm_cell(I, H)
    calls = {
        "fwd": lambda p: p(**arrays),
        "fwd+bwd": lambda p: p.value_and_grad("y", **arrays),
    }
    fixed = {m: rc.compile(cell, unroll=m, dtype="float32") for m in FIXED}
    lines = [f"{tag} (I={I}, H={H}, B={B}, T={T})"]
    for kind, call in calls.items():
        for p in fixed.values():
            call(p)  # compile outside the auto program's choosing
        auto = rc.compile(cell, unroll="auto", dtype="float32")
        t0 = time.perf_counter()
        call(auto)
        first = time.perf_counter() - t0
        (choice,) = auto.choice()
        if choice.source == "disk" and not keep:
            os.unlink(choice.path)
            auto = rc.compile(cell, unroll="auto", dtype="float32")
            t0 = time.perf_counter()
            call(auto)
            first = time.perf_counter() - t0
            (choice,) = auto.choice()
        twin = rc.compile(cell, unroll=choice.mode, dtype="float32")  # the noise floor: a second copy of a program
        call(twin)
        control = f"control: unroll={choice.mode} again"
        progs = {"auto": auto, **{f"unroll={m}": p for m, p in fixed.items()}, control: twin}
        fns = {name: (lambda p=p, call=call: call(p)) for name, p in progs.items()}
        times = interleaved_ms(fns, repeat)
        best_name = min((k for k in times if k.startswith("unroll=")), key=times.get)
        ratio = times["auto"] / times[best_name]
        noise = times[control] / times[f"unroll={choice.mode}"]
        lines.append(
            f"  {kind}: auto {times['auto']:.2f} ms, best fixed {best_name} {times[best_name]:.2f} ms, "
            f"auto/best = {ratio:.3f} ({'met' if ratio <= 1.05 else 'NOT met'}: target <= 1.05); "
            f"noise floor (two copies of one program) {noise:.3f}"
        )
        lines.append("    " + ", ".join(f"{k} {v:.2f} ms" for k, v in times.items()))
        lines.append(f"    auto's choice: {choice}; its first call took {first:.2f} s")
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="S,M,L")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="use a choice already on disk instead of timing again")
    args = ap.parse_args(argv)
    _threads(args.threads)
    print(f"loadavg before: {open('/proc/loadavg').read().strip()}")
    for tag in args.configs.split(","):
        for line in run_config(tag, args.repeat, args.keep):
            print(line, flush=True)
    print(f"loadavg after: {open('/proc/loadavg').read().strip()}")


if __name__ == "__main__":
    main()
