"""The op table, op by op: each differentiable op in a tiny recurrent cell, compiled, against the oracle
and finite differences. Adding an op adds a row here (see ir/ops.py for the other places)."""

from __future__ import annotations

import numpy as np
import pytest

import rnncomp as rc
from ir import OPS, PassError
from ir.ops import OpDef, register
from passes.grad import derive
from passes.grad_rules import RULES
from rnncomp import Param, Seq, State
from rnncomp.dsl import apply
from rnncomp.reference import run as oracle
from tests.gradcheck import check_vjp
from tests.support import max_err, random_args

# op -> how a step uses it: f(x, h, W) -> a (B, 6) value (x, h: (B, 6); W: (6, 6))
USES = {
    "identity": lambda x, h, W: apply("identity", x @ W + h),
    "neg": lambda x, h, W: -(x @ W) + h,
    "tanh": lambda x, h, W: rc.tanh(x @ W + h),
    "sigmoid": lambda x, h, W: rc.sigmoid(x @ W + h),
    "relu": lambda x, h, W: rc.relu(x @ W + h),
    "exp": lambda x, h, W: rc.exp(rc.tanh(x @ W + h)),
    "log": lambda x, h, W: rc.log(1.0 + (x @ W + h) * (x @ W + h)),
    "softplus": lambda x, h, W: rc.softplus(x @ W + h),
    "add": lambda x, h, W: x @ W + h,
    "sub": lambda x, h, W: x @ W - h,
    "mul": lambda x, h, W: (x @ W) * h,
    "div": lambda x, h, W: (x @ W) / (2.0 + rc.tanh(h)),
    "where": lambda x, h, W: rc.where(x, x @ W, h),
    "cast": lambda x, h, W: rc.cast(x @ W, "f32") + h,
    "matmul": lambda x, h, W: x @ W + h @ W,
    "sum": lambda x, h, W: h + rc.sum(x @ W, axis=-1, keepdims=True),
    "mean": lambda x, h, W: h * rc.mean(x @ W, axis=-1, keepdims=True),
    "max": lambda x, h, W: h + rc.max(x @ W, axis=-1, keepdims=True),
    "softmax": lambda x, h, W: rc.softmax(x @ W + h, axis=-1),
    "log_softmax": lambda x, h, W: rc.log_softmax(x @ W + h, axis=-1),
    "concat": lambda x, h, W: rc.concat([x, h], axis=-1) @ rc.concat([W, W], axis=0),
    "split": lambda x, h, W: (
        rc.split(rc.concat([x @ W, h], axis=-1), 2)[0] * rc.split(rc.concat([x, h], axis=-1), 2)[1]
    ),
    "slice": lambda x, h, W: rc.slice(rc.concat([h, x @ W], axis=-1), 3, 9),
    "constant": lambda x, h, W: x @ (W * rc.constant(np.linspace(0.5, 1.5, 6))) + h,
    "transpose": lambda x, h, W: x @ apply("transpose", W) + h,
    "sum_to": lambda x, h, W: h + apply("sum_to", x @ W, shape=(6,)),
    "broadcast_to": lambda x, h, W: apply("broadcast_to", rc.sum(x, axis=0), shape=("B", 6)) @ W + h,
    "expand_dims": lambda x, h, W: h + rc.sum(apply("expand_dims", x @ W, axes=(1,)), axis=-1),
    "pad": lambda x, h, W: rc.slice(apply("pad", x @ W, axis=-1, before=2, after=1), 1, 7) + h,
    "matmul_tn": lambda x, h, W: x @ apply("matmul_tn", x, h) + h,
    "sqrt": lambda x, h, W: rc.sqrt(1.0 + (x @ W + h) * (x @ W + h)),
    "rsqrt": lambda x, h, W: rc.rsqrt(0.5 + (x @ W) * (x @ W)) * h,
    "abs": lambda x, h, W: abs(x) @ W + h,
    "pow": lambda x, h, W: (1.0 + (x @ W + h) * (x @ W + h)) ** 1.5 * 0.3 + (2.0 + rc.tanh(h)) ** -0.5,
    "erf": lambda x, h, W: rc.erf(x @ W + h),
    "gelu": lambda x, h, W: rc.gelu(x @ W + h) + rc.gelu(x @ W - h, approximate="tanh"),
    "minimum": lambda x, h, W: rc.minimum(x @ W, h) + rc.minimum(x, 0.1),
    "maximum": lambda x, h, W: rc.maximum(x @ W, h) + rc.maximum(x, -0.1),
    "less": lambda x, h, W: (x < 0.0) * (x @ W) + h,
    "greater": lambda x, h, W: (x > 0.0) * (x @ W) + h,
    "less_equal": lambda x, h, W: (x <= 0.0) * (x @ W) + h,
    "greater_equal": lambda x, h, W: (x >= 0.0) * (x @ W) + h,
    "equal": lambda x, h, W: rc.equal(rc.relu(x), 0.0) * (x @ W) + h,
    "not_equal": lambda x, h, W: rc.not_equal(rc.relu(x), 0.0) * (x @ W) + h,
    # without a seed (as here) the inference meaning: the identity and zoneout's expectation
    # (tests/test_dropout.py draws masks)
    "dropout_mask": lambda x, h, W: rc.zoneout(rc.dropout(x, 0.3) @ W, h, 0.2, per="sequence"),
}
COMPARISONS = ("less", "greater", "less_equal", "greater_equal", "equal", "not_equal")
KINKS = ("relu", "max", "where", "abs", "minimum", "maximum") + COMPARISONS

# Ops with no place in a cell: sources, and ops that only unrolling or the grad pass introduce.
NOT_IN_CELLS = {
    "seq": "a source (a declaration)",
    "param": "a source (a declaration)",
    "static": "a source (a declaration): tests/test_static.py",
    "state": "a placeholder the DSL resolves",
    "input": "a Program's parameter",
    "zeros": "Program-only: output buffers, zero adjoints",
    "step": "Program-only: a step of a stacked input (full unroll)",
    "stack": "Program-only: stacked per-step outputs (full unroll)",
    "item": "Program-only: a part of a loop's results",
    "loop": "Program-only: the loop region",
    "select_active": "Program-only: the lengths mask (unroll)",
    "philox_mask": "Program-only: a step's dropout mask (unroll)",
    "shift": "Program-only: previous values of a state trace (grad)",
    "linear_scan": "Program-only: an affine recurrence over time (the linear_scan pass)",
    "last_step": "Program-only: a scan's final value (the linear_scan pass)",
    "max_bwd": "grad-only: the cotangent of max (no second derivative)",
}


def test_every_op_has_a_row():
    assert set(OPS) == set(USES) | set(NOT_IN_CELLS)


def _cell(op: str) -> rc.Cell:
    use = USES[op]

    @rc.cell(name=f"uses_{op}")
    def cell(x: Seq["B", 6], h: State["B", 6], W: Param[6, 6]):
        h = rc.tanh(use(x, h, W))
        return {"h": h, "y": h * 1.5}

    return cell


@pytest.mark.parametrize("op", sorted(USES))
@pytest.mark.parametrize("mode", ["loop", 2, "full"])
def test_op_forward_and_gradient(op, mode):
    cell = _cell(op)
    assert any(n.op == op for n in cell.nodes())
    args = random_args(cell, 4, 3, seed=1, inits=True)
    prog = rc.compile(cell, length="T", unroll=mode, dtype="float64")
    assert max_err(prog(**args), oracle(cell, **args, strict=True)) <= 1e-12
    if op in KINKS:  # kinks and steps (at x = 0): keep finite differences away from them
        args["x"] = np.where(np.abs(args["x"]) < 0.2, 0.5, args["x"])
    assert check_vjp(prog, args, seed=1) <= 1e-6


def test_every_cell_op_has_a_rule_and_declares_what_it_reads():
    assert set(USES) <= set(RULES)


def test_a_missing_rule_is_a_clear_error_naming_the_op():
    register(OpDef("cube", 1, OPS["tanh"].infer, lambda x: x**3, kind="elementwise"))
    try:

        @rc.cell
        def cubed(x: Seq["B", 2], h: State["B", 2]):
            h = apply("cube", x + h)
            return {"h": h}

        with pytest.raises(PassError, match=r"grad: no derivative rule for op 'cube'; add one in passes/grad_rules.py"):
            derive(cubed)
    finally:
        del OPS["cube"]
