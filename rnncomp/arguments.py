"""Runtime argument checking: names, shapes, dtypes and lengths, each error naming the argument.

Float arrays are converted once to the compiled dtype (a copy only when the dtype or layout
differs); integer `lengths` are taken as int64. Symbolic dims (T, B, ...) are bound from the arrays.
Device arrays (GPU arrays: Numba's, or anything with `__cuda_array_interface__`) are checked the
same way but never converted: they pass through to a backend that runs on the device.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np

from ir import ArgumentError, Cell
from ir.dtypes import DType
from ir.shapes import Shape

LENGTHS = "lengths"


@dataclass
class Bound:
    arrays: dict[str, np.ndarray]  # every seq, param and init, converted
    symbols: dict[str, int]  # T and every other symbol
    T: int
    lengths: np.ndarray | None


def _closest(name: str, options: list[str]) -> str:
    near = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _show(shape: Shape, env: dict[str, int]) -> str:
    sym = "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    if all(isinstance(d, int) or d in env for d in shape) and any(isinstance(d, str) for d in shape):
        val = tuple(env.get(d, d) if isinstance(d, str) else d for d in shape)
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
    """What a call of `cell` takes: required (seqs, params) and optional (inits) arguments, each
    name -> (role, shape); and every name, for error messages. A compiled program keeps its own."""
    required = {s.name: ("seq", (tsym,) + s.type.shape) for s in cell.seqs}  # type: ignore[union-attr,operator]
    required.update({p.name: ("param", p.type.shape) for p in cell.params})  # type: ignore[union-attr,misc]
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
) -> Bound:
    """Check `kwargs` against the cell's signature (`sig`, else worked out here); bind symbols;
    convert arrays to `dtype`. Device arrays pass through unconverted; `host_only`, when given,
    says why they are refused here.
    """
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
    arrays: dict[str, np.ndarray] = {}
    for name, value in kwargs.items():
        role, shape = required.get(name) or optional[name]
        if is_device_array(value):
            arrays[name] = _device_array(name, role, value, shape, dtype, env, host_only)
        else:
            arrays[name] = _one(name, role, value, shape, dtype, env)
    if tsym not in env:
        raise ArgumentError(
            f"cannot tell the sequence length: cell {cell.name!r} has no sequence input; compile with a concrete length"
        )
    T = env[tsym]
    lens = None if lengths is None else _lengths(lengths, T, cell, env)
    return Bound(arrays, env, T, lens)


def _one(name: str, role: str, value, shape: Shape, dtype: DType, env: dict[str, int]) -> np.ndarray:
    if type(value) is np.ndarray and value.dtype == dtype.numpy and value.flags.c_contiguous:
        _check_shape(name, role, value.shape, shape, env)  # as it is: nothing to convert
        return value
    try:
        a = np.asarray(value)
    except Exception as e:  # noqa: BLE001  (anything that is not array-like)
        raise ArgumentError(f"argument {name!r}: not an array ({e})") from None
    if a.dtype.kind not in "fiub":
        raise ArgumentError(f"argument {name!r}: expected a float array, got dtype {a.dtype}")
    _check_shape(name, role, a.shape, shape, env)
    return np.ascontiguousarray(a, dtype=dtype.numpy)


def _check_shape(name: str, role: str, got: tuple, shape: Shape, env: dict[str, int]) -> None:
    if len(got) != len(shape):
        raise ArgumentError(
            f"argument {name!r} ({role}): expected rank {len(shape)} {_show(shape, env)}, got shape {got}"
        )
    for i, (d, n) in enumerate(zip(shape, got)):
        if isinstance(d, str):
            if d in env and env[d] != n:
                raise ArgumentError(
                    f"argument {name!r} ({role}): expected shape {_show(shape, env)}, got {got}: "
                    f"dim {i} ({d}) is {n} here but {env[d]} elsewhere"
                )
            env.setdefault(d, n)
        elif d != n:
            raise ArgumentError(f"argument {name!r} ({role}): expected shape {_show(shape, env)}, got {got}")


def _device_array(name: str, role: str, value, shape: Shape, dtype: DType, env: dict[str, int], host_only):
    """Check a device array's shape and dtype; it is used as it is (a device array is never converted)."""
    if host_only:
        raise ArgumentError(
            f"argument {name!r}: a device (GPU) array, but {host_only}; copy it to the host first "
            "(e.g. .copy_to_host(), .get() or .cpu().numpy())"
        )
    cai = getattr(value, "__cuda_array_interface__", None)
    got = tuple(cai["shape"]) if cai else tuple(value.shape)
    dt = device_dtype(value)
    _check_shape(name, role, got, shape, env)
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
    lead = [s.type.shape[0] for s in cell.seqs if s.type.shape]  # type: ignore[union-attr]
    bdim = lead[0] if lead else None
    B = env.get(bdim) if isinstance(bdim, str) else bdim
    if a.ndim != 1 or (B is not None and a.shape[0] != B):
        raise ArgumentError(f"argument 'lengths': expected shape (B,) = ({B},), got {a.shape}")
    if a.size and (a.min() < 0 or a.max() > T):
        bad = int(a[(a < 0) | (a > T)][0])
        raise ArgumentError(f"argument 'lengths': every length must lie in [0, T] = [0, {T}], got {bad}")
    return a.astype(np.int64)
