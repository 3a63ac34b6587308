"""Every backend's lowering table covers every op of the table: an entry, or an explicit "not supported
here" with a reason; an op without either is a clear error naming the op and the backend (never a
bare KeyError), and so is a scalar entry asking for a helper function the backend lacks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("numba")

import rnncomp as rc  # noqa: E402
from ir import OPS, Node, TensorType  # noqa: E402
from ir.dtypes import DType  # noqa: E402
from rnncomp import Param, Seq, State  # noqa: E402
from rnncomp.backends import numpy_interp  # noqa: E402
from rnncomp.backends.numba_cpu import NumbaBackendError, emit  # noqa: E402
from rnncomp.backends.numba_cpu.codegen import HELPERS as CPU_HELPERS  # noqa: E402
from rnncomp.backends.numba_cpu.codegen import Generator  # noqa: E402
from rnncomp.backends.numba_cuda import CudaBackendError, generate_source  # noqa: E402
from rnncomp.backends.numba_cuda import codegen as cuda_codegen  # noqa: E402
from rnncomp.backends.numba_cuda import kernels as cuda_kernels  # noqa: E402
from rnncomp.backends.numba_cuda.context import Context  # noqa: E402

CUDA_KERNELS = set(cuda_kernels.KERNELS) | set(cuda_codegen.GEMMS) | set(cuda_codegen.GATHERS)
CUDA_TABLE = set(emit.SCALARS) | set(emit.VIEWS) | CUDA_KERNELS


def test_numpy_runs_every_op_or_says_why_not():
    for name, op in OPS.items():
        supported = op.numpy is not None or name in numpy_interp.HANDLED
        assert supported != (name in numpy_interp.UNSUPPORTED), name


def test_numba_cpu_has_an_entry_for_every_op_or_says_why_not():
    for name in OPS:
        supported = name in emit.EMIT or name in emit.BOUND
        assert supported != (name in emit.UNSUPPORTED), name


def test_numba_cuda_has_an_entry_for_every_op_or_says_why_not():
    for name in OPS:
        supported = name in CUDA_TABLE or name in emit.BOUND
        assert supported != (name in cuda_kernels.UNSUPPORTED), name
    # numba-cuda cuts blocks into units as numba-cpu does: an op numba-cpu writes as a kernel of its
    # own must be a kernel, GEMM or gather on numba-cuda too.
    for name in emit.KERNELS:
        assert name in CUDA_KERNELS, name


class _Recorder:
    """Stands in for a backend's generator while a scalar entry writes its expression."""

    def __init__(self):
        self.helpers: set[str] = set()

    def lit(self, value: float, dtype) -> str:
        return repr(float(value))

    def read(self, node: Node, idx) -> str:
        return f"{node.name}[{', '.join(idx)}]"

    def row_base(self, node: Node) -> None:
        return None


ATTRS = {
    "cast": [{"to": DType.f32}],
    "pow": [{"exponent": 1.5}, {"exponent": 0.5}],
    "gelu": [{"tanh_approx": True}],
    "philox_mask": [{"p": 0.5, "shape": (2, 3)}, {"p": 0.1, "shape": (3,), "sequence": True, "zoneout": True}],
}


def _scalar_nodes(op: str, dtype: DType) -> list[Node]:
    """`op` over inputs, once per attribute set a helper depends on (defaults, and ATTRS's)."""
    t = TensorType(dtype, (2, 3))
    ins = [Node("input", (), {}, t, f"a{k}") for k in range(OPS[op].arity or 1)]
    out = []
    for given in ATTRS.get(op, []) + ([{}] if op not in ("cast", "pow", "philox_mask") else []):
        attrs = {**{k: a.default for k, a in OPS[op].attrs.items()}, **given}
        out.append(Node(op, [rc.dsl.Use(i) for i in ins], attrs, t))
    return out


@pytest.mark.parametrize("dtype", [DType.f32, DType.f64])
def test_every_helper_a_scalar_entry_calls_exists_on_both_backends(dtype):
    for op, rule in emit.SCALARS.items():
        if op == "select_active":
            continue  # no helper: a comparison of the step with lengths
        for n in _scalar_nodes(op, dtype):
            args = [f"a{k}" for k in range(len(n.inputs))]
            for fn, table in ((Generator.fn, CPU_HELPERS), (Context.fn, cuda_kernels.HELPERS)):
                rec = _Recorder()
                rec.fn = lambda name, dt, rec=rec, fn=fn: fn(rec, name, dt)
                rule.expr(rec, n, args, ("i", "j"))
                assert rec.helpers <= set(table), (op, n.attrs, rec.helpers - set(table))


def test_each_helper_has_one_definition_both_backends_use():
    """numba-cpu's compiled helpers are common/helpers.py's functions under njit; numba-cuda writes
    the same functions' source as device functions: a helper is written once."""
    import inspect

    from rnncomp.backends.common import helpers
    from rnncomp.backends.numba_cpu import kernels as cpu_kernels

    shared = [h for h, mod in CPU_HELPERS.items() if mod == "kernels"]
    assert shared and set(shared) <= set(helpers.HELPERS)
    for name in shared:
        assert getattr(cpu_kernels, name).py_func is helpers.HELPERS[name], name
    assert set(cuda_kernels.HELPERS) == set(helpers.HELPERS)
    for name, f in helpers.HELPERS.items():  # after the constants and functions it calls (PRELUDE), if any
        assert cuda_kernels.HELPERS[name].endswith("@cuda.jit(device=True)\n" + inspect.getsource(f)), name
        assert (name in helpers.PRELUDE) == (
            cuda_kernels.HELPERS[name] != "@cuda.jit(device=True)\n" + inspect.getsource(f)
        )


def _prog(cell: rc.Cell):
    return list(rc.compile(cell, length=3, unroll="loop", backend="numpy").stages().values())[-1]


@rc.cell
def soft(x: Seq["B", 4], h: State["B", 4], W: Param[4, 4]):
    h = rc.softmax(x @ W + h)
    return {"h": h}


def test_an_op_with_a_cpu_entry_only_is_named_on_cuda(monkeypatch):
    monkeypatch.delitem(cuda_kernels.KERNELS, "softmax")
    assert "softmax" in emit.EMIT  # numba-cpu has it
    with pytest.raises(
        CudaBackendError, match=r"numba-cuda has no kernel for op 'softmax' \(node h\S* : f32\[B, 4\]\); add"
    ):
        generate_source(_prog(soft), "float32")


def test_an_op_declared_unsupported_is_named_with_the_reason(monkeypatch):
    monkeypatch.delitem(cuda_kernels.KERNELS, "softmax")
    monkeypatch.setitem(cuda_kernels.UNSUPPORTED, "softmax", "no kernel yet (a test)")
    with pytest.raises(
        CudaBackendError, match=r"numba-cuda does not support op 'softmax' \(node h\S* : .*\): no kernel yet"
    ):
        generate_source(_prog(soft), "float32")
    monkeypatch.delitem(emit.EMIT, "softmax")
    monkeypatch.setitem(emit.UNSUPPORTED, "softmax", "no code yet (a test)")
    with pytest.raises(
        NumbaBackendError, match=r"numba-cpu does not support op 'softmax' \(node h\S* : .*\): no code yet"
    ):
        rc.compile(soft, backend="numba-cpu").source()


def test_a_missing_device_helper_is_named(monkeypatch):
    @rc.cell
    def gate(x: Seq["B", 4], h: State["B", 4]):
        h = rc.sigmoid(x + h)
        return {"h": h}

    monkeypatch.delitem(cuda_kernels.HELPERS, "sigmoid_f32")
    with pytest.raises(CudaBackendError, match="numba-cuda has no device function 'sigmoid_f32' .* add it to HELPERS"):
        generate_source(_prog(gate), "float32")


def test_the_numpy_backend_names_an_op_it_cannot_run(monkeypatch):
    monkeypatch.setitem(OPS, "tanh", dataclasses.replace(OPS["tanh"], numpy=None))

    @rc.cell
    def elman(x: Seq["B", 4], h: State["B", 4]):
        h = rc.tanh(x + h)
        return {"h": h}

    prog = rc.compile(elman, length=2, unroll="full", backend="numpy")
    with pytest.raises(numpy_interp.NumpyBackendError, match="numpy backend does not support op 'tanh' .* no `numpy`"):
        prog(x=np.zeros((2, 3, 4), np.float32))
    with pytest.raises(numpy_interp.NumpyBackendError, match="does not support op 'seq': a cell's declaration"):
        numpy_interp._eval([Node("seq", (), {}, TensorType(DType.f32, ()), "x")], {}, {})
