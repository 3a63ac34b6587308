"""`rnncomp bench`: a user's cell timed at the sizes they give, across unroll modes.

For each unroll mode the cell is compiled once (the first forward and the first forward+backward
call, which build and compile the programs, are timed apart as "build"), then the forward
`prog(...)` and the forward+backward `prog.value_and_grad(output, ...)` are timed in interleaved
rounds over all modes (so a slow spell of a shared machine falls on every mode alike): the table
holds medians in milliseconds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ir import ArgumentError, Cell

from .compiler import compile as rc_compile

KINDS = ("fwd", "fwd+bwd")


def parse_unrolls(text: str) -> list[str | int]:
    """'loop,4,full' -> ['loop', 4, 'full']; anything else is an ArgumentError naming the item."""
    modes: list[str | int] = []
    for item in (s.strip() for s in text.split(",")):
        if item in ("loop", "full"):
            modes.append(item)
        elif item.isdigit() and int(item) >= 1:
            modes.append(int(item))
        else:
            raise ArgumentError(f"--unroll {text}: {item!r} is not an unroll mode (loop, full, or an int k >= 1)")
    if len(set(modes)) != len(modes):
        raise ArgumentError(f"--unroll {text}: a mode is named twice")
    return modes


def parse_dims(items: Sequence[str]) -> dict[str, int]:
    """['H=256', 'I=64'] -> {'H': 256, 'I': 64}."""
    dims: dict[str, int] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip() or not value.strip().isdigit():
            raise ArgumentError(f"--dim {item}: expected NAME=SIZE, such as H=256")
        dims[name.strip()] = int(value)
    return dims


def cell_dims(cell: Cell) -> list[str]:
    """The symbolic dims of `cell`'s inputs and states, in order of first appearance."""
    seen: dict[str, None] = {}
    for n in list(cell.inputs) + list(cell.state_types.values()):
        t = getattr(n, "type", n)
        for d in getattr(t, "shape", ()):
            if isinstance(d, str):
                seen.setdefault(d, None)
    return list(seen)


def bind_dims(cell: Cell, batch: int, dims: dict[str, int]) -> dict[str, int]:
    """The cell's symbolic dims bound to sizes: `B` from --batch, the others from --dim NAME=SIZE."""
    known = cell_dims(cell)
    others = [d for d in known if d != "B"]
    listing = (
        f"its dims are {', '.join(known)}" if others else "its only symbolic dim is B; its other sizes are fixed ints"
    )
    for name in dims:
        if name == "B":
            raise ArgumentError("--dim B=...: the batch size is set with --batch")
        if name not in known:
            raise ArgumentError(f"--dim {name}=...: cell {cell.name!r} has no dim {name!r}; {listing} (B: --batch)")
    env = {"B": batch, **dims}
    unbound = [d for d in others if d not in env]
    if unbound:
        hint = " ".join(f"--dim {d}=SIZE" for d in unbound)
        raise ArgumentError(f"cell {cell.name!r} has unbound dims {', '.join(unbound)}: pass {hint}")
    return env


def random_arrays(cell: Cell, T: int, env: dict[str, int], dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs: sequences (T, ...) and statics of standard normals, params scaled by 1/sqrt(fan-in)."""
    rng = np.random.default_rng(seed)
    shape = lambda t: tuple(env[d] if isinstance(d, str) else d for d in t.type.shape)
    arrays = {s.name: rng.standard_normal((T,) + shape(s)).astype(dtype) for s in cell.seqs}
    for p in cell.params:
        s = shape(p)
        arrays[p.name] = (rng.standard_normal(s) / np.sqrt(s[0] if len(s) == 2 else 1.0)).astype(dtype)
    for u in cell.statics:  # one value per batch row
        arrays[u.name] = rng.standard_normal(shape(u)).astype(dtype)
    return arrays


@dataclass
class BenchResult:
    """Medians (ms) per unroll mode and kind, and each mode's build time (s: compile + first calls)."""

    cell: str
    T: int
    dims: dict[str, int]
    output: str
    repeat: int
    modes: list[str | int]
    ms: dict[tuple[str | int, str], float] = field(default_factory=dict)
    build_s: dict[str | int, float] = field(default_factory=dict)

    def table(self) -> str:
        """A text table: one row per unroll mode, columns fwd and fwd+bwd medians and build time."""
        sizes = ", ".join(f"{k}={v}" for k, v in self.dims.items())
        head = (
            f"cell {self.cell}: T={self.T}, {sizes}; medians of {self.repeat} calls (ms); "
            f"fwd+bwd = value_and_grad({self.output!r}); build = compile + first calls (s)"
        )
        lines = [head, f"{'unroll':>8} | {'fwd ms':>10} | {'fwd+bwd ms':>10} | {'build s':>8}"]
        for m in self.modes:
            lines.append(
                f"{m!s:>8} | {self.ms[m, 'fwd']:>10.3f} | {self.ms[m, 'fwd+bwd']:>10.3f} | {self.build_s[m]:>8.2f}"
            )
        return "\n".join(lines)


def pick_output(cell: Cell, output: str | None) -> str:
    """The output whose sum is the loss of fwd+bwd: the one named, else the first per-step output."""
    names = list(cell.outputs) + list(cell.states)
    if output is None:
        return names[0]
    if output not in names:
        raise ArgumentError(f"--output {output}: cell {cell.name!r} has no output {output!r}; outputs are {names}")
    return output


def bench(
    cell: Cell,
    T: int,
    batch: int,
    dims: dict[str, int] | None = None,
    unrolls: Sequence[str | int] = ("loop", 4, "full"),
    repeat: int = 10,
    dtype: str = "float32",
    backend: str | None = None,
    output: str | None = None,
    rounds: int = 3,
    progress: Callable[[int], object] | None = None,
) -> BenchResult:
    """Time `cell` at length T, batch `batch` and `dims`, forward and forward+backward per unroll mode.

    `progress(total)` makes a progress bar (tqdm-like: `.update()`, `.close()`), advanced once per
    build and once per timed call.
    """
    env = bind_dims(cell, batch, dict(dims or {}))
    out_name = pick_output(cell, output)
    arrays = random_arrays(cell, T, env, dtype)
    result = BenchResult(cell.name, T, env, out_name, repeat, list(unrolls))
    bar = progress(len(unrolls) * (1 + 2 * repeat)) if progress else None
    calls: dict[tuple[str | int, str], Callable[[], object]] = {}
    for m in unrolls:
        prog = rc_compile(cell, length=T, unroll=m, dtype=dtype, backend=backend)
        fwd = lambda p=prog: p(**arrays)
        both = lambda p=prog: p.value_and_grad(out_name, **arrays)
        t0 = time.perf_counter()
        fwd()
        both()
        result.build_s[m] = time.perf_counter() - t0
        calls[m, "fwd"], calls[m, "fwd+bwd"] = fwd, both
        if bar:
            bar.update()
    times: dict[tuple[str | int, str], list[float]] = {k: [] for k in calls}
    per_round = [repeat // rounds + (i < repeat % rounds) for i in range(rounds)]
    for n in per_round:
        for key, f in calls.items():
            for _ in range(n):
                t0 = time.perf_counter()
                f()
                times[key].append(time.perf_counter() - t0)
                if bar:
                    bar.update()
    if bar:
        bar.close()
    result.ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    return result


def need_matplotlib():
    """matplotlib on the Agg backend, or an ArgumentError naming the extra that installs it."""
    try:
        import matplotlib
    except ImportError:
        raise ArgumentError(
            "--plot needs matplotlib, which is not installed: pip install 'rnncomp[examples]'"
        ) from None
    matplotlib.use("Agg")
    return matplotlib


def plot(result: BenchResult, path: str) -> None:
    """Draw the medians as grouped bars (one group per unroll mode) into a PNG at `path`."""
    need_matplotlib()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    x = np.arange(len(result.modes))
    for i, kind in enumerate(KINDS):
        values = [result.ms[m, kind] for m in result.modes]
        bars = ax.bar(x + (i - 0.5) * 0.38, values, 0.38, label=kind)
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
    ax.set_xticks(x, [f"unroll={m}" for m in result.modes])
    ax.set_ylabel("median time per call (ms)")
    sizes = ", ".join(f"{k}={v}" for k, v in result.dims.items())
    ax.set_title(f"rnncomp bench: {result.cell}, T={result.T}, {sizes}", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = [
    "BenchResult",
    "bench",
    "bind_dims",
    "cell_dims",
    "parse_dims",
    "need_matplotlib",
    "parse_unrolls",
    "pick_output",
    "plot",
    "random_arrays",
]
