"""`rct.Recurrent`: a compiled cell as an `nn.Module`, one `nn.Parameter` per cell param."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn

import rnncomp as rc
from ir import ArgumentError, Cell

from ..masks import seed_words
from . import eager, ops
from .init import default_init
from .programs import compiled
from .registry import register
from .signature import Signature

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_NAMES = {torch.float32: "float32", torch.float64: "float64"}


class Recurrent(nn.Module):
    """A cell run over whole sequences, trainable with autograd.

        layer = rct.Recurrent(cell, length="T", unroll="loop", dtype="float32", **rc_compile_options)
        out = layer(x, lengths=lengths, h=h0)   # seqs (then statics) positionally in declaration order,
                                               # or by name;
        out["y"], out["h"]                     # inits by name; results keyed as prog(...) keys them

    Each cell param is an `nn.Parameter` of the same name (`layer.W`), initialised by
    `rct.default_init` (PyTorch's U(-1/sqrt(H), 1/sqrt(H)), H the width of the state it feeds) unless
    `init` is given: a callable `init(name, tensor)` filling each param in place, or a dict name ->
    values (tensor, array, or such a callable) for some or all of them (the rest take the default).

    Inputs: CPU tensors that are contiguous and of the layer's dtype are shared with the program
    (no copy, either way); other floating-point tensors are converted once, in PyTorch (`.to(dtype)`,
    `.contiguous()`, so autograd carries their gradients back in their own dtype); anything else is
    an error naming the argument. `lengths` is an integer CPU tensor (or list, or array) of shape (B,):
    TensorFlow's dynamic_rnn rule, as `rc.compile`'s programs. `.double()` / `.float()` convert the
    params and compile the program for the other dtype on the next call; CUDA tensors (after
    `.cuda()`) run on the numba-cuda backend, in place. Gradients flow to params, seqs, statics and the inits
    given, through `prog.vjp`: in eager mode an autograd.Function calling the program directly,
    under `torch.compile` the custom ops rnncomp::run_train and rnncomp::backward.
    """

    def __init__(
        self,
        cell: Cell,
        length: int | str = "T",
        unroll: str | int = "loop",
        dtype: str = "float32",
        init: Callable | Mapping | None = None,
        **options,
    ):
        super().__init__()
        if not isinstance(cell, Cell):
            raise ArgumentError(
                "argument 'cell': expected an rnncomp Cell (from @rc.cell or rc.Graph.build()), "
                f"got {type(cell).__name__}"
            )
        if dtype not in _DTYPES:
            raise ArgumentError(f"argument 'dtype': expected 'float32' or 'float64', got {dtype!r}")
        known = [k for k in inspect.signature(rc.compile).parameters if k not in ("cell", "dtype")]
        for k in options:
            if k not in known:
                raise ArgumentError(
                    f"rct.Recurrent: unknown keyword argument {k!r}{_closest(k, known)}; it takes rc.compile's {known}"
                )
        self.cell = cell
        self.backend = options.pop("backend", None)
        self.options = {"length": length, "unroll": unroll, **options}
        self._programs: dict[tuple, tuple[str, object]] = {}
        self._program(_DTYPES[dtype], "cuda" if self.backend == "numba-cuda" else "cpu")  # bad options fail here
        self.sig = Signature(cell, length)
        self.register_buffer("_like", torch.empty(0, dtype=_DTYPES[dtype]), persistent=False)  # dtype, device
        for p in self.sig.params:
            if hasattr(self, p):
                raise ArgumentError(
                    f"cell {cell.name!r}: param name {p!r} is taken by an attribute of nn.Module; rename the param"
                )
            self.register_parameter(p, nn.Parameter(torch.empty(self.sig.shapes[p], dtype=_DTYPES[dtype])))
        self.reset_parameters(init)

    # -- parameters
    @torch.no_grad()
    def reset_parameters(self, init: Callable | Mapping | None = None) -> None:
        """Initialise every param: `init` as in the constructor, else the default rule (rct.default_init)."""
        params = {p: getattr(self, p) for p in self.sig.params}
        default_init(self.cell, params)
        if init is None:
            return
        if callable(init) and not isinstance(init, Mapping):
            for name, t in params.items():
                init(name, t)
            return
        if not isinstance(init, Mapping):
            raise ArgumentError(f"argument 'init': expected a callable or a dict name -> values, got {init!r}")
        for name, v in init.items():
            if name not in params:
                raise ArgumentError(f"argument 'init': unknown param {name!r}{_closest(name, list(params))}")
            if callable(v):
                v(name, params[name])
                continue
            v = torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v)
            if tuple(v.shape) != tuple(params[name].shape):
                raise ArgumentError(
                    f"argument 'init': param {name!r} has shape {tuple(params[name].shape)}, got {tuple(v.shape)}"
                )
            params[name].copy_(v)

    # -- programs
    def _backend_for(self, kind: str) -> str | None:
        if kind == "cpu":
            if self.backend == "numba-cuda":
                return None  # refused by the device check in forward, with the argument named
            return self.backend
        if kind == "cuda" and self.backend in (None, "numba-cuda"):
            return "numba-cuda"
        return None

    def _program(self, dtype: torch.dtype, kind: str) -> tuple[str, object]:
        """(key, entry) of the program for this dtype and device type, compiled on first use."""
        found = self._programs.get((dtype, kind))
        if found is None:
            prog = compiled(self.cell, dtype=_NAMES[dtype], backend=self._backend_for(kind), **self.options)
            found = register(prog, Signature(prog.cell, self.options["length"]))
            self._programs[(dtype, kind)] = found
        return found

    def program(self):
        """The rnncomp CompiledProgram this layer runs now (for its params' dtype and device)."""
        return self._program(self._like.dtype, self._like.device.type)[1].prog

    # -- running
    def forward(self, *seqs, lengths=None, seed=None, **kwargs) -> dict[str, torch.Tensor]:
        """Run the sequence: a dict of the outputs (T, B, ...) and final states, as prog(...) returns.

        `seed` (an int) draws the masks of the cell's `rc.dropout` / `rc.zoneout` in training mode
        (`layer.train()`, the default); in eval mode, or without a seed, dropout is the identity and
        zoneout takes its expectation, as `prog(...)` without a seed.
        """
        sig, like = self.sig, self._like
        if seed is not None:
            seed_words(seed)  # a bad seed is an error naming it, in either mode
            seed = int(seed) if self.training else None
        self._check_device(like)
        if len(seqs) > len(sig.inputs):
            what = "sequence input(s)" if not sig.statics else "input(s) (its seqs, then its statics)"
            raise ArgumentError(
                f"{self._where()}: takes {len(sig.inputs)} {what} positionally {sig.inputs}, got {len(seqs)}"
            )
        given = dict(zip(sig.inputs, seqs))
        statics = f", the statics {sig.statics}" if sig.statics else ""
        for name, value in kwargs.items():
            if name in given:
                raise ArgumentError(f"{self._where()}: argument {name!r} given both positionally and by name")
            if name in sig.params:
                raise ArgumentError(
                    f"{self._where()}: argument {name!r} is a parameter of this layer (layer.{name}), not an input; "
                    f"inputs are the seqs {sig.seqs}{statics} and the inits {sig.states}"
                )
            if name not in sig.inputs and name not in sig.states:
                known = sig.inputs + sig.states + ["lengths", "seed"]
                raise ArgumentError(
                    f"{self._where()}: unknown keyword argument {name!r}{_closest(name, known)}; "
                    f"it takes the seqs {sig.seqs}{statics}, the inits {sig.states}, lengths and seed"
                )
            given[name] = value
        for name in sig.inputs:
            if name not in given:
                what = "sequence input" if name in sig.seqs else "static (per-row) input"
                raise ArgumentError(f"{self._where()}: missing {what} {name!r} (a tensor of shape {sig.show(name)})")
        tensors = [self._input(n, given[n], like) for n in sig.inputs]
        tensors += [getattr(self, p) for p in sig.params]
        tensors += [self._input(n, given[n], like) for n in sig.states if n in given]
        names = sig.inputs + sig.params + [n for n in sig.states if n in given]
        key, e = self._program(like.dtype, like.device.type)
        lens = self._lengths(lengths)
        train = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        if not torch.compiler.is_compiling():  # eager: the program called directly (rnncomp.torch.eager)
            results = (eager.run_train if train else eager.run)(e, names, tensors, lens, seed)
        else:  # traced: the custom ops, which torch.compile sees through their fake rules
            call = key + ":" + ",".join(names) + ("" if seed is None else f"@{seed}")
            results = ops.run_train(call, tensors, lens)[:-1] if train else ops.run(call, tensors, lens)
        return dict(zip(sig.results, results))

    def _where(self) -> str:
        return f"rct.Recurrent({self.cell.name})"

    def _check_device(self, like: torch.Tensor) -> None:
        kind = like.device.type
        if kind == "cpu" and self.backend == "numba-cuda":
            raise ArgumentError(
                f"{self._where()}: backend 'numba-cuda' runs on CUDA tensors, but the layer's parameters are on "
                "the CPU; move the layer with .cuda() or pick a CPU backend"
            )
        if kind not in ("cpu", "cuda") or (kind == "cuda" and self.backend not in (None, "numba-cuda")):
            raise ArgumentError(
                f"{self._where()}: the layer's parameters are on {like.device}, which backend "
                f"{self.backend or 'numba-cpu'!r} cannot run on (CPU: numba-cpu or numpy; CUDA: numba-cuda)"
            )

    def _input(self, name: str, value, like: torch.Tensor) -> torch.Tensor:
        """A seq, static or init as the program takes it: on the layer's device, of its dtype, contiguous."""
        sig = self.sig
        role = sig.role(name)
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
        if not isinstance(value, torch.Tensor):
            raise ArgumentError(
                f"{self._where()}: argument {name!r} ({role}): expected a tensor, got {type(value).__name__}"
            )
        if value.device != like.device:
            raise ArgumentError(
                f"{self._where()}: argument {name!r} ({role}) is on {value.device}, "
                f"but the layer runs on {like.device}; "
                f"move it with .to({str(like.device)!r})"
            )
        if not value.is_floating_point():
            raise ArgumentError(
                f"{self._where()}: argument {name!r} ({role}): expected a floating-point tensor ({like.dtype} like "
                f"the layer), got dtype {value.dtype}"
            )
        want = len(sig.shapes[name])
        if value.dim() != want:
            raise ArgumentError(
                f"{self._where()}: argument {name!r} ({role}): expected rank {want} {sig.show(name)}, "
                f"got shape {tuple(value.shape)}"
            )
        if value.dtype != like.dtype:
            value = value.to(like.dtype)
        return value.contiguous()

    def _lengths(self, lengths) -> torch.Tensor | None:
        if lengths is None:
            return None
        if not isinstance(lengths, torch.Tensor):
            try:
                lengths = torch.as_tensor(np.asarray(lengths))
            except Exception:  # noqa: BLE001
                raise ArgumentError(
                    f"{self._where()}: argument 'lengths': expected an integer tensor of shape (B,), got {lengths!r}"
                ) from None
        if lengths.requires_grad:
            raise ArgumentError(
                f"{self._where()}: argument 'lengths' requires grad; lengths are integers that take no gradient: "
                "pass an integer tensor (e.g. lengths.detach().long())"
            )
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise ArgumentError(
                f"{self._where()}: argument 'lengths': expected an integer tensor of shape (B,), got dtype "
                f"{lengths.dtype} (cast with .long())"
            )
        if lengths.device.type != "cpu":
            raise ArgumentError(
                f"{self._where()}: argument 'lengths': expected a CPU tensor (rnncomp reads max(lengths) on the "
                f"host, as pack_padded_sequence does), got one on {lengths.device}"
            )
        if lengths.dim() != 1:
            raise ArgumentError(f"{self._where()}: argument 'lengths': expected shape (B,), got {tuple(lengths.shape)}")
        return lengths.to(torch.int64).contiguous()

    def __getstate__(self):
        """Pickled or deep-copied without its compiled programs (compiled again on first use)."""
        state = self.__dict__.copy()
        state["_programs"] = {}
        return state

    def extra_repr(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{self.cell.name}, {opts}, backend={self.backend!r}"


def _closest(name: str, options: list[str]) -> str:
    near = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""
