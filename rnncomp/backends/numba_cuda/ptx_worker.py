"""Compiles the kernels of one generated module to PTX for one compute capability, in a process of
its own (ptx.py starts it): Numba's CUDA simulator, when the caller's process uses it, replaces
numba.cuda for the whole process, and this needs the real compiler (NVVM), which runs without a GPU.

Run as a script; it imports only Numba. Reads a JSON job on stdin: {"cc": [9, 0], "modules":
[{"module": path, "kernels": [{"name": "k0_gemm", "args": [["array", "float32", 2], ["int64"]]},
...]}, ...]}; writes to stdout one JSON list per module, holding per kernel {"name", "ptx"} or
{"name", "error", "type", "lines"} (the lines of the module the failure points at, innermost last).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import traceback
from contextlib import contextmanager
from types import SimpleNamespace


@contextmanager
def compute_capability_of(cc: tuple[int, int]):
    """The one stand-in the compile needs. numba-cuda compiles a `@cuda.jit(device=True)` function
    that a kernel calls (and `cuda.cg.this_grid()`'s helpers) for "the current device": its
    dispatcher's compile_device asks `get_current_device().compute_capability`, even inside
    `compile_ptx(cc=...)`, and with no GPU there is no current device. This answers that one
    question, with the target's compute capability, while the block runs; nothing else is faked."""
    from numba.cuda import dispatcher

    original = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=cc)
    try:
        yield
    finally:
        dispatcher.get_current_device = original


def numba_type(spec: list):
    from numba import types

    if spec[0] == "array":
        return types.Array(getattr(types, spec[1]), int(spec[2]), "C")
    return getattr(types, spec[0])


def lines_of(e: BaseException, path: str) -> list[int]:
    """The module's lines the failure points at, outermost first: the traceback's frames in the module,
    the source locations (Numba's `ir.Loc`) that the compiler's frames were working on (a typing
    constraint's `self.loc`, a lowered statement's `inst.loc`), the error's own `loc`, and the
    `<file>", line N` its message names."""
    found = [f.lineno or 0 for f in traceback.extract_tb(e.__traceback__) if f.filename == path]
    for frame, _ in traceback.walk_tb(e.__traceback__):
        local = frame.f_locals
        for loc in (local.get("loc"), getattr(local.get("self"), "loc", None), getattr(local.get("inst"), "loc", None)):
            if getattr(loc, "filename", None) == path and getattr(loc, "line", None):
                found.append(int(loc.line))
    loc = getattr(e, "loc", None)
    if getattr(loc, "filename", None) == path and getattr(loc, "line", None):
        found.append(int(loc.line))
    name = re.escape(os.path.basename(path))
    found += [int(m.group(1)) for m in re.finditer(name + r'", line (\d+)', str(e))]
    return found


def main() -> None:
    job = json.load(sys.stdin)
    os.environ["NUMBA_ENABLE_CUDASIM"] = "0"
    from numba import cuda

    cc = tuple(job["cc"])
    out = []
    with compute_capability_of(cc):
        for m, entry in enumerate(job["modules"]):
            path = entry["module"]
            spec = importlib.util.spec_from_file_location(f"rnncomp_cuda_check{m}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            done = []
            for k in entry["kernels"]:
                sig = tuple(numba_type(a) for a in k["args"])
                try:
                    ptx, _ = cuda.compile_ptx(getattr(module, k["name"]).py_func, sig, cc=cc)
                    done.append({"name": k["name"], "ptx": ptx})
                except Exception as e:  # noqa: BLE001  (a typing or lowering error: reported per kernel)
                    lines = lines_of(e, path)
                    done.append({"name": k["name"], "error": str(e), "type": type(e).__name__, "lines": lines})
            out.append(done)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
