"""The eager path: an `autograd.Function` calling the program directly, without the custom ops.

Outside `torch.compile` a call needs none of what the custom ops give (a schema, fake rules,
functional outputs), and their dispatch, argument checks and token bookkeeping cost more than the
whole program at small sizes (see benchmarks/torch_bridge.py). Here the forward calls `prog._vjp`
on NumPy views of the tensors without copying them (the backward reads them as they are: they
are saved for backward, so autograd's version counters refuse a backward after one was modified
in place), keeps the closure on the autograd node and drops it once the backward has used it (a
second backward, `retain_graph=True`, runs the forward again from the saved tensors).
"""

from __future__ import annotations

import torch

from .convert import cotangent, host_cotangent, to_array, to_tensors
from .registry import Entry
from .streams import ordered


def _seed(seed: int | None) -> dict:
    """prog's `seed=` keyword, only when masks are drawn (a call without one passes nothing)."""
    return {} if seed is None else {"seed": seed}


def run(
    e: Entry, names: list[str], tensors: list[torch.Tensor], lengths: torch.Tensor | None, seed: int | None = None
) -> list[torch.Tensor]:
    """The whole sequence, inference only: the program's results, shared with NumPy (no autograd)."""
    kw = {n: to_array(t) for n, t in zip(names, tensors)}
    device = tensors[0].device if tensors else torch.device("cpu")
    with ordered(device):
        out = e.prog(lengths=None if lengths is None else lengths.numpy(), **kw, **_seed(seed))
    return to_tensors([out[k] for k in e.sig.results], list(kw.values()), device)


def run_train(
    e: Entry, names: list[str], tensors: list[torch.Tensor], lengths: torch.Tensor | None, seed: int | None = None
) -> tuple[torch.Tensor, ...]:
    """The results, differentiable with respect to every tensor (seqs, params, inits)."""
    return _Train.apply(e, names, lengths, seed, *tensors)


def _vjp(e: Entry, names: list[str], tensors, lengths, device: torch.device, seed: int | None = None):
    kw = {n: to_array(t) for n, t in zip(names, tensors)}
    lens = None if lengths is None else lengths.numpy()
    if device.type == "cpu":  # no stream to order (and no context manager: a call's glue is its cost at small sizes)
        out, backward = e.prog._vjp(lens, kw, copy=False, **_seed(seed))
    else:
        with ordered(device):
            out, backward = e.prog._vjp(lens, kw, copy=False, **_seed(seed))
    return kw, out, backward


class _Train(torch.autograd.Function):
    """prog.vjp as an autograd node: the forward runs it, the backward calls its closure."""

    @staticmethod
    def forward(ctx, e: Entry, names: list[str], lengths, seed, *tensors):
        device = tensors[0].device if tensors else torch.device("cpu")
        kw, out, backward = _vjp(e, names, tensors, lengths, device, seed)
        ctx.e, ctx.names, ctx.device, ctx.backward, ctx.has_lengths = e, names, device, backward, lengths is not None
        ctx.seed = seed
        ctx.arrays = list(kw.values())
        ctx.save_for_backward(*tensors, *([] if lengths is None else [lengths]))
        ctx.set_materialize_grads(False)
        return tuple(to_tensors([out[k] for k in e.sig.results], ctx.arrays, device))

    @staticmethod
    def backward(ctx, *grads):
        saved = ctx.saved_tensors  # raises if one was modified in place since the forward
        tensors, lengths = (saved[:-1], saved[-1]) if ctx.has_lengths else (saved, None)
        backward = getattr(ctx, "backward", None)
        if backward is None:
            backward = _vjp(ctx.e, ctx.names, tensors, lengths, ctx.device, ctx.seed)[2]  # the same masks
        else:
            del ctx.backward  # the residuals go with the first backward
        need = ctx.needs_input_grad[4:]  # only these are computed (prog.vjp's wrt)
        wanted = [n for n, w in zip(ctx.names, need) if w]
        wrt = None if len(wanted) == len(ctx.names) else wanted
        host = ctx.device.type == "cpu"
        cot = {
            k: host_cotangent(g) if host else to_array(cotangent(g))
            for k, g in zip(ctx.e.sig.results, grads)
            if g is not None
        }
        kw = {} if wrt is None else {"wrt": wrt}
        if host:
            g = backward(cot, **kw)
        else:
            with ordered(ctx.device):
                g = backward(cot, **kw)
        made = iter(to_tensors([g[n] for n in wanted], list(cot.values()) + ctx.arrays, ctx.device))
        return (None, None, None, None, *(next(made) if w else None for w in need))
