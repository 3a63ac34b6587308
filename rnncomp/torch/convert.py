"""Tensors to the arrays a program takes, and its results back to tensors, without copies.

Inside the custom ops every tensor is already contiguous and of the program's dtype (the module
converts others once, in PyTorch, before the op: see `Recurrent`), so a CPU tensor becomes a NumPy
array over the same memory (`Tensor.numpy()`) and a result array becomes a tensor over its memory
(`torch.from_numpy`). A CUDA tensor goes to the numba-cuda backend as it is (it has
`__cuda_array_interface__`) and a device result comes back through the same interface.
"""

from __future__ import annotations

import numpy as np
import torch


def to_array(t: torch.Tensor):
    """The array a program reads for `t`: a NumPy view of a CPU tensor, the tensor itself on CUDA."""
    t = t.detach()
    return t.numpy() if t.device.type == "cpu" else t


def to_tensors(results: list, inputs: list, device: torch.device) -> list[torch.Tensor]:
    """Tensors over the memory of `results` (program outputs or gradients).

    A custom op's outputs may not alias its inputs or each other, so a result that is one of the
    `inputs` arrays (or a view of one), or a view of an earlier result, is copied (this happens only
    in corner cases, e.g. a final state that is its init when no step runs); everything else is shared.
    """
    taken = set()
    for a in inputs:
        taken.add(id(a))
        if getattr(a, "base", None) is not None:
            taken.add(id(a.base))
    out = []
    for r in results:
        base = getattr(r, "base", None)
        if id(r) in taken or (base is not None and id(base) in taken):
            r = r.copy() if isinstance(r, np.ndarray) else _tensor(r, device).clone()
            base = None
        taken.add(id(r))
        if base is not None:
            taken.add(id(base))
        out.append(_tensor(r, device))
    return out


def _tensor(r, device: torch.device) -> torch.Tensor:
    if isinstance(r, np.ndarray):
        if not r.flags.writeable:  # torch.from_numpy warns on read-only memory; such a result is rare
            r = r.copy()
        return torch.from_numpy(r)
    if isinstance(r, torch.Tensor):
        return r
    return torch.as_tensor(r, device=device)  # a numba device array, through __cuda_array_interface__


_BROADCAST: dict = {}  # (shape, dtype, device, value) -> one contiguous tensor filled with value


def cotangent(g: torch.Tensor) -> torch.Tensor:
    """A contiguous cotangent. The cotangent of `out.sum()` is a scalar broadcast over the output (every
    stride 0): its filled copy is kept for the next call (the backward only reads cotangents), not made
    anew each time (a fresh buffer of the output's size each step: page faults, an output-sized fill)."""
    eager_cpu = type(g) is torch.Tensor and g.device.type == "cpu" and not torch.compiler.is_compiling()
    if not eager_cpu or g.is_contiguous() or g.dim() == 0 or any(g.stride()):  # traced, CUDA, or not a broadcast
        return g.contiguous()
    key = (tuple(g.shape), g.dtype, g.device, g.reshape(-1)[0].item())
    full = _BROADCAST.get(key)
    if full is None:
        _BROADCAST.clear()
        full = _BROADCAST[key] = g.contiguous()
    return full


_HOST_BROADCAST: dict = {}  # (shape, dtype, value) -> one C-contiguous array filled with value


def host_cotangent(g: torch.Tensor) -> np.ndarray:
    """A CPU cotangent as a C-contiguous array: a view when it is one; `out.sum()`'s broadcast scalar
    (every stride 0) as a filled array kept for the next call, as `cotangent` does, in NumPy (fewer
    PyTorch dispatches: at small sizes those cost more than the fill)."""
    a = g.detach().numpy()
    if a.flags.c_contiguous:
        return a
    if a.size and not any(a.strides):
        key = (a.shape, a.dtype.str, a.item(0))
        full = _HOST_BROADCAST.get(key)
        if full is None:
            _HOST_BROADCAST.clear()
            full = _HOST_BROADCAST[key] = np.full(a.shape, a.item(0), a.dtype)
        return full
    return np.ascontiguousarray(a)
