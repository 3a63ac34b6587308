"""Put the repository root on sys.path, so `import tests.support`, `ir` and `rnncomp` work under a plain `pytest`."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Every pass's output is verified in the tests; a pass that breaks the IR is named in the error.
import os  # noqa: E402

os.environ.setdefault("RNNCOMP_VERIFY", "1")

# The IR-level suites run on the numpy interpreter (no Numba compile per program); the numba-cpu and
# numba-cuda suites name their backend, and test_backend_default checks what users get by default.
os.environ.setdefault("RNNCOMP_BACKEND", "numpy")

# At least two Numba threads, so that a loop over blocks of batch rows runs more than one block
# (and a GEMM splits) even on a one-core machine: the parallel paths are always tested.
os.environ.setdefault("NUMBA_NUM_THREADS", str(max(2, os.cpu_count() or 1)))
# ... and a loop runs in blocks whatever its work (by default only a loop whose blocks each get
# launch.ROW_WORK multiply-adds does: tests/test_threads.py checks that rule).
os.environ.setdefault("RNNCOMP_ROW_WORK", "1")
os.environ.setdefault("RNNCOMP_SCAN_WORK", "1")  # small scans in chunks too (numba_cpu/chunking.py)

# torch.compile's on-disk cache (/tmp/torchinductor_<user>) may hold graphs traced against an older
# schema of rnncomp's custom ops: torch's cache key does not include a custom op's schema, so a graph
# from before an op gained an argument fails with "missing value for argument". The suite uses a cache
# of its own, fresh each run.
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    import tempfile  # noqa: E402

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="rnncomp-tests-inductor-")


def pytest_addoption(parser):
    """`--update-golden`: rewrite tests/golden from the generators instead of comparing (see test_golden.py)."""
    parser.addoption("--update-golden", action="store_true", help="rewrite the generated-source snapshots")
