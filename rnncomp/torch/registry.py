"""The custom ops' handles: programs by key, and each training forward's backward by a token.

A custom op takes only tensors, numbers and strings, so a program is named by a string key
(registered by the module that owns it: held weakly, gone with the module), and the backward
closure that `prog.vjp` returns (holding the forward's residuals) is parked under a token, a
one-element tensor that the forward op returns. The backward op is a function of the forward's
inputs and the cotangents alone: the parked closure only spares it recomputing the forward. The
closure lives as long as the token: autograd keeps it for the backward and frees it with the graph.
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass

import torch

from ir import ArgumentError

from .signature import Signature


@dataclass(eq=False)
class Entry:
    """A compiled program and what the ops need to call it."""

    prog: object  # rnncomp CompiledProgram
    sig: Signature


_PROGRAMS: weakref.WeakValueDictionary[str, Entry] = weakref.WeakValueDictionary()
_BACKWARDS: dict[int, tuple] = {}  # token address -> (closure, identity of its inputs)
_keys = itertools.count()


def register(prog, sig: Signature) -> tuple[str, Entry]:
    """Register a program; returns its key and the entry (keep the entry alive: the key dies with it)."""
    entry = Entry(prog, sig)
    key = f"p{next(_keys)}"
    _PROGRAMS[key] = entry
    return key, entry


def entry(key: str) -> Entry:
    try:
        return _PROGRAMS[key]
    except KeyError:
        raise ArgumentError(f"rnncomp.torch: no program registered under {key!r} (its module was freed)") from None


def _identity(inputs: list[torch.Tensor]) -> tuple:
    return tuple((t.data_ptr(), t._version) for t in inputs)


def park(backward, inputs: list[torch.Tensor]) -> torch.Tensor:
    """A token tensor for `backward` (the forward's closure over `inputs`), dropped with the token.

    The token's value is always 0: an op's outputs must be a function of its inputs (opcheck and
    AOTAutograd compare them). The closure is found again by the token's address, unique while it lives.
    """
    token = torch.zeros(1, dtype=torch.int64)
    n = token.data_ptr()
    _BACKWARDS[n] = (backward, _identity(inputs))
    weakref.finalize(token, _drop, n, backward)
    return token


def _drop(n: int, backward) -> None:
    held = _BACKWARDS.get(n)
    if held is not None and held[0] is backward:  # the address may already serve a newer token
        del _BACKWARDS[n]


def take(token: torch.Tensor, inputs: list[torch.Tensor]):
    """The closure parked under `token` if it was made from these very `inputs` (same memory, not
    modified since), else None: the caller recomputes the forward (e.g. for a cloned token)."""
    held = _BACKWARDS.get(token.data_ptr())
    if held is None or held[1] != _identity(inputs):
        return None
    return held[0]


def parked() -> int:
    """How many forwards' residuals are held now (for tests: they must not leak)."""
    return len(_BACKWARDS)
