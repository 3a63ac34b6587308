"""rct.Recurrent inside DistributedDataParallel: 2 processes, gloo on loopback, through the example script
(which checks that the all-reduced gradients equal one process's on the whole batch, <= 1e-6 in float32)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ddp_two_processes_equal_one_process_on_the_whole_batch():
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(ROOT / "examples" / "ddp_train.py"),
        "--steps",
        "3",
        "--backend",
        "numpy",
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )  # its own process group: the workers go with it
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"the DDP run took over 240 s:\n{out}") from None
    finally:
        if proc.poll() is None:  # pragma: no cover
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out
    line = next(s for s in out.splitlines() if "all-reduced gradients" in s)
    assert float(line.rsplit("=", 1)[1]) <= 1e-6, line
    assert "step   2" in out, out
