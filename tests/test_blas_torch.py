"""rnncomp's MKL and torch's in one process: never a segfault (blas.py's docstring says why it was one).

torch binds its bundled MKL's symbols to an MKL already opened RTLD_GLOBAL; run in subprocesses, since
the BLAS is chosen once per process and a crash must not take pytest down.
"""

import glob
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import sys
    if TORCH_FIRST:
        import torch
    import rnncomp as rc
    from rnncomp.backends.numba_cpu import blas
    from benchmarks.cells import lstm_cell
    from benchmarks.cells import lstm_arrays
    prog = rc.compile(lstm_cell(8, 16), dtype="float32", backend="numba-cpu")
    prog.value_and_grad("y", **lstm_arrays(8, 16, 4, 5))  # B=4 rows: the GEMMs go to the BLAS
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence
    lstm = torch.nn.LSTM(8, 16)
    x = torch.randn(5, 4, 8, requires_grad=True)
    out, _ = lstm(pack_padded_sequence(x, torch.tensor([5, 3, 4, 1]), enforce_sorted=False))
    out.data.sum().backward()
    print(blas.BLAS.split(":")[0])
    """
)


def _run(torch_first: bool, choice: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RNNCOMP_BLAS": choice}
    code = SCRIPT.replace("TORCH_FIRST", str(torch_first))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_torch_imported_after_a_kernel_runs_on_openblas_and_does_not_crash():
    r = _run(torch_first=False)  # before the fix: SIGSEGV in nn.LSTM's forward (rc -11)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.split()[-1] in ("openblas", "numba"), r.stdout


def test_torch_imported_first_keeps_mkl():
    r = _run(torch_first=True)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    mkl = glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*"))  # where blas.py looks first
    assert r.stdout.split()[-1] == ("mkl-gnu-openmp" if mkl else "openblas"), r.stdout


def test_explicit_mkl_then_torch_after_a_kernel_is_a_clear_error():
    r = _run(torch_first=False, choice="mkl")
    if "mkl could not be loaded" in r.stderr:
        pytest.skip("the mkl package is not installed here")
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "BlasError: import torch after rnncomp ran a GEMM on MKL (RNNCOMP_BLAS=mkl" in r.stderr, r.stderr[-2000:]
    assert "import torch before rnncomp's first call, or set RNNCOMP_BLAS=openblas" in r.stderr
