"""The dropout / zoneout mask ops: `dropout_mask` in cells, `philox_mask` in programs (after unroll).

A cell's `dropout_mask` has no operands: its value at step t is a pure function of (seed, site, t, row,
feature) (ir/philox.py), so nothing is carried and nothing is saved for the backward (the grad pass
recomputes it). Unrolling gives each step's copy the step and the call's seed words as operands:
`philox_mask(t, seed)`, where `seed` is the int64 vector (k0, k1, t0, on) the runtime passes: the
Philox key, the absolute step of the program's step 0 (a checkpoint segment starts mid-sequence) and
whether masks are drawn at all (0: a call without `seed=`, where every mask takes its expectation).

The value of a mask, of shape (rows, features) or (features,):
  dropout (inverted): kept 1/(1-p), dropped 0; without a seed 1 (the identity);
  zoneout:            kept 1 (the new value), dropped 0 (the old value); without a seed 1-p.
An element is kept where Philox's first word of counter (step, row, feature, site) is at least
`threshold(p)`; `sequence=True` (variational dropout) uses the step word SEQUENCE at every step.
"""

from __future__ import annotations

import numpy as np

from .dtypes import DType
from .errors import ShapeError
from .ops import Attr, OpDef, register
from .philox import SEQUENCE, philox4x32_10, threshold
from .types import TensorType

SEED = "seed"  # the program input holding (k0, k1, t0, on)
SEED_WORDS = 4
MASK_ATTRS = {
    "p": Attr("float"),
    "site": Attr("int", 0),
    "sequence": Attr("bool", False),
    "zoneout": Attr("bool", False),
    "shape": Attr("shape"),
    "dtype": Attr("dtype", DType.f32),
}


def kept_value(p: float, zoneout: bool) -> float:
    """A kept element's value: 1/(1-p) for (inverted) dropout, 1 for zoneout."""
    return 1.0 if zoneout else 1.0 / (1.0 - p)


def off_value(p: float, zoneout: bool) -> float:
    """Every element's value without a seed: the mask's expectation (1, or 1-p for zoneout)."""
    return 1.0 - p if zoneout else 1.0


def _check_shape(shape) -> None:
    if len(shape) not in (1, 2):
        raise ShapeError(f"a dropout mask is (rows, features) or (features,), got shape {tuple(shape)}")


def _infer_cell_mask(ins: list[TensorType], attrs: dict) -> TensorType:
    _check_shape(attrs["shape"])
    return TensorType(attrs["dtype"], attrs["shape"])


def _infer_program_mask(ins: list[TensorType], attrs: dict) -> TensorType:
    t, seed = ins
    if t.rank != 0 or t.dtype.is_float:
        raise ShapeError(f"philox_mask: the step must be an integer scalar, got {t}")
    if seed.rank != 1 or seed.dtype.is_float or seed.shape[0] != SEED_WORDS:
        raise ShapeError(f"philox_mask: the seed must be an integer vector ({SEED_WORDS},), got {seed}")
    return _infer_cell_mask([], attrs)


def mask_values(step: int, words, p: float, site: int, sequence: bool, zoneout: bool, shape, dtype) -> np.ndarray:
    """The mask at (program) step `step` for seed words (k0, k1, t0, on), in `dtype` (NumPy)."""
    dt = dtype.numpy if isinstance(dtype, DType) else np.dtype(dtype)
    k0, k1, t0, on = (int(w) for w in words)
    if not on:
        return np.full(shape, off_value(p, zoneout), dt)
    rows, feats = (1, shape[0]) if len(shape) == 1 else shape
    r, f = np.meshgrid(np.arange(rows, dtype=np.uint64), np.arange(feats, dtype=np.uint64), indexing="ij")
    u = np.uint64
    word = u(SEQUENCE) if sequence else u((int(step) + t0) & 0xFFFFFFFF)
    w0, _, _, _ = philox4x32_10(word, r, f, u(site), u(k0), u(k1))
    kept = np.where(w0 >= u(threshold(p)), dt.type(kept_value(p, zoneout)), dt.type(0.0))
    return kept.reshape(shape).astype(dt, copy=False)


def _program_mask(t, seed, p, site, sequence, zoneout, shape, dtype) -> np.ndarray:
    return mask_values(int(t), np.asarray(seed).tolist(), p, site, sequence, zoneout, shape, dtype)


register(
    OpDef(
        "dropout_mask",
        0,
        _infer_cell_mask,
        None,  # its value needs the step and the seed: the reference runs it (rnncomp/reference.py)
        MASK_ATTRS,
        "source",
        cheap=True,  # the backward recomputes it: nothing saved
        rows="fill",
    )
)
register(
    OpDef(
        "philox_mask",
        2,
        _infer_program_mask,
        _program_mask,
        MASK_ATTRS,
        "elementwise",
        rows="mask",
    )
)

__all__ = ["SEED", "SEED_WORDS", "kept_value", "mask_values", "off_value"]
