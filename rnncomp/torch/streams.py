"""CUDA stream order between PyTorch's work and the program's kernels (nothing to do on the CPU)."""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def ordered(device: torch.device):
    """On CUDA, order the program's kernels (launched on the legacy default stream by numba-cuda)
    after the work queued on PyTorch's current stream, and that stream's later work after them."""
    if device.type != "cuda":
        yield
        return
    current, default = torch.cuda.current_stream(device), torch.cuda.default_stream(device)  # pragma: no cover
    if current != default:  # pragma: no cover  (no GPU in the test environment)
        default.wait_stream(current)
    yield  # pragma: no cover
    if current != default:  # pragma: no cover
        current.wait_stream(default)
