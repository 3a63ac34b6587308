"""Put the repository root on sys.path, so `import tests.support`, `ir` and `rnncomp` work under a plain `pytest`."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Every pass's output is verified in the tests; a pass that breaks the IR is named in the error.
import os  # noqa: E402

os.environ.setdefault("RNNCOMP_VERIFY", "1")
