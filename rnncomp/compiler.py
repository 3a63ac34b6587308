"""`rc.compile`: run the pass pipeline on a cell and return a callable program.

A program is built lazily per variant: with or without `lengths`, and, for a full unroll, per
sequence length (a symbolic T specialises at call time; each specialisation is cached). With
`lengths`, no step past max(lengths) runs: the sequence is cut there and the outputs padded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import passes as _passes  # noqa: F401  (registers the passes)
from ir import ArgumentError, Cell, PassError, RnncompError, verify_cell
from ir.dtypes import DType, as_dtype
from ir.limits import MAX_INT, MAX_UNROLL_STEPS
from ir.shapes import is_identifier, substitute
from ir.specialize import all_symbols, size_symbols, specialize
from passes.grad import derive
from passes.pipeline import PassManager, Pipeline, as_pipeline
from passes.registry import PASSES, Analyses, IRKind
from passes.retype import retype_cell
from passes.unroll import LENGTHS_LO, has_masks

from .arguments import LENGTHS, Bound, bind, is_device_array, signature
from .autotune import AutoUnroll
from .backends.denormals import resolve as resolve_denormals
from .backends.registry import DEVICE_ARRAYS, compile_ahead, default_backend, get_backend
from .backends.threads import resolve as resolve_threads
from .checkpointing import Planner, parse_checkpoint
from .inspection import Inspection
from .masks import SEED, seed_words
from .sized import SizedProgram, check_dims
from .training import Trainer

DEFAULT_PASSES = "simplify,hoist,linear_scan,simplify"
HEADS = {"infer": "unroll", "train": "grad_forward", "segment": "grad_segment", "grad": "grad"}  # cell -> program


def compile(  # noqa: A001  (the public name is fixed: rc.compile)
    cell: Cell,
    length: int | str | None = "T",
    unroll: str | int | None = None,
    backend: str | None = None,
    dtype: str = "float32",
    reverse: bool = False,
    truncate: int | None = None,
    checkpoint: int | str | None = None,
    passes: str | list[str] | None = None,
    backend_options: dict[str, Any] | None = None,
    denormals: str | None = None,
    dims: dict[str, int] | None = None,
) -> CompiledProgram | SizedProgram:
    """Compile `cell` for sequences of `length` steps (an int, or a symbol like "T").

    `unroll` is "full", "loop" (the default), an int k >= 1 (k steps per loop iteration) or "auto" (the
    first call of each shape times the modes and keeps the fastest on disk: see `prog.choice()` and
    rnncomp.autotune; `RNNCOMP_UNROLL` forces a mode); `backend` is
    "numba-cpu" (the default; `RNNCOMP_BACKEND` changes it), "numba-cuda" or "numpy" (the reference
    interpreter of the IR, no compile step); `dtype` is "float32" or "float64"; `reverse` runs
    from the last step to the first. For training (`vjp`, `value_and_grad`): `truncate=k` lets the
    gradient flow through at most the last k steps; `checkpoint=k` or "sqrt" stores the state every
    k steps and recomputes each segment in the backward pass (same gradients, less memory);
    `checkpoint="64MiB"` (a size: B, KiB, MiB, GiB, KB, MB, GB) plans, for each call's T and batch,
    the schedule with the fewest recomputed steps whose checkpoints and live residuals stay within
    that many bytes (`prog.schedule(T=..., B=...)` shows it).
    `backend_options` go to the backend (numba-cuda: `persistent=True/False/None`; numba-cpu:
    `threads=N`, at most N of Numba's threads, `RNNCOMP_THREADS` by default: rnncomp.backends.threads).
    `denormals` is "flush" (subnormal floats, below 1.2e-38 in float32, taken as zero: x86 computes
    with them 20-100x slower, and a gradient decaying over a long sequence reaches them) or "keep"
    (IEEE); None is the backend's default: "flush" on numba-cpu (as JAX on CPU; `RNNCOMP_DENORMALS`
    changes it), "keep" on numpy and numba-cuda, which cannot flush. The caller's floating-point
    state is the same after a call (rnncomp.backends.denormals).
    `passes` is the pass pipeline in its text form, e.g. "unroll{mode=4},simplify,hoist" (default
    "simplify,hoist,linear_scan,simplify" after the unroll); `prog.pipeline` shows the whole pipeline that runs.
    `dims` binds dim symbols ahead of time, e.g. {"H": 256}: the program is compiled for those sizes and
    refuses a call of others. A size-generic cell (dims such as "4*H") whose sizes `dims` leaves unbound
    gives a SizedProgram, which binds them from each call's arrays and compiles each binding once
    (rnncomp.sized).
    """
    options = dict(
        length=length, unroll=unroll, backend=backend, dtype=dtype, reverse=reverse, truncate=truncate,
        checkpoint=checkpoint, passes=passes, backend_options=backend_options, denormals=denormals,
    )  # fmt: skip
    if not isinstance(cell, Cell):
        raise ArgumentError(
            f"argument 'cell': expected an rnncomp Cell (from @rc.cell or rc.Graph.build()), got {type(cell).__name__}"
        )
    verify_cell(cell)
    if length is None:
        if unroll == "full":
            raise ArgumentError(
                "argument 'length': a full unroll needs a length "
                "(an int, or a symbol such as 'T' to specialise per call)"
            )
        raise ArgumentError("argument 'length': expected an int >= 0 or a symbol such as 'T', got None")
    if isinstance(length, bool) or not (isinstance(length, int) and length >= 0 or is_identifier(length)):
        raise ArgumentError(f"argument 'length': expected an int >= 0 or a symbol such as 'T', got {length!r}")
    if isinstance(length, int) and length > MAX_INT:  # str() of an int over 4,300 digits fails: say its size
        raise ArgumentError(
            f"argument 'length': an int of {length.bit_length()} bits is above the limit of 2**63-1 (ir.limits.MAX_INT)"
        )
    tail, head = _user_pipeline(passes)
    if head:
        if unroll is not None and head.get("mode", unroll) != unroll:
            raise ArgumentError(
                f"argument 'passes': its unroll{{mode={head['mode']}}} disagrees with argument unroll={unroll!r}"
            )
        unroll = head.get("mode", unroll)
        reverse = reverse or head.get("reverse", False)
    unroll = "loop" if unroll is None else unroll
    if unroll not in ("full", "loop", "auto"):
        if isinstance(unroll, bool) or not isinstance(unroll, int):
            raise ArgumentError(f"argument 'unroll': expected 'full', 'loop', 'auto' or an int k >= 1, got {unroll!r}")
        if unroll < 1:
            raise ArgumentError(f"argument 'unroll': the unroll factor must be >= 1, got {unroll}")
    steps = unroll if isinstance(unroll, int) else length if unroll == "full" and isinstance(length, int) else 0
    if steps > MAX_UNROLL_STEPS:
        what = "the unroll factor" if isinstance(unroll, int) else "a full unroll of length"
        raise ArgumentError(
            f"argument '{'unroll' if isinstance(unroll, int) else 'length'}': {what} {steps} is above the limit of "
            f"{MAX_UNROLL_STEPS} steps (ir.limits.MAX_UNROLL_STEPS); unroll='loop' or a small int k runs any length"
        )
    try:
        dt = as_dtype(dtype)
    except RnncompError:
        dt = None
    if dt not in (DType.f32, DType.f64):
        raise ArgumentError(f"argument 'dtype': expected 'float32' or 'float64', got {dtype!r}")
    if backend is None:
        backend = default_backend()
    get_backend(backend)  # fail early on an unknown name
    denormals = resolve_denormals(backend, denormals)
    if backend_options is not None and not isinstance(backend_options, dict):
        raise ArgumentError(f"argument 'backend_options': expected a dict, got {type(backend_options).__name__}")
    threads = resolve_threads(backend, backend_options or {})
    if not isinstance(reverse, bool):
        raise ArgumentError(f"argument 'reverse': expected a bool, got {reverse!r}")
    if truncate is not None and (isinstance(truncate, bool) or not isinstance(truncate, int) or truncate < 1):
        raise ArgumentError(f"argument 'truncate': expected an int >= 1, got {truncate!r}")
    checkpoint = parse_checkpoint(checkpoint)
    names = {n.name for n in cell.inputs} | set(cell.states) | set(cell.outputs)
    for reserved in (LENGTHS, LENGTHS_LO, "wrt", SEED):
        if reserved in names:
            raise ArgumentError(
                f"cell {cell.name!r}: the name {reserved!r} is reserved (variable sequence lengths, the first "
                "step a truncated gradient reaches, the gradients asked for and the dropout masks' seed); rename it"
            )
    prog = CompiledProgram(cell, length, unroll, backend, dt, reverse, tail)
    pipeline = prog.pipeline_for("infer")
    if pipeline.check(IRKind.cell) != IRKind.program:  # the kinds of IR chain: fail here, not at the first call
        raise PassError(
            f"pipeline {str(pipeline)!r} ends with a {pipeline.passes[-1].gives}; the backends take a program"
        )
    prog.truncate, prog.checkpoint = truncate, checkpoint
    prog.backend_options = dict(backend_options or {})
    if threads is not None:
        prog.backend_options["threads"] = threads
    prog.denormals = denormals
    bound = check_dims(cell, dims, prog.tsym)
    if not bound and not size_symbols(cell):
        return prog

    def make(env: dict[str, int]) -> CompiledProgram:
        """The program of these sizes; it checks calls against the generic cell's signature."""
        child = compile(
            specialize(cell, env), **{**options, "length": length if isinstance(length, int) else prog.tsym}
        )
        child._signature, child.dims = prog._signature, dict(env)
        return child  # type: ignore[return-value]

    if size_symbols(cell) <= bound.keys():
        return make(bound)
    return SizedProgram(prog, bound, make)


def _user_pipeline(passes) -> tuple[Pipeline, dict[str, Any]]:
    """The program -> program passes of a user's pipeline, and the options of its `unroll` if it
    starts with one (compile puts the unroll, or the training passes, there itself)."""
    if passes is None:
        return as_pipeline(DEFAULT_PASSES), {}
    if not isinstance(passes, str) and not (
        isinstance(passes, (list, tuple)) and all(isinstance(p, str) for p in passes)
    ):
        raise ArgumentError(
            "argument 'passes': expected pipeline text such as 'simplify,hoist' (or a list of pass names), "
            f"got {passes!r}"
        )
    pipe = as_pipeline(passes)
    head: dict[str, Any] = {}
    if pipe.passes and pipe.passes[0].takes == IRKind.cell:
        first = pipe.passes[0]
        if first.name != "unroll":
            raise ArgumentError(
                f"argument 'passes': pass {first.name!r} takes a cell; rc.compile puts the cell -> program pass "
                "(unroll, or the training passes grad_forward, grad_segment, grad) first itself; "
                "a pipeline may start with unroll{...} to set its mode"
            )
        head = first.options()
        fixed = sorted(set(head) & {"length", "masked"})
        if fixed:
            raise ArgumentError(
                f"argument 'passes': unroll's {fixed[0]!r} is set by rc.compile per call variant; "
                "use compile's length= argument (and call with lengths=...)"
            )
        pipe = Pipeline(pipe.passes[1:])
    return pipe, head


def _pad_steps(v: np.ndarray, T: int) -> np.ndarray:
    """A per-step output cut at max(lengths), padded with zero steps to T."""
    padded = np.zeros((T,) + v.shape[1:], v.dtype)
    padded[: v.shape[0]] = v
    return padded


class Backward:
    """`vjp`'s backward: `backward(cotangents)` -> gradients. `.nbytes`: bytes the forward kept for it;
    `.peak`: the most bytes held for the backward so far (checkpoints plus a live leaf; after a call,
    that call's peak too); `.ops`: the array operations of the call's arrays (host or device)."""

    __slots__ = ("_prog", "_trainer", "_run", "_wrt", "nbytes", "ops", "__weakref__")

    def __init__(self, prog, trainer: Trainer, run, wrt=None):
        self._prog, self._trainer, self._run, self._wrt = prog, trainer, run, wrt  # wrt: vjp's, the default
        self.nbytes = run.nbytes  # kept from the forward to the backward
        self.ops = trainer.ops

    @property
    def peak(self) -> int:
        return self._run.peak

    def __call__(self, cotangents: dict, wrt=None) -> dict[str, np.ndarray]:
        """The gradients of vjp's `wrt` (every argument by default), or of this call's `wrt`."""
        chosen = self._wrt if wrt is None else self._prog._wrt(wrt)
        return self._trainer.backward(self._run, cotangents, chosen)


class CompiledProgram(Inspection):
    """A compiled cell: call it with arrays; inspect any stage with `.ir(stage)`."""

    def __init__(self, cell: Cell, length, unroll, backend: str, dtype: DType, reverse: bool, tail: Pipeline):
        self.cell = retype_cell(cell, dtype)
        self.length, self.unroll, self.backend, self.dtype, self.reverse = length, unroll, backend, dtype, reverse
        self.tail = tail  # the program -> program passes after the unroll
        self.analyses = Analyses()  # the grad plan, derived once for every training variant
        dims = all_symbols(self.cell)
        self.tsym = (
            length if isinstance(length, str) else next(s for s in ("T", "T_", "T__", "T_steps") if s not in dims)
        )
        if isinstance(length, str) and length in dims:
            raise ArgumentError(
                f"argument 'length': symbol {length!r} is already a dim of cell {cell.name!r}; pick another"
            )
        self._variants: dict[tuple, tuple[Any, dict[str, Any], Any]] = {}
        self._ahead: dict[tuple, tuple[Any, dict[str, Any], Any]] = {}  # (prog, stages, child) compiling ahead
        self.truncate: int | None = None
        self.checkpoint: int | str | None = None
        self._signature = signature(self.cell, self.tsym)  # what a call takes (checked per call)
        self._planner = Planner(self)  # the checkpoint schedule of each training call's T and dims
        self.backend_options: dict[str, Any] = {}
        self.denormals = "keep"  # "flush" or "keep": set by compile() (backends/denormals.py)
        self._auto = AutoUnroll(self) if unroll == "auto" else None  # unroll="auto": its chooser
        self.has_masks = has_masks(self.cell)  # rc.dropout / rc.zoneout: the programs take the seed words
        self.dims: dict[str, int] = {}  # sizes bound ahead (rc.compile's dims=): a call with others is refused
        self._last_bind: tuple | None = None  # (key, (symbols, T, zero inits)) of the last plain call: _bind_again

    @property
    def plan(self):
        """The training plan (normalised forward, residuals, backward cell), derived on first use."""
        return self.analyses.get(derive, self.cell)

    # -- building
    @property
    def pipeline(self) -> str:
        """The text of the pass pipeline of a plain call (`prog()`), e.g.
        "unroll,simplify,hoist,linear_scan,simplify"."""
        return str(self.pipeline_for("infer"))

    def pipeline_for(
        self,
        kind: str,
        masked: bool = False,
        spec: int | str | None = None,
        window: bool = False,
        outputs=None,
        wrt=None,
    ):
        """The Pipeline of one variant: `kind` "infer", "train", "segment" or "grad" (see `_variant`)."""
        if spec is None:
            spec = self.length if kind == "infer" and isinstance(self.length, int) else self.tsym
        mode = self._auto.last if self._auto else self.unroll  # auto: the mode picked last (loop before any)
        opts: dict[str, Any] = {"length": spec, "mode": mode, "reverse": self.reverse, "masked": masked}
        if kind == "grad":
            opts["window"] = window
            if outputs is not None:
                opts["outputs"] = " ".join(sorted(outputs))
            if wrt is not None:
                opts["wrt"] = " ".join(sorted(wrt))
        return Pipeline([PASSES[HEADS[kind]].make(**opts)]) + self.tail

    def _variant(
        self, kind: str, masked: bool, T: int | None, window: bool = False, outputs=None, wrt=None, build=True
    ):
        """(final program, stages, runner) of one variant; with build=False a variant not yet built
        gets no runner (None): resources() compiles for a target, not for this machine's device.

        `kind` is "infer" (the plain forward), "train" (forward keeping residuals), "segment" (a
        checkpointed forward's piece) or "grad" (the backward); `T` matters only for a full unroll.
        `outputs` (grad only): the per-step outputs given cotangents, when not all of them are; `wrt`
        (grad only): the arguments given gradients, when not all of them are.
        """
        if self._auto:  # unroll="auto": the program of the mode picked last
            return self._auto.variant(kind, masked, T, window, outputs, wrt)
        if self.unroll == "full":
            fixed = kind == "infer" and isinstance(self.length, int) and not masked
            spec: int | str = self.length if fixed else T  # type: ignore[assignment]
            if spec is None:
                raise ArgumentError(
                    "a full unroll over a symbolic length is specialised per T: pass T=... to see its IR"
                )
        else:
            fixed = kind == "infer" and isinstance(self.length, int) and not masked
            spec = self.length if fixed else self.tsym  # type: ignore[assignment]
        key = (kind, masked, spec, window, outputs, wrt)
        if key not in self._variants:
            if key in self._ahead:  # its passes ran already; its module is compiling in a child
                prog, stages, child = self._ahead[key] if not build else self._ahead.pop(key)
                if build and child is not None:
                    child.join()  # then the runner loads what the child compiled (or compiles the rest)
            else:
                pipeline = self.pipeline_for(kind, masked, spec, window, outputs, wrt)
                prog, stages = PassManager(pipeline).run(self.cell, self.analyses)
            if not build:
                return prog, stages, None
            runner = get_backend(self.backend)(prog, self._options())
            self._variants[key] = (prog, stages, runner)
        return self._variants[key]

    def _options(self) -> dict[str, Any]:
        return {**self.backend_options, "dtype": self.dtype, "denormals": self.denormals}

    def _compile_ahead(self, lengths, cotangents, wrt) -> None:
        """Start compiling the backward a call's `backward(cotangents)` will run in a child process
        (backends/numba_cpu/ahead.py), so that it overlaps the forward's compile; the key is the one
        `Trainer.backward` asks for. Not for a full unroll (its programs are per leaf length)."""
        if self.unroll == "full" or self._auto:
            return
        outputs = self.plan.cell.outputs
        given = frozenset(k for k in cotangents if k in outputs)
        given = None if len(given) == len(outputs) else given
        window = self.truncate is not None
        masked = lengths is not None or window
        key = ("grad", masked, self.tsym, window, given, wrt)
        if key in self._variants or key in self._ahead:
            return
        prog, stages = PassManager(self.pipeline_for("grad", masked, self.tsym, window, given, wrt)).run(
            self.cell, self.analyses
        )
        self._ahead[key] = (prog, stages, compile_ahead(self.backend, prog, self._options()))

    def _cancel_ahead(self) -> None:
        """Stop the children compiling ahead (the call that started them failed); their passes stay."""
        for key, (prog, stages, child) in list(self._ahead.items()):
            if child is not None:
                child.cancel()
            self._ahead[key] = (prog, stages, None)

    def _runner(self, kind: str, masked: bool, T: int | None, window: bool = False, outputs=None, wrt=None):
        return self._variant(kind, masked, T, window, outputs, wrt)[2]

    # -- running
    def __call__(self, /, *seqs, lengths=None, seed=None, **arrays) -> dict[str, np.ndarray]:
        """Run the whole sequence: outputs stacked (T, ...), final states under their names.

        Arrays are passed by name (`prog(x=x, W=W)`); seqs may also be passed positionally, in the
        order the cell declares them (`prog(x, W=W)`), then its statics; `lengths` is keyword-only. `seed` (an int)
        draws the masks of `rc.dropout` / `rc.zoneout`; without it dropout is the identity and
        zoneout takes its expectation.
        """
        arrays = self._positional(seqs, arrays, "prog()")
        if self._auto:
            return self._auto.forward(lengths, arrays, seed)
        b = self._bind_again(arrays) if lengths is None and seed is None else None
        b = b or self._bind(lengths, arrays, seed)
        masked = b.lengths is not None
        T_run = int(b.lengths.max()) if masked and b.lengths.size else (0 if masked else b.T)  # type: ignore[union-attr]
        prog, _, runner = self._variant("infer", masked, T_run)
        run_arrays = dict(b.arrays)
        if b.seed is not None:
            run_arrays[SEED] = b.seed
        if masked:
            run_arrays[LENGTHS] = b.lengths
            for s in self.cell.seqs:
                run_arrays[s.name] = b.arrays[s.name][:T_run]  # type: ignore[index]
        symbols = {**b.symbols, self.tsym: T_run}
        out = runner(run_arrays, symbols)
        pad = getattr(runner, "pad_steps", _pad_steps)  # a device backend pads on its device
        result = {}
        for k, v in out.items():
            v = v if is_device_array(v) else np.asarray(v)
            if k in self.cell.outputs and v.shape[0] != b.T:
                v = pad(v, b.T)
            result[k] = v
        return result

    def _bind_again(self, arrays: dict):
        """The last call's binding, when this call's arrays have the same names, shapes, dtype
        (the compiled one) and C layout, so that every check `_bind` makes would pass again and bind
        the same symbols (a call at config S spent ~35 us in them); else None. Only for calls
        without lengths or a seed, whose binding depends on nothing else."""
        dt = self.dtype.numpy
        key = tuple(
            (k, v.shape) for k, v in arrays.items() if type(v) is np.ndarray and v.dtype == dt and v.flags.c_contiguous
        )
        last = self._last_bind
        if last is None or len(key) != len(arrays) or last[0] != (key, tuple(self.dims.items())):
            return None
        symbols, T, zeros = last[1]
        bound = dict(arrays)
        for name, shape in zeros:
            bound[name] = np.zeros(shape, dt)
        return Bound(bound, dict(symbols), T, None)

    def _bind(self, lengths, arrays, seed=None):
        b = self._bind_checked(lengths, arrays, seed)
        if lengths is None and seed is None and not self.has_masks:
            dt = self.dtype.numpy
            if all(type(v) is np.ndarray and v.dtype == dt and v.flags.c_contiguous for v in arrays.values()):
                key = tuple((k, v.shape) for k, v in arrays.items())
                zeros = tuple((k, b.arrays[k].shape) for k in self.cell.state_types if k not in arrays)
                self._last_bind = ((key, tuple(self.dims.items())), (dict(b.symbols), b.T, zeros))
        return b

    def _bind_checked(self, lengths, arrays, seed=None):
        words = seed_words(seed)  # checked first: a bad seed is an error whatever the arrays
        fixed = self.length if isinstance(self.length, int) else None
        host_only = None
        if self.backend not in DEVICE_ARRAYS:
            host_only = f"backend {self.backend!r} runs on host arrays (device arrays: backend='numba-cuda')"
        b = bind(self.cell, self.dtype, self.tsym, fixed, lengths, arrays, host_only, self._signature, self.dims)
        for name, t in self.cell.state_types.items():
            if name not in b.arrays:
                shape = substitute(t.shape, b.symbols)
                if any(isinstance(d, str) for d in shape):
                    raise ArgumentError(
                        f"cannot make a zero init for state {name!r}: dim {shape} is not bound by any array; "
                        f"pass {name}=..."
                    )
                b.arrays[name] = np.zeros(shape, self.dtype.numpy)
        if self.has_masks:
            b.seed = words
        return b

    def _positional(self, seqs: tuple, arrays: dict, what: str) -> dict:
        """Bind positional arrays to the cell's seqs in declaration order, then its statics (then the named ones)."""
        if not seqs:
            return arrays
        names = [s.name for s in self.cell.seqs]
        statics = [u.name for u in self.cell.statics]
        if len(seqs) > len(names) + len(statics):
            also = f" and {len(statics)} static(s) {statics}" if statics else ""
            which = "seqs, then statics," if statics else "seqs"
            raise ArgumentError(
                f"{what}: {len(seqs)} positional arrays, but cell {self.cell.name!r} has {len(names)} seq(s) "
                f"{names}{also}; only {which} may be positional, in that order: pass params, inits and lengths by name"
            )
        out = dict(zip(names + statics, seqs))
        for k, v in arrays.items():
            if k in out:
                kind = "seq" if k in names else "static"
                raise ArgumentError(f"{what}: {kind} {k!r} is given twice, positionally and as {k}=...")
            out[k] = v
        return out

    # -- training
    def vjp(self, /, *seqs, lengths=None, wrt=None, seed=None, **arrays):
        """Run the forward keeping what the backward needs; returns (outputs, backward).

        `backward(cotangents)` takes a dict output name -> cotangent (missing ones are zeros) and
        returns gradients for every param, every state's init, every sequence input and every static
        (summed over the steps); with `wrt=["W", "x"]` (names of params, seqs, statics and states) only
        those are computed and returned (no input-gradient GEMM when no seq is asked for).
        `backward(cotangents, wrt=...)` narrows them per call. With device arrays (backend numba-cuda)
        every output, residual and gradient stays on the device. Seqs (then statics) may be
        positional, as in `prog(...)`. `seed` draws the dropout / zoneout masks, as in `prog(...)`:
        the backward uses the forward's masks.
        """
        return self._vjp(lengths, self._positional(seqs, arrays, "vjp()"), copy=True, wrt=wrt, seed=seed)

    def gradient_names(self) -> list[str]:
        """The arguments `wrt=` may name: params, seqs, statics and states (their inits)."""
        cell = self.cell
        return [p.name for p in cell.params] + [s.name for s in cell.seqs + cell.statics] + list(cell.states)

    def _wrt(self, wrt) -> frozenset[str] | None:
        """`wrt` checked: None (every gradient), or the set of argument names asked for."""
        if wrt is None:
            return None
        names = self.gradient_names()
        items = [wrt] if isinstance(wrt, str) else wrt
        try:
            items = list(items)
        except TypeError:
            items = [wrt]
        if not items:
            raise ArgumentError(
                f"argument 'wrt': an empty list asks for no gradient; name some of {names}, or call prog(...) "
                "for the forward alone"
            )
        for k in items:
            if not isinstance(k, str) or k not in names:
                import difflib

                near = difflib.get_close_matches(str(k), names, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ArgumentError(
                    f"argument 'wrt': {k!r} is not an argument of cell {self.cell.name!r}{hint}; "
                    f"gradients exist for the params, seqs{', statics' if self.cell.statics else ''} and states {names}"
                )
        return None if set(items) == set(names) else frozenset(items)

    def _vjp(self, lengths, arrays: dict, copy: bool, wrt=None, seed=None, ahead=None):
        """`vjp`; with `copy=False` the backward reads the caller's host arrays as they are, for a caller
        that guarantees they stay unchanged until then (rnncomp.torch: autograd's version counters).
        `ahead`: the outputs the backward will be given cotangents for, when known (value_and_grad):
        its program then compiles in a child while the forward's compiles here."""
        default = self._wrt(wrt)
        if self._auto:
            return self._auto.vjp(lengths, arrays, wrt, seed)  # the chosen mode's vjp (it copies)
        b = self._bind(lengths, arrays, seed)
        for k, a in b.arrays.items():  # the backward reads them later: the caller's own arrays are copied
            if copy and a is arrays.get(k) and not is_device_array(a):
                b.arrays[k] = a.copy()
        trainer = Trainer(self, b)
        if ahead is not None:
            self._compile_ahead(b.lengths, ahead, default)
        try:
            out, run = trainer.forward(b, b.lengths)
        except BaseException:
            self._cancel_ahead()
            raise

        return out, Backward(self, trainer, run, default)

    def value_and_grad(self, output: str, /, *seqs, lengths=None, wrt=None, seed=None, **arrays):
        """loss = out[output].sum() and its gradients (every param, state init and sequence input, or
        only those named in `wrt`, e.g. `wrt=["W", "U"]`: see `vjp`).
        The loss is a host scalar (on a device backend the one value copied back). `output` is
        positional, so an input may itself be named `output` (or `self`); seqs may follow it
        positionally, as in `prog(...)`."""
        arrays = self._positional(seqs, arrays, "value_and_grad()")
        names = list(self.cell.outputs) + list(self.cell.states)
        if not isinstance(output, str) or output not in names:
            import difflib

            near = difflib.get_close_matches(str(output), names, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ArgumentError(f"argument 'output': unknown output {output!r}{hint}; outputs are {names}")
        if self._auto:
            return self._auto.value_and_grad(output, lengths, arrays, wrt, seed)
        # The backward runs before this call returns, so it may read the caller's arrays uncopied.
        out, backward = self._vjp(lengths, arrays, copy=False, wrt=wrt, seed=seed, ahead=(output,))
        ops = backward.ops  # type: ignore[attr-defined]
        loss = ops.total(out[output])
        return loss, backward({output: self._ones(ops, out[output])})

    def _ones(self, ops, like):
        """A ones array like `like`, kept for the next call (the backward only reads its cotangents;
        it stays writable: a read-only array is another type to Numba, another compile)."""
        key = (ops.device, tuple(like.shape), np.dtype(like.dtype).str)
        if getattr(self, "_ones_cache", (None,))[0] != key:
            self._ones_cache = (key, ops.ones_like(like))
        return self._ones_cache[1]

    def free_buffers(self) -> None:
        """Hand back the arrays kept for reuse between calls (numba-cpu keeps up to two calls' worth per
        program: GBs of residuals at T=10,000); the next call allocates afresh. Outputs you hold stay valid."""
        for runner in [v[2] for v in self._variants.values()]:
            if getattr(runner, "pool", None) is not None:
                runner.pool.clear()
        for child in self._auto._children.values() if self._auto else ():
            child.free_buffers()

    def choice(self) -> list:
        """unroll="auto": every choice of mode made so far, one per (kind, lengths or not, T bucket,
        dims, dtype), each with the mode picked, the median seconds of every candidate and whether it
        was timed, read from disk or forced by RNNCOMP_UNROLL (see rnncomp.autotune)."""
        if not self._auto:
            raise ArgumentError(f"choice(): this program has unroll={self.unroll!r}; only unroll='auto' chooses")
        return self._auto.choices()

    def __repr__(self) -> str:
        return (
            f"<rnncomp program {self.cell.name}: length={self.length!r} unroll={self.unroll!r} "
            f"backend={self.backend!r} dtype={self.dtype} denormals={self.denormals!r}"
            + (f" dims={self.dims!r}" if self.dims else "")
            + ">"
        )
