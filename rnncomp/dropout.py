"""Dropout and zoneout inside a cell: masks from a counter-based generator, the same everywhere.

`rc.dropout(x, p, per="step" | "sequence")` and `rc.zoneout(new, old, p)` (Krueger et al. 2016) each
make a `dropout_mask` node (ir/mask_ops.py) and combine it with the existing ops (`mul`, `add`,
`sub`), so the grad pass differentiates them with the existing rules and the backends fuse them.
A mask is drawn from Philox keyed by the call's `seed=` and counted by (step, row, feature, site):
the forward, the backward, every unroll mode, checkpoint recomputation and every backend see the
same mask, and nothing is carried or saved. Without `seed=`, dropout is the identity and zoneout
takes its expectation p*old + (1-p)*new (inference).
"""

from __future__ import annotations

from ir import DSLError, Node, RnncompError, ShapeError
from ir.ops import check_attrs, get_op, infer_type
from ir.philox import check_probability

from .dsl import Value, _user_site

PER = ("step", "sequence")


def _mask(what: str, like: Value, p: float, sequence: bool, zoneout: bool, site: str) -> Value:
    attrs = {"p": p, "sequence": sequence, "zoneout": zoneout, "shape": like.type.shape, "dtype": like.type.dtype}
    try:
        attrs = check_attrs(get_op("dropout_mask"), attrs)
        t = infer_type(get_op("dropout_mask"), [], attrs)
    except RnncompError as e:
        raise ShapeError(f"{site}: {what}: {e}; got {like.type}") from None
    return Value(Node("dropout_mask", (), attrs, t, loc=site))  # its site number is set when the cell is built


def _probability(p: object, what: str, site: str) -> float:
    try:
        return check_probability(p, f"{site}: {what}")
    except RnncompError as e:
        raise DSLError(str(e)) from None


def dropout(x: Value, p: float, per: str = "step") -> Value:
    """Inverted dropout: each element of `x` is zeroed with probability `p` and the kept ones are scaled
    by 1/(1-p), as PyTorch's `F.dropout`; `x` is (rows, features) or (features,), e.g. a Param for
    DropConnect. `per="step"` draws a new mask at every step; `per="sequence"` one mask per row for the
    whole sequence (Gal and Ghahramani's variational dropout). Masks are drawn when the call passes
    `seed=` (an int); without it dropout is the identity.

    Example, variational dropout on the input and the recurrent state of an LSTM::

        z = rc.dropout(x, 0.25, per="sequence") @ W + rc.dropout(h, 0.25, per="sequence") @ U
    """
    site = _user_site()
    if not isinstance(x, Value):
        raise DSLError(f"{site}: dropout: x must be a cell value, got {x!r}")
    p = _probability(p, "dropout", site)
    if per not in PER:
        raise DSLError(
            f"{site}: dropout: per must be 'step' (a new mask every step) or 'sequence' (one mask per "
            f"row for the whole sequence), got per={per!r}"
        )
    return x * _mask("dropout", x, p, per == "sequence", False, site)


def zoneout(new: Value, old: Value, p: float, per: str = "step") -> Value:
    """Zoneout (Krueger et al. 2016): each element keeps its `old` value (the state at t-1) with
    probability `p`, else takes `new`; with `seed=` the mask is drawn per step (or per row for the whole
    sequence, `per="sequence"`), without it the expectation p*old + (1-p)*new.

    Example, zoneout on an LSTM's cell and hidden state::

        c_new = rc.zoneout(f * c + i * g, c, 0.15)
    """
    site = _user_site()
    for name, v in (("new", new), ("old", old)):
        if not isinstance(v, Value):
            raise DSLError(f"{site}: zoneout: {name} must be a cell value, got {v!r}")
    if new.type != old.type:
        raise ShapeError(
            f"{site}: zoneout: new {new.type} and old {old.type} differ; both are the state's value (new at t, "
            "old at t-1)"
        )
    p = _probability(p, "zoneout", site)
    if per not in PER:
        raise DSLError(f"{site}: zoneout: per must be 'step' or 'sequence', got per={per!r}")
    m = _mask("zoneout", new, p, per == "sequence", True, site)
    return m * new + (1.0 - m) * old
