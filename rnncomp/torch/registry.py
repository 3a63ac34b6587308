"""The custom ops' handles: programs by key, and each training forward's backward by a token.

A custom op takes only tensors, numbers and strings, so a program is named by a string key
(registered by the module that owns it: held weakly, gone with the module), and the backward
closure that `prog.vjp` returns (holding the forward's residuals) is parked under an integer
token that the forward op returns as a one-element tensor. The closure lives as long as that
token tensor: autograd keeps it for the backward and frees it with the graph.
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
_BACKWARDS: dict[int, object] = {}
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


def park(backward) -> torch.Tensor:
    """A token tensor for `backward`; the closure is dropped when the token is freed."""
    n = next(_keys)
    _BACKWARDS[n] = backward
    token = torch.tensor([n], dtype=torch.int64)
    weakref.finalize(token, _BACKWARDS.pop, n, None)
    return token


def take(token: torch.Tensor):
    n = int(token.reshape(-1)[0])
    try:
        return _BACKWARDS[n]
    except KeyError:
        raise ArgumentError(
            "rnncomp.torch: the forward pass's saved state for this backward is gone (was its graph freed?)"
        ) from None


def parked() -> int:
    """How many forwards' residuals are held now (for tests: they must not leak)."""
    return len(_BACKWARDS)
