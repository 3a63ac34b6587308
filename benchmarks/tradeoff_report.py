"""The figures and the RESULTS.md section of benchmarks/tradeoffs.py (matplotlib, Agg)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BEGIN, END = "<!-- tradeoffs:begin -->", "<!-- tradeoffs:end -->"


@dataclass
class Part:
    """One measured trade-off: its figure(s), a caption saying what they show, and a table."""

    key: str
    title: str
    caption: str
    heads: list[str]
    rows: list[list[str]]
    figures: list[Path]
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def markdown_table(self) -> str:
        lines = ["| " + " | ".join(self.heads) + " |", "|" + "---|" * len(self.heads)]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines)

    def text_table(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) for i, h in enumerate(self.heads)]
        fmt = lambda cells: " | ".join(c.rjust(w) for c, w in zip(cells, widths))
        return "\n".join([fmt(self.heads)] + [fmt(r) for r in self.rows])


def write_section(results: Path, parts, command, stamp, load_before, load_after, seconds, out: Path, threads):
    """Replace the text between the markers in `results` (append the section if it has none)."""
    rel = lambda p: os.path.relpath(p, results.parent)
    body = [
        BEGIN,
        "## Trade-offs: memory, unrolling, variable lengths, truncation (issue 15)",
        "",
        f"`{command}` — written by the script ({stamp}, {seconds:.0f} s in all, {threads} threads for rnncomp "
        f"and PyTorch; load average {' '.join(load_before)} before and {' '.join(load_after)} after, on the "
        "shared 2-core machine: other engineers' jobs ran at the same time, so single numbers can be off by "
        "tens of percent; medians of interleaved repeats). Each part alone: `--only PART`.",
    ]
    for p in parts:
        body += ["", f"### {p.title}", ""]
        body += [f"![{p.title}]({rel(f)})" for f in p.figures]
        body += ["", p.caption + f" ({p.seconds:.0f} s)", "", p.markdown_table()]
        body += [f"\n{n}" for n in p.notes]
    body.append(END)
    section = "\n".join(body) + "\n"
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results.write_text(text)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_memory(path, Ts, model, measured, io_mib, title) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for i, (name, ys) in enumerate(model.items()):
        color = f"C{i}"
        ax.plot(Ts, ys, "-", color=color, label=f"{name}: model")
        pts = sorted(measured[name].items())
        if pts:
            ax.plot([t for t, _ in pts], [m for _, m in pts], "o", color=color, mfc="none", label=f"{name}: measured")
    ax.plot(Ts, [io_mib[t] for t in Ts], "--", color="grey", label="inputs + outputs + grads")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("MiB")
    ax.set_title(f"Memory for the backward pass vs T ({title})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)


def plot_unroll(path, configs, results, modes) -> None:
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4.2))
    for ax, (tag, r) in zip(axes, results.items()):
        I, H, B, T = configs[tag]  # noqa: E741
        x = range(len(modes))
        for kind, marker in (("fwd", "o"), ("fwd+bwd", "s")):
            ax.plot(x, [r.ms[m, kind] for m in modes], marker + "-", label=kind)
        ax.set_xticks(list(x), [str(m) for m in modes])
        ax.set_xlabel("unroll")
        ax.set_ylabel("median ms per call")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{tag}: I={I} H={H} B={B} T={T}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Time per call vs unroll mode (LSTM, float32)", fontsize=11)
    _save(fig, path)


def plot_compile(path, Ts, modes, passes_s, codegen_s) -> None:
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    for i, m in enumerate(modes):
        ax.plot(Ts, passes_s[m], "o-", color=f"C{i}", label=f"unroll={m}: passes")
        ax.plot(
            Ts,
            [p + c for p, c in zip(passes_s[m], codegen_s[m])],
            "s--",
            color=f"C{i}",
            label=f"unroll={m}: passes + codegen",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("seconds")
    ax.set_title("Training programs: pass pipeline and source generation vs T (LSTM I=128 H=256)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_lengths(path, fractions, impls, times, title) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, kind in zip(axes, ("fwd", "fwd+bwd")):
        for i, name in enumerate(impls):
            ax.plot(fractions, times[kind, name], "o-" if "rnncomp" in name else "s--", color=f"C{i}", label=name)
        ax.invert_xaxis()
        ax.set_xlabel("mean / max length (1.0 = no padding)")
        ax.set_ylabel("median ms per call")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{kind}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Variable lengths: time vs padding ({title})", fontsize=11)
    _save(fig, path)


def plot_truncate(path, ks, ms, cos, title) -> None:
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    ax.plot(ks, [ms[k] for k in ks], "o-", color="C0", label="truncate=k")
    ax.axhline(ms[None], color="C0", ls=":", label="full BPTT")
    ax.set_xscale("log")
    ax.set_xlabel("truncate = k (steps the gradient flows back)")
    ax.set_ylabel("vjp + backward, median ms", color="C0")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot(ks, [cos[k] for k in ks], "s-", color="C3", label="cosine with full BPTT")
    ax2.set_ylabel("cosine similarity of the weight gradient", color="C3")
    ax2.set_ylim(min(0.0, min(cos.values())) - 0.02, 1.02)
    ax.grid(True, alpha=0.3)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="lower right")
    ax.set_title(f"Truncated BPTT ({title})", fontsize=10)
    _save(fig, path)
