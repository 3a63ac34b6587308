"""`unroll="auto"`: time the unroll modes on the first call of a shape, keep the fastest, on disk.

A choice is made per *key*: the variant kind ("forward" for `prog(...)`, "train" for `vjp` and
`value_and_grad`), whether `lengths` were given, the T bucket, every other bound dim (the batch B
and any other symbol) and the dtype. The **T bucket** is the smallest power of two >= the steps
that run (T, or max(lengths) with `lengths`; 0 stays 0): one choice serves T = 513 ... 1024. An int
`length` is one T, so one bucket; a symbolic T chooses once per bucket, at its first call there.

The candidates are "loop", 2, 4 and 8 (each k <= the bucket) and "full" where the bucket is <= 16
(a full unroll specialises per T, so with a symbolic T each new T in such a bucket compiles once).
At a key's first call each candidate runs once untimed (it compiles, or loads from the cache),
then rounds of one call each, interleaved, in rotating order, until at least `ROUNDS` rounds and
`MIN_SECONDS` of timing (at most `MAX_ROUNDS`); the least median wins. A small program's calls are
so short (0.4 ms at config S) that a few of them sit inside the machine's noise, and its modes lie
within a few percent of each other: it gets hundreds of rounds in the same second (15 rounds picked
unroll=2 there when loop was 3% faster). The training kind times the
forward and the backward together (`value_and_grad` as called, or `vjp` then a backward with ones
for every per-step output). Every candidate is a mode that is itself exact, so auto changes only
the speed.

The choice is a JSON file in the compiled-code cache (`RNNCOMP_CACHE_DIR`), `<key>.unroll.json`,
its key hashing what the compiled code's key hashes (the cell, backend, dtype, passes, options,
versions) plus the choice's own key: a second process reads it and times nothing. A file that
cannot be read is timed again and rewritten, with one warning. `RNNCOMP_UNROLL=loop|full|k` forces
that mode for every auto program (nothing is timed or written).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ir import ArgumentError

from .checkpointing import Planner

ENV = "RNNCOMP_UNROLL"
FACTORS = (2, 4, 8)
FULL_MAX = 16  # a full unroll is a candidate for T buckets up to this
ROUNDS, MAX_ROUNDS, MIN_SECONDS = 3, 2000, 1.0
FORMAT = "rnncomp-unroll-choice-1"


def bucket(T: int) -> int:
    """The power of two >= T (0 for 0) whose calls share one choice."""
    return 0 if T <= 0 else 1 << (T - 1).bit_length()


def candidates(b: int) -> list[str | int]:
    """The modes timed for T bucket `b`."""
    if b == 0:
        return ["loop"]
    return ["loop", *(k for k in FACTORS if k <= b), *(["full"] if b <= FULL_MAX else [])]


def forced_mode() -> str | int | None:
    """The mode `RNNCOMP_UNROLL` forces, or None when it is unset or empty."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    if text in ("loop", "full"):
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise ArgumentError(
        f"environment variable {ENV}: expected 'loop', 'full' or an int k >= 1 (the mode unroll='auto' "
        f"then uses), got {text!r}"
    )


def _mode_key(mode: str | int) -> str:
    return str(mode)


def _mode_of(text: str) -> str | int:
    return int(text) if text.isdigit() else text


@dataclass(frozen=True)
class Choice:
    """One choice of unroll mode: its key, the mode picked, the median seconds of each candidate
    (empty when forced), and where it came from ("timed", "disk" or "env")."""

    kind: str
    lengths: bool
    T_bucket: int
    dims: dict[str, int]
    dtype: str
    mode: str | int
    times: dict[str | int, float] = field(default_factory=dict)
    source: str = "timed"
    path: str | None = None

    def __str__(self) -> str:
        dims = ", ".join(f"{k}={v}" for k, v in self.dims.items())
        times = ", ".join(f"{m}: {1e3 * t:.3g} ms" for m, t in self.times.items())
        where = {"timed": "timed", "disk": f"read from {self.path}", "env": f"forced by {ENV}"}[self.source]
        return (
            f"{self.kind}{' with lengths' if self.lengths else ''} T<={self.T_bucket} {dims} {self.dtype}: "
            f"unroll={self.mode!r} ({where}{'; ' + times if times else ''})"
        )


class AutoUnroll:
    """The chooser of one `unroll="auto"` CompiledProgram: per-mode programs, choices, their files."""

    def __init__(self, prog):
        self.p = prog
        self._children: dict[str | int, Any] = {}
        self._choices: dict[tuple, Choice] = {}
        self._fast: dict[tuple, str | int] = {}  # (kind, call shapes, lengths bucket) -> mode
        self.last: str | int = "loop"  # the mode `ir()`, `source()` and `stages()` show

    # -- the programs of each mode
    def child(self, mode: str | int):
        """The program of a fixed `mode`, sharing this one's cell, options and analyses."""
        if mode not in self._children:
            c = copy.copy(self.p)
            c.unroll, c._variants, c._auto = mode, {}, None
            c._planner = Planner(c)  # its own schedules, in units of its own iterations (k steps for unroll=k)
            self._children[mode] = c
        return self._children[mode]

    def variant(self, kind, masked, T, window, outputs, wrt=None):
        """The variant `ir()`, `source()` and `stages()` show: of the mode picked last ("loop" before any)."""
        fixed = kind == "infer" and isinstance(self.p.length, int) and not masked
        if self.last == "full" and T is None and not fixed:
            raise ArgumentError(
                "unroll='auto' picked 'full' for the last call, and a full unroll over a symbolic length is "
                "specialised per T: pass T=... to see its IR"
            )
        return self.child(self.last)._variant(kind, masked, T, window, outputs, wrt)

    # -- calls
    def forward(self, lengths, arrays, seed=None) -> dict:
        def run(m):
            return self.child(m)(lengths=lengths, seed=seed, **arrays)

        mode, timed = self._mode("forward", lengths, arrays, run)
        return timed if timed is not None else run(mode)

    def vjp(self, lengths, arrays, wrt=None, seed=None):
        def probe(m):
            c = self.child(m)
            out, backward = c.vjp(lengths=lengths, wrt=wrt, seed=seed, **arrays)
            backward({k: np.ones_like(out[k]) for k in c.cell.outputs})

        mode, _ = self._mode("train", lengths, arrays, probe)
        return self.child(mode).vjp(lengths=lengths, wrt=wrt, seed=seed, **arrays)

    def value_and_grad(self, output, lengths, arrays, wrt=None, seed=None):
        def run(m):
            return self.child(m).value_and_grad(output, lengths=lengths, wrt=wrt, seed=seed, **arrays)

        mode, timed = self._mode("train", lengths, arrays, run)
        return timed if timed is not None else run(mode)

    def choices(self) -> list[Choice]:
        return list(self._choices.values())

    # -- choosing
    def _fast_key(self, kind, lengths, arrays):
        shapes = tuple(sorted((k, getattr(v, "shape", None)) for k, v in arrays.items()))
        if any(shape is None for _, shape in shapes):
            return None  # a list or scalar: its T and batch are known only after the bind below
        if lengths is None:
            return (kind, shapes, None)
        try:
            L = np.asarray(lengths)
            return (kind, shapes, (L.shape, bucket(int(L.max())) if L.size else 0))
        except (TypeError, ValueError):
            return None  # bad lengths: the bind below says what is wrong

    def _mode(self, kind, lengths, arrays, run):
        """(the mode for this call, the winner's last timed result if the modes were timed now, else None)."""
        fast = self._fast_key(kind, lengths, arrays)
        if fast is not None and fast in self._fast:
            return self._fast[fast], None
        p = self.p
        b = p._bind(lengths, arrays)  # a bad call fails here, with the runtime's own message
        masked = b.lengths is not None
        T_run = (int(b.lengths.max()) if b.lengths.size else 0) if masked else b.T
        dims = {k: int(v) for k, v in sorted(b.symbols.items()) if k != p.tsym}
        key = (kind, masked, bucket(T_run), tuple(dims.items()))
        result = None
        if key not in self._choices:
            self._choices[key], result = self._choose(kind, masked, bucket(T_run), dims, run)
        mode = self._choices[key].mode
        self.last = mode
        if fast is not None:
            self._fast[fast] = mode
        return mode, result

    def _choose(self, kind, masked, b, dims, run) -> tuple[Choice, Any]:
        dtype = str(self.p.dtype.numpy)
        forced = forced_mode()
        if forced is not None:
            return Choice(kind, masked, b, dims, dtype, forced, source="env"), None
        modes = candidates(b)
        path = self._path(kind, masked, b, dims, modes)
        found = self._read(path, modes)
        if found is not None:
            mode, times = found
            return Choice(kind, masked, b, dims, dtype, mode, times, "disk", str(path)), None
        times, results = self._time(modes, run)
        mode = min(modes, key=lambda m: times[m])
        self._write(path, mode, times, kind, masked, b, dims, dtype)
        return Choice(kind, masked, b, dims, dtype, mode, times, "timed", str(path)), results[mode]

    def _time(self, modes, run) -> tuple[dict, dict]:
        from .backends.registry import synchronize

        backend = self.p.backend
        samples: dict[Any, list[float]] = {m: [] for m in modes}
        results: dict[Any, Any] = {}
        for m in modes:  # compile (or load) each first, untimed
            results[m] = run(m)
        synchronize(backend)
        spent, rounds = 0.0, 0
        while rounds < MAX_ROUNDS and (rounds < ROUNDS or spent < MIN_SECONDS):
            order = modes[rounds % len(modes) :] + modes[: rounds % len(modes)]
            for m in order:
                t0 = time.perf_counter()
                results[m] = run(m)
                synchronize(backend)
                dt = time.perf_counter() - t0
                samples[m].append(dt)
                spent += dt
            rounds += 1
        return {m: statistics.median(s) for m, s in samples.items()}, results

    # -- the choice file
    def _path(self, kind, masked, b, dims, modes) -> Path:
        from .backends.common.cache import cache_dir, versions

        p = self.p
        ident = {
            "format": FORMAT,
            "cell": str(p.cell),
            "length": repr(p.length),
            "backend": p.backend,
            "dtype": str(p.dtype.numpy),
            "reverse": p.reverse,
            "passes": str(p.tail),
            "truncate": repr(p.truncate),
            "checkpoint": repr(p.checkpoint),
            "options": repr(sorted((str(k), repr(v)) for k, v in p.backend_options.items())),
            "versions": sorted(versions().items()),
            "kind": kind,
            "lengths": masked,
            "T_bucket": b,
            "dims": sorted(dims.items()),
            "candidates": [_mode_key(m) for m in modes],
        }
        key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()
        return cache_dir() / f"{key}.unroll.json"

    def _read(self, path: Path, modes) -> tuple[str | int, dict] | None:
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError("not an unroll choice")
            mode = _mode_of(str(data["mode"]))
            times = {_mode_of(k): float(v) for k, v in data["times"].items()}
            if mode not in modes or set(times) != set(modes):
                raise ValueError(f"mode {data['mode']!r} or its times are not among the candidates {modes}")
            return mode, times
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
            warnings.warn(
                f"rnncomp: unroll choice file {path} is unreadable ({type(e).__name__}: {e}); "
                "timing the unroll modes again and rewriting it",
                RuntimeWarning,
                stacklevel=5,
            )
            return None

    def _write(self, path: Path, mode, times, kind, masked, b, dims, dtype) -> None:
        data = {
            "format": FORMAT,
            "mode": _mode_key(mode),
            "times": {_mode_key(m): t for m, t in times.items()},
            "kind": kind,
            "lengths": masked,
            "T_bucket": b,
            "dims": dims,
            "dtype": dtype,
            "cell": self.p.cell.name,
        }
        from .backends.common import entry_files

        try:  # atomic, and whatever is in the way (a directory) is replaced; a cache that cannot be
            path.parent.mkdir(parents=True, exist_ok=True)  # written (read-only, full, a file) is no
            entry_files.replace(path, json.dumps(data, indent=1))  # failure: the next process times again
        except OSError:
            pass
