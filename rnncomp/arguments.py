"""Runtime argument checking: names, shapes, dtypes and lengths, each error naming the argument.

Float arrays are converted once to the compiled dtype (a copy only when the dtype or layout
differs); other arrays (ints, bools, objects, masked arrays) are refused; integer `lengths` are taken
as int64. Symbolic dims (T, B, ...) are bound from the arrays; a dim expression (`4*H`) binds its one
unknown symbol (1024 binds H = 256), and must be a whole number at every node. A call whose outputs, states and copies
would not fit in memory is refused before anything is allocated.
Device arrays (GPU arrays: Numba's, or anything with `__cuda_array_interface__`) are checked the
same way but never converted: they pass through to a backend that runs on the device.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ir import ArgumentError, Cell, VerifyError, dimexpr
from ir.dtypes import DType
from ir.shapes import Shape, dim_value, substitute, symbols_of
from ir.specialize import check_whole

LENGTHS = "lengths"


@dataclass
class Bound:
    arrays: dict[str, np.ndarray]  # every seq, param and init, converted
    symbols: dict[str, int]  # T and every other symbol
    T: int
    lengths: np.ndarray | None
    seed: np.ndarray | None = None  # the dropout masks' seed words (k0, k1, t0, on), for a cell with masks


def _closest(name: str, options: list[str]) -> str:
    near = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _show(shape: Shape, env: dict[str, int]) -> str:
    sym = "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    try:
        val = substitute(shape, env)
    except dimexpr.DimError:  # not a whole number: the caller says so
        return sym
    if all(isinstance(d, int) for d in val) and any(isinstance(d, str) for d in shape):
        return f"{sym} = {val}"
    return sym


def is_device_array(value) -> bool:
    """A GPU array: a Numba device array, or anything with `__cuda_array_interface__` (CuPy, PyTorch)."""
    return hasattr(value, "__cuda_array_interface__") or bool(getattr(value, "__cuda_ndarray__", False))


def device_dtype(value) -> np.dtype:
    """The element type of a device array (its `__cuda_array_interface__` says, else `.dtype`)."""
    cai = getattr(value, "__cuda_array_interface__", None)
    return np.dtype(cai["typestr"]) if cai else np.dtype(value.dtype)


def signature(cell: Cell, tsym: str) -> tuple[dict, dict, list[str]]:
    """What a call of `cell` takes: required (seqs, params, statics) and optional (inits) arguments, each
    name -> (role, shape); and every name, for error messages. A compiled program keeps its own."""
    required = {s.name: ("seq", (tsym,) + s.type.shape) for s in cell.seqs}  # type: ignore[union-attr,operator]
    required.update({p.name: ("param", p.type.shape) for p in cell.params})  # type: ignore[union-attr,misc]
    required.update({u.name: ("static", u.type.shape) for u in cell.statics})  # type: ignore[union-attr,misc]
    optional = {k: ("init", t.shape) for k, t in cell.state_types.items()}
    return required, optional, list(required) + list(optional) + [LENGTHS]


def bind(
    cell: Cell,
    dtype: DType,
    tsym: str,
    length: int | None,
    lengths,
    kwargs: dict,
    host_only: str | None = None,
    sig: tuple[dict, dict, list[str]] | None = None,
    preset: dict[str, int] | None = None,
) -> Bound:
    """Check `kwargs` against the cell's signature (`sig`, else worked out here); bind symbols (those of
    `preset`, rc.compile's `dims=`, first); convert arrays to `dtype`. Device arrays pass through
    unconverted; `host_only`, when given, says why they are refused here.
    """
    env, src, arrays = bind_symbols(cell, dtype, tsym, length, kwargs, host_only, sig, preset)
    check_fits(cell, dtype, tsym, env, src, arrays)
    arrays = {k: a if is_device_array(a) else _converted(a, dtype) for k, a in arrays.items()}
    T = env[tsym]
    lens = None if lengths is None else _lengths(lengths, T, cell, env)
    return Bound(arrays, env, T, lens)


def bind_symbols(
    cell: Cell,
    dtype: DType,
    tsym: str,
    length: int | None,
    kwargs: dict,
    host_only: str | None = None,
    sig: tuple[dict, dict, list[str]] | None = None,
    preset: dict[str, int] | None = None,
) -> tuple[dict[str, int], dict[str, str], dict]:
    """`bind`'s checks of names and shapes: (the symbols' values, who bound each, the arrays unconverted)."""
    required, optional, known = sig or signature(cell, tsym)
    for name in kwargs:
        if name not in required and name not in optional:
            raise ArgumentError(f"unknown argument {name!r}{_closest(name, known)}; cell {cell.name!r} takes {known}")
    for name in required:
        if name not in kwargs:
            raise ArgumentError(
                f"missing argument {name!r} ({required[name][0]} of shape {_show(required[name][1], {})})"
                f"{_closest(name, list(kwargs))}"
            )
    env: dict[str, int] = {} if length is None else {tsym: length}
    src: dict[str, str] = {}  # symbol -> the argument (and its shape) that bound it
    for k, v in (preset or {}).items():
        env[k], src[k] = int(v), "dims= of rc.compile"
    arrays: dict[str, np.ndarray] = {}
    for name, value in kwargs.items():
        role, shape = required.get(name) or optional[name]
        if is_device_array(value):
            arrays[name] = _device_array(name, role, value, shape, dtype, env, host_only, src)
        else:
            arrays[name] = _one(name, role, value, shape, dtype, env, src)
    solve_expressions({k: (required.get(k) or optional[k]) for k in arrays}, arrays, env, src)
    if tsym not in env:
        raise ArgumentError(
            f"cannot tell the sequence length: cell {cell.name!r} has no sequence input; compile with a concrete length"
        )
    try:
        check_whole(cell, env, src)
    except VerifyError as e:
        raise ArgumentError(f"cell {cell.name!r}: {e}") from None
    return env, src, arrays


@functools.lru_cache(maxsize=1024)
def _expression_axes(shape: Shape) -> tuple:
    """The (axis, dim) of each dim expression of a declared shape (none, for most: a call's fast path)."""
    return tuple((i, d) for i, d in enumerate(shape) if not dimexpr.is_plain(d))


def _array_shape(value) -> tuple:
    cai = getattr(value, "__cuda_array_interface__", None)
    return tuple(cai["shape"]) if cai else tuple(np.shape(value))


def solve_expressions(declared: dict, arrays: dict, env: dict[str, int], src: dict[str, str]) -> None:
    """Bind the symbols of dim expressions (`4*H` of 1024 binds H = 256), one unknown at a time, then
    check every expression against its array; each error names the argument, the dim and the values."""
    eqs = [
        (name, role, got, shape, i, d, got[i])
        for name, (role, shape) in declared.items()
        if _expression_axes(shape)
        for got in [_array_shape(arrays[name])]
        for i, d in _expression_axes(shape)
    ]
    if not eqs:
        return
    todo = list(eqs)
    while todo:
        left = []
        for eq in todo:
            name, role, got, shape, i, d, n = eq
            try:
                s = dimexpr.solve_one(d, n, env)
            except dimexpr.DimError as e:
                raise ArgumentError(
                    f"argument {name!r} ({role}): expected shape {_show(shape, env)}, got {got}: dim {i} ({d}) "
                    f"is {n}, but {e}"
                ) from None
            if s is not None:
                src[s] = f"argument {name!r} of shape {tuple(got)}"
            elif dimexpr.symbols(d) - env.keys():
                left.append(eq)
        if len(left) == len(todo):
            name, role, got, shape, i, d, n = left[0]
            free = sorted(dimexpr.symbols(d) - env.keys())
            raise ArgumentError(
                f"argument {name!r} ({role}): dim {i} ({d}) is {n}, which does not tell {' and '.join(free)} "
                f"apart; bind them with rc.compile(..., dims={{{', '.join(repr(f) + ': ...' for f in free)}}})"
            )
        todo = left
    for name, role, got, shape, i, d, n in eqs:
        v = dimexpr.value(d, env)
        if v != n:
            came = "; ".join(f"{s} = {env[s]} from {src[s]}" for s in sorted(dimexpr.symbols(d)) if s in src)
            raise ArgumentError(
                f"argument {name!r} ({role}): expected shape {_show(shape, env)}, got {got}: "
                f"dim {i} ({d}) is {n} here, but {d} = {v} ({came})"
            )


def float_array(what: str, value) -> np.ndarray:
    """`value` as a NumPy float array, or a clear error naming `what` ("argument 'x'", "cotangent 'y'"):
    ints, bools, objects and complex numbers are refused (a float program would round or drop them
    silently), and so are masked arrays (their mask would be dropped)."""
    if isinstance(value, np.ma.MaskedArray):
        raise ArgumentError(
            f"{what}: a masked array (numpy.ma), whose mask rnncomp would drop; pass .filled(0.0) "
            "(and lengths= for padded sequences)"
        )
    try:
        a = np.asarray(value)
    except Exception as e:  # noqa: BLE001  (anything that is not array-like)
        raise ArgumentError(f"{what}: not an array ({e})") from None
    if a.dtype.kind != "f":
        raise ArgumentError(
            f"{what}: expected a float array, got dtype {a.dtype} (only float arrays are converted; "
            "pass .astype(float) if converting it is what you mean)"
        )
    return a


def _one(name: str, role: str, value, shape: Shape, dtype: DType, env: dict[str, int], src: dict) -> np.ndarray:
    """The argument checked (float, shape); still the caller's array: `_converted` makes the copy."""
    if type(value) is np.ndarray and value.dtype == dtype.numpy and value.flags.c_contiguous:
        _check_shape(name, role, value.shape, shape, env, src)  # as it is: nothing to convert
        return value
    a = float_array(f"argument {name!r} ({role})", value)
    _check_shape(name, role, a.shape, shape, env, src)
    return a


def _converted(a: np.ndarray, dtype: DType) -> np.ndarray:
    return a if a.dtype == dtype.numpy and a.flags.c_contiguous else np.ascontiguousarray(a, dtype=dtype.numpy)


@functools.cache
def _memory_bytes() -> int | None:
    """This machine's physical memory, where the OS says."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_fits(cell: Cell, dtype: DType, tsym: str, env: dict[str, int], src: dict[str, str], arrays: dict) -> None:
    """Refuse a call whose outputs, states and argument copies (of `arrays` not yet of `dtype` and
    C-contiguous) need more than this machine's memory, before anything is allocated, naming the largest
    of them and the argument whose shape made it so large."""
    limit = _memory_bytes()
    if limit is None:
        return
    item = dtype.numpy.itemsize
    sizes: list[tuple[int, Any]] = [  # (bytes, what it is: an argument's copy, or (kind, name, shape))
        (a.size * item, k)
        for k, a in arrays.items()
        if isinstance(a, np.ndarray) and not (a.dtype == dtype.numpy and a.flags.c_contiguous)
    ]
    shapes = [("output", k, (tsym,) + tuple(v.type.shape)) for k, v in cell.outputs.items()]  # type: ignore[union-attr]
    shapes += [("state", k, tuple(t.shape)) for k, t in cell.state_types.items()]
    for kind, name, shape in shapes:
        sizes.append((math.prod(_extent(d, env) for d in shape) * item, (kind, name, shape)))
    total = sum(s[0] for s in sizes)
    if total <= limit:
        return
    need, it = max(sizes, key=lambda s: s[0])  # the messages are made only here: a call's fast path makes none
    if isinstance(it, str):
        a = arrays[it]
        what, by = f"the {dtype.numpy} C-contiguous copy of argument {it!r} (shape {a.shape}, {a.dtype})", ""
    else:
        kind, name, shape = it
        syms = sorted(s for s in symbols_of(shape) if s in src)
        culprit = max(syms, key=lambda d: env[d], default=None)
        by = f"{src[culprit]} binds {culprit} = {env[culprit]}: " if culprit else ""
        what = f"{kind} {name!r} of shape {_show(shape, env)}"
    raise ArgumentError(
        f"{by}{what} would need {_bytes(need)} ({need} bytes of {dtype.numpy}), and the call's outputs, states "
        f"and argument copies {_bytes(total)}, more than this machine's {_bytes(limit)} of memory"
    )


def _extent(d, env: dict[str, int]) -> int:
    """A dim's value, 0 while it is unbound."""
    if isinstance(d, int):
        return d
    try:
        v = dim_value(d, env)
    except dimexpr.DimError:
        return 0
    return v if isinstance(v, int) else 0


def _check_shape(name: str, role: str, got: tuple, shape: Shape, env: dict[str, int], src: dict | None = None) -> None:
    if len(got) != len(shape):
        raise ArgumentError(
            f"argument {name!r} ({role}): expected rank {len(shape)} {_show(shape, env)}, got shape {got}"
        )
    for i, (d, n) in enumerate(zip(shape, got)):
        if isinstance(d, str) and not dimexpr.is_plain(d):
            continue  # an expression: `solve_expressions` binds and checks it once every plain symbol is bound
        if isinstance(d, str):
            if d in env and env[d] != n:
                preset = src is not None and src.get(d) == "dims= of rc.compile"
                where = "in dims= of rc.compile" if preset else "elsewhere"
                raise ArgumentError(
                    f"argument {name!r} ({role}): expected shape {_show(shape, env)}, got {got}: "
                    f"dim {i} ({d}) is {n} here but {env[d]} {where}"
                )
            if d not in env and src is not None:
                src[d] = f"argument {name!r} of shape {tuple(got)}"
            env.setdefault(d, n)
        elif d != n:
            raise ArgumentError(f"argument {name!r} ({role}): expected shape {_show(shape, env)}, got {got}")


def _device_array(name: str, role: str, value, shape: Shape, dtype: DType, env: dict[str, int], host_only, src: dict):
    """Check a device array's shape and dtype; it is used as it is (a device array is never converted)."""
    if host_only:
        raise ArgumentError(
            f"argument {name!r}: a device (GPU) array, but {host_only}; copy it to the host first "
            "(e.g. .copy_to_host(), .get() or .cpu().numpy())"
        )
    cai = getattr(value, "__cuda_array_interface__", None)
    got = tuple(cai["shape"]) if cai else tuple(value.shape)
    dt = device_dtype(value)
    _check_shape(name, role, got, shape, env, src)
    if dt != dtype.numpy:
        raise ArgumentError(
            f"argument {name!r} ({role}): a device array of dtype {dt}, but the program computes in "
            f"{dtype.numpy}; device arrays are used in place, never converted: convert it on the device "
            f"or compile with dtype={dt.name!r}"
        )
    return value


def _lengths(value, T: int, cell: Cell, env: dict[str, int]) -> np.ndarray:
    if is_device_array(value):
        raise ArgumentError(
            "argument 'lengths': pass lengths as a host (NumPy) array; rnncomp reads max(lengths) on the host "
            "to skip the steps past it"
        )
    a = np.asarray(value)
    if a.dtype.kind not in "iu":
        if a.dtype.kind == "f" and a.size and np.all(a == np.round(a)):
            raise ArgumentError(f"argument 'lengths': expected integers, got dtype {a.dtype} (cast with .astype(int))")
        raise ArgumentError(f"argument 'lengths': expected an integer array of shape (B,), got dtype {a.dtype}")
    lead = [s.type.shape[0] for s in cell.seqs + cell.statics if s.type.shape]  # type: ignore[union-attr]
    bdim = lead[0] if lead else None
    B = env.get(bdim) if isinstance(bdim, str) else bdim
    if a.ndim != 1 or (B is not None and a.shape[0] != B):
        raise ArgumentError(f"argument 'lengths': expected shape (B,) = ({B},), got {a.shape}")
    if a.size and (a.min() < 0 or a.max() > T):
        bad = int(a[(a < 0) | (a > T)][0])
        raise ArgumentError(f"argument 'lengths': every length must lie in [0, T] = [0, {T}], got {bad}")
    return a.astype(np.int64)
