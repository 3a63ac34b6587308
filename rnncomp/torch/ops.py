"""The forward and backward as `torch.library` custom ops, with autograd and fake (meta) rules.

    rnncomp::run(call, arrays, lengths) -> results               prog(...), nothing kept
    rnncomp::run_train(call, arrays, lengths) -> results + [token]  prog.vjp(...): residuals parked
    rnncomp::backward(call, token, arrays, lengths, cotangents, wrt) -> grads   one grad per array

The backward's result is the vjp at `arrays`; the token only finds the forward's parked residuals
(a token that does not lead to them, e.g. a clone, makes it run the forward again). `wrt` names
the arrays autograd wants gradients of (`ctx.needs_input_grad`; "" all): only those are computed
(prog.vjp's `wrt`), the others come back as zeros, which autograd drops.

`call` is "<program key>:<name>,<name>,...[@seed]" naming `arrays` (seqs, params, the inits given) and,
in training mode, the seed of the dropout / zoneout masks (the backward's forward rerun draws the same);
results are the program's outputs then its final states (Signature.results order). The fake rules
work out every shape from the inputs' shapes, so `torch.compile` traces a model with no graph break.
"""

from __future__ import annotations

import torch

from .convert import cotangent, to_array, to_tensors
from .registry import entry, park, take
from .streams import ordered

Tensor = torch.Tensor


def _split(call: str) -> tuple:
    key, _, names = call.partition(":")
    return entry(key), names.partition("@")[0].split(",") if names.partition("@")[0] else []


def _seed(call: str) -> dict:
    """prog's `seed=` keyword from the call's "@seed" (none: no masks drawn)."""
    _, at, seed = call.partition("@")
    return {"seed": int(seed)} if at else {}


def _kwargs(names: list[str], arrays: list[Tensor], lengths: Tensor | None) -> tuple[dict, object]:
    kw = {n: to_array(a) for n, a in zip(names, arrays)}
    lens = None if lengths is None else lengths.detach().numpy()
    return kw, lens


def _device(arrays: list[Tensor]) -> torch.device:
    return arrays[0].device if arrays else torch.device("cpu")


@torch.library.custom_op("rnncomp::run", mutates_args=())
def run(call: str, arrays: list[Tensor], lengths: Tensor | None) -> list[Tensor]:
    """The whole sequence, inference only: outputs stacked over time, then the final states."""
    e, names = _split(call)
    kw, lens = _kwargs(names, arrays, lengths)
    with ordered(_device(arrays)):
        out = e.prog(lengths=lens, **kw, **_seed(call))
    return to_tensors([out[k] for k in e.sig.results], list(kw.values()), _device(arrays))


@torch.library.custom_op("rnncomp::run_train", mutates_args=())
def run_train(call: str, arrays: list[Tensor], lengths: Tensor | None) -> list[Tensor]:
    """As `run`, keeping what the backward needs (parked under the token, the last result)."""
    e, names = _split(call)
    kw, lens = _kwargs(names, arrays, lengths)
    with ordered(_device(arrays)):
        out, backward = e.prog.vjp(lengths=lens, **kw, **_seed(call))
    results = to_tensors([out[k] for k in e.sig.results], list(kw.values()), _device(arrays))
    return results + [park(backward, arrays)]


@torch.library.custom_op("rnncomp::backward", mutates_args=())
def backward(
    call: str, token: Tensor, arrays: list[Tensor], lengths: Tensor | None, cotangents: list[Tensor | None], wrt: str
) -> list[Tensor]:
    """Gradients of the arrays of the forward `call` named in `wrt` (comma-separated, "" every one) from
    the results' cotangents (None: zero); zeros for the others."""
    e, names = _split(call)
    cot = {k: to_array(g) for k, g in zip(e.sig.results, cotangents) if g is not None}
    with ordered(_device(arrays)):
        vjp = take(token, arrays)
        if vjp is None:
            kw, lens = _kwargs(names, arrays, lengths)
            vjp = e.prog.vjp(lengths=lens, **kw, **_seed(call))[1]
        wanted = wrt.split(",") if wrt else names
        grads = vjp(cot, wrt=None if len(wanted) == len(names) else wanted)
    inputs = list(cot.values()) + [to_array(a) for a in arrays]
    made = iter(to_tensors([grads[n] for n in names if n in wanted], inputs, _device(arrays)))
    return [next(made) if n in wanted else torch.zeros_like(a) for n, a in zip(names, arrays)]


def _fake_results(call: str, arrays: list[Tensor]) -> list[Tensor]:
    e, names = _split(call)
    shapes = e.sig.out_shapes({n: tuple(a.shape) for n, a in zip(names, arrays)})
    like = arrays[0] if arrays else torch.empty(0, dtype=torch.float32)
    return [like.new_empty(s) for s in shapes]


@run.register_fake
def _(call, arrays, lengths):
    return _fake_results(call, arrays)


@run_train.register_fake
def _(call, arrays, lengths):
    return _fake_results(call, arrays) + [torch.empty(1, dtype=torch.int64)]


@backward.register_fake
def _(call, token, arrays, lengths, cotangents, wrt):
    return [torch.empty_like(a) for a in arrays]


def _setup(ctx, inputs, output):
    call, arrays, lengths = inputs
    ctx.call, ctx.lengths = call, lengths
    ctx.save_for_backward(output[-1], *arrays)  # the arrays: for their shapes, and autograd's version check
    ctx.set_materialize_grads(False)


def _backward(ctx, grads):
    token, *arrays = ctx.saved_tensors
    cot = [None if g is None else cotangent(g) for g in grads[:-1]]
    need = list(ctx.needs_input_grad[1])
    names = _split(ctx.call)[1]
    wrt = "" if all(need) else ",".join(n for n, w in zip(names, need) if w)
    made = backward(ctx.call, token, arrays, ctx.lengths, cot, wrt)
    return None, [g if w else None for g, w in zip(made, need)], None


run_train.register_autograd(_backward, setup_context=_setup)
