"""Every kernel of a program compiled for a real GPU, without one: NVVM makes PTX for the target
(ptx_worker.py, in a process of its own), ptxas assembles it and reports what each kernel uses
(registers, spills, stack); static shared memory is read from the PTX, where a relocatable compile
declares it at module scope (`ptxas -c`: the grid sync's intrinsics resolve at link time).

A kernel NVVM cannot type or lower, or ptxas cannot assemble, is a CudaCompileError naming the IR
node whose code failed. Results are kept per kernel (in memory and in the cache folder), keyed by
the module's text, the kernel, the target and the compiler's versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ir import Program
from ir.dtypes import DType

from ..common.cache import cache_dir
from ..common.values import Generated
from ..common.writer import owner_at
from .codegen import generate_with_context
from .context import Context, Kernel
from .errors import CudaBackendError, CudaCompileError
from .targets import Target
from .toolchain import check, versions

WORKER = Path(__file__).with_name("ptx_worker.py")
SCALAR_NAME = re.compile(r"(d_\w+|n\d+|start\d+|b\d+|it\d+)")  # dims, trip counts, steps: Python ints
_SHARED = re.compile(r"^\s*(?:\.visible\s+|\.global\s+)?\.shared\s+(?:\.align\s+\d+\s+)?\.\w+\s+\w+\[(\d+)\]", re.M)
_COMMENT, _CONSTANT = re.compile(r"\s+#.*$"), re.compile(r"\bc\d+\b")
_memo: dict[str, dict] = {}


@dataclass(frozen=True)
class Assembled:
    """What ptxas reports for one kernel on one target (and the static shared memory its PTX declares)."""

    registers: int
    spill_stores: int
    spill_loads: int
    stack: int
    static_shared: int


@dataclass(frozen=True)
class Compiled:
    """A kernel of a generated module, compiled for a target: what it is and what it uses."""

    kernel: Kernel
    target: Target
    use: Assembled


@dataclass(frozen=True)
class Job:
    """A program to compile: the final Program of one variant, its dtype and the persistent mode."""

    prog: Program
    dtype: DType
    mode: bool | None = None


def arg_types(ctx: Context, k: Kernel) -> list[list]:
    """The Numba types of a kernel's parameters, as the runner passes them: C-contiguous device
    arrays of the buffers' dtypes and ranks, and int64 for dims, trip counts and steps."""
    from ..common.names import plain

    out: list[list] = []
    for p in map(plain, k.params):
        if p in ctx.arg_types:
            dtype, ndim = ctx.arg_types[p]
            out.append(["array", dtype, ndim])
        elif SCALAR_NAME.fullmatch(p):
            out.append(["int64"])
        else:
            raise CudaBackendError(f"numba-cuda internal error: kernel {k.name} takes {p!r}, whose type is unknown")
    return out


def compile_programs(jobs: list[Job], t: Target) -> list[list[Compiled]]:
    """Every kernel of every job's module for target `t`, in one compiler process."""
    ptxas = check()
    modules: list[tuple[Job, Generated, Context, list[tuple[Kernel, list, str]]]] = []
    todo: list[tuple[int, Kernel, list, str]] = []
    queued: set[str] = set()
    for j, job in enumerate(jobs):
        gen, ctx = generate_with_context(job.prog, job.dtype, t.device_config(), job.mode)
        entries = []
        for k in ctx.kernels:
            args = arg_types(ctx, k)
            key = _key(ctx, k, args, t)
            entries.append((k, args, key))
            if key not in _memo and key not in queued and not _load(key):
                todo.append((j, k, args, key))
                queued.add(key)
        modules.append((job, gen, ctx, entries))
    if todo:
        _compile(todo, modules, t, ptxas)
    return [[Compiled(k, t, Assembled(**_memo[key])) for k, _, key in entries] for *_, entries in modules]


def compile_program(prog: Program, dtype: DType, t: Target, mode: bool | None = None) -> list[Compiled]:
    """Every kernel of one program's module for target `t`."""
    return compile_programs([Job(prog, dtype, mode)], t)[0]


def _key(ctx: Context, k: Kernel, args: list, t: Target) -> str:
    """What the kernel's compiled code depends on: its code (less comments), the module constants it
    reads, its argument types, the target and the compiler: the same kernel in another program (or
    variant) is compiled once."""
    code = [f"{depth}:{_COMMENT.sub('', text)}" for depth, text, _ in k.body.lines if not text.lstrip().startswith("#")]
    defs = {name: [text, str(dt)] for (text, dt), name in ctx.constants.items()}
    used = sorted({m for line in code for m in _CONSTANT.findall(line) if m in defs})
    text = json.dumps([code, k.params, [defs[u] for u in used], args, t.name, list(t.cc), versions()])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _store() -> Path:
    return cache_dir() / "cuda-check"


def _load(key: str) -> bool:
    try:
        _memo[key] = json.loads((_store() / f"{key}.json").read_text())
        return True
    except (OSError, ValueError):
        return False


def _save(key: str, use: dict) -> None:
    _memo[key] = use
    try:
        folder = _store()
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(use))
        tmp.replace(folder / f"{key}.json")
    except OSError:  # a read-only or full cache folder: kept in memory only
        pass


def _compile(todo: list, modules: list, t: Target, ptxas: str) -> None:
    """Compile the kernels of `todo` (module index, kernel, argument types, key), in up to
    `workers()` processes at once (each takes whole modules), then assemble each."""
    with tempfile.TemporaryDirectory(prefix="rnncomp-ptx-") as tmp:
        folder = Path(tmp)
        order = sorted({j for j, *_ in todo})
        for j in order:
            (folder / f"module{j}.py").write_text(modules[j][1].source)
        n = max(1, min(workers(), len(order)))
        chunks = [order[i::n] for i in range(n)]
        jobs = []
        for chunk in chunks:
            entries = []
            for j in chunk:
                kernels = [{"name": k.name, "args": args} for jj, k, args, _ in todo if jj == j]
                entries.append({"module": str(folder / f"module{j}.py"), "kernels": kernels})
            jobs.append({"cc": list(t.cc), "modules": entries})
        with ThreadPoolExecutor(n) as pool:
            results = list(pool.map(_run_worker, jobs))
        found = {(j, r["name"]): r for chunk, res in zip(chunks, results) for j, rs in zip(chunk, res) for r in rs}
        for j, k, _, key in todo:
            job, gen = modules[j][0], modules[j][1]
            res = found[(j, k.name)]
            if "error" in res:
                raise _error(job.prog, gen, k, t, res)
            ptx = folder / f"{k.name}_{j}.ptx"
            ptx.write_text(res["ptx"])
            _save(key, _assemble(ptxas, ptx, res["ptx"], job.prog, k, t))


def workers() -> int:
    """Compiler processes at once: `$RNNCOMP_PTX_WORKERS`, else 2 (or 1 on a one-core machine)."""
    try:
        return max(1, int(os.environ.get("RNNCOMP_PTX_WORKERS", "")))
    except ValueError:
        return min(2, os.cpu_count() or 1)


def _run_worker(job: dict) -> list[list[dict]]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run(
        [sys.executable, str(WORKER)], input=json.dumps(job), env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise CudaBackendError(f"numba-cuda: the PTX compiler process failed (exit {done.returncode}):\n{tail}")
    return json.loads(done.stdout)


def _what(gen: Generated, k: Kernel, lines: list[int]) -> str:
    """The IR node whose code failed (from the lines the failure names, innermost first), else the kernel's own."""
    node, ln = owner_at(gen.owners, lines[::-1])
    if node:
        return f"the code generated for node {node} (line {ln} of the generated source)"
    return f"the code generated for node {k.owner}" if k.owner else f"its code ({k.doc})"


def _error(prog: Program, gen: Generated, k: Kernel, t: Target, res: dict) -> CudaCompileError:
    short = "\n".join(res["error"].strip().splitlines()[:12])
    return CudaCompileError(
        f"numba-cuda: kernel {k.name} of program {prog.name!r} does not compile for {t.name} ({t.gpu}): "
        f"{_what(gen, k, res['lines'])} fails to type or lower: {res['type']}: {short}"
    )


def _assemble(ptxas: str, path: Path, ptx: str, prog: Program, k: Kernel, t: Target) -> dict:
    """ptxas -v on one kernel's PTX: its registers, spills and stack; its shared memory from the PTX."""
    done = subprocess.run(
        [ptxas, "-v", "-c", f"-arch={t.name}", str(path), "-o", str(path.with_suffix(".o"))],
        capture_output=True,
        text=True,
        check=False,
    )
    text = done.stderr + done.stdout
    regs = re.search(r"Used (\d+) registers", text)
    frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", text)
    if done.returncode != 0 or regs is None or frame is None:
        what = f"node {k.owner}" if k.owner else k.doc
        short = "\n".join(line for line in text.strip().splitlines() if "error" in line or "fatal" in line)[:2000]
        raise CudaCompileError(
            f"numba-cuda: kernel {k.name} of program {prog.name!r} ({what}) does not assemble for {t.name} "
            f"({t.gpu}): ptxas exited {done.returncode}: {short or text.strip()[:2000]}"
        )
    return {
        "registers": int(regs.group(1)),
        "spill_stores": int(frame.group(2)),
        "spill_loads": int(frame.group(3)),
        "stack": int(frame.group(1)),
        "static_shared": sum(int(n) for n in _SHARED.findall(ptx)),
    }


__all__ = ["Assembled", "Compiled", "Job", "arg_types", "compile_program", "compile_programs"]
