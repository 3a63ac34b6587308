"""The kernel program (ir/kernel_program.py): the `fuse` and `plan` passes on every example, its
printer, its verifier's errors, `rnncomp dump --after fuse|plan`, and that the printers follow it."""

from __future__ import annotations

import re

import pytest

import rnncomp as rc
from ir import VerifyError
from ir.kernel_program import Buffer, KernelProgram, Place, verify_kernel_program
from passes.fuse import fuse
from passes.plan import plan
from rnncomp.backends.numba_cuda import generate_source as cuda_source
from rnncomp.cli import main
from tests.support import EXAMPLES, cell_of

MODES = [("loop", "T", None), (2, "T", None), ("full", 3, 3)]


def final(example: str, unroll="loop", length="T", T=None, grad=False):
    prog = rc.compile(cell_of(example), length=length, unroll=unroll, backend="numpy")
    return list(prog.stages(grad=grad, T=T).values())[-1]


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("mode", MODES, ids=["loop", "unroll2", "full3"])
@pytest.mark.parametrize("example", EXAMPLES)
def test_fuse_and_plan_verify_on_every_example(example, mode, grad):
    unroll, length, T = mode
    prog = final(example, unroll, length, T, grad)
    fused, planned = fuse(prog), plan(fuse(prog))
    verify_kernel_program(fused)
    verify_kernel_program(planned)
    assert not fused.planned and planned.planned
    for b in planned.blocks():  # every value a unit makes has a place; a buffer's values never overlap
        assert all(id(r) in b.places for u in b.units for r in u.results)
    # The CUDA printer (one kernel per unit when no loop is persistent) follows the kernel program.
    src = cuda_source(prog, "float32", mode=False)
    units = [u for b in fused.blocks() for u in b.units]
    for kind in ("fused", "gemm"):
        assert len(re.findall(rf"^def k\d+_{kind}\(", src, re.M)) == sum(u.kind == kind for u in units), kind


def test_elman_loop_as_text():
    text = str(plan(fuse(final("elman"))))
    assert text.startswith("kernel program elman(B, T) {\n  given x, W, U, b, h\n")
    assert "  u0 gemm %0 = matmul(x, W) : f32[T, B, 16]  <- x, W  -> %0 in buf0\n" in text
    assert '[forward: "T" iterations of 1 step(s) from step 0]' in text
    assert "    u1 fused [B, 16] {%1, %2, h@0}  <- xh1@0, %0, b  -> h@0 in state 0 (in place)\n" in text
    assert "    in place: state 0\n" in text and "    buf0 f32[B, 16]: %0 [u0..u1]\n" in text
    assert "  u1 kernel %1 = zeros() : f32[T, B, 16]  -> %1 constant\n" in text  # read as 0, never stored
    assert str(fuse(final("elman"))).count(" -> ") == 0  # places come with plan


def test_buffers_are_reused_between_steps_of_a_partial_unroll():
    body = plan(fuse(final("lstm", 2))).main.units[2].body
    (gates, state) = body.buffers
    assert [(lo, hi) for _, lo, hi in gates.values] == [(0, 1), (2, 3)]  # both steps' x@W + h@U, one buffer
    assert body.in_place == {0, 1}


def test_views_of_a_group_are_its_own_arithmetic():
    body = fuse(final("lstm")).main.units[2].body
    fused = [u for u in body.units if u.kind == "fused"]
    assert len(fused) == 1 and sum(n.op == "split" for n in fused[0].nodes) == 4
    assert not any(u.kind == "view" for u in body.units)


def _swap_first_units(kp: KernelProgram) -> KernelProgram:
    body = kp.main.units[2].body
    body.units[0], body.units[1] = body.units[1], body.units[0]
    return kp


def test_verifier_names_a_unit_reading_too_early():
    with pytest.raises(VerifyError, match=r"unit u0 \(fused\) reads %0 before the unit computing it"):
        verify_kernel_program(_swap_first_units(fuse(final("elman"))))


def test_verifier_names_a_node_computed_twice_or_never():
    kp = fuse(final("elman"))
    kp.main.units.append(kp.main.units[0])
    with pytest.raises(VerifyError, match=r"node %0 is computed twice \(unit u5\)"):
        verify_kernel_program(kp)
    kp = fuse(final("elman"))
    del kp.main.units[0]
    with pytest.raises(VerifyError, match=r"node %0 \(matmul\) is computed by no unit"):
        verify_kernel_program(kp)
    kp = fuse(final("elman"))
    kp.main.units[0].kind = "magic"
    with pytest.raises(VerifyError, match=r"unit u0 has unknown kind 'magic'"):
        verify_kernel_program(kp)


def test_verifier_names_overlapping_values_of_a_buffer():
    kp = plan(fuse(final("lstm", 2)))
    body = kp.main.units[2].body
    gates = body.buffers[0]
    first, lo, hi = gates.values[0]
    gates.values[0] = (first, lo, 2)  # now alive when the second step's product is made
    with pytest.raises(VerifyError, match=r"buf0 holds %0 \(u0..u2\) and %14 \(from u2\) at once"):
        verify_kernel_program(kp)
    body.buffers.append(Buffer(body.buffers[1].type, [(gates.values[1][0], 2, 3)]))
    gates.values[0] = (first, lo, hi)
    with pytest.raises(VerifyError, match=r"buf2 is f32\[B, 32\] but holds %14 : f32\[B, 128\]"):
        verify_kernel_program(kp)


def test_verifier_names_a_result_without_a_place():
    kp = plan(fuse(final("elman")))
    del kp.main.places[id(kp.main.units[0].results[0])]
    with pytest.raises(VerifyError, match=r"result %0 of unit u0 has no place"):
        verify_kernel_program(kp)
    assert Place("given").kind == "given"


def test_dump_after_fuse_and_plan(capsys):
    assert main(["dump", "examples/elman.py", "--after", "fuse"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("kernel program elman(B, T) {") and "u1 fused [B, 16]" in out and " -> " not in out
    assert main(["dump", "examples/elman.py", "--after", "plan", "--grad"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("kernel program elman_grad(B, T) {") and "(in place)" in out and "buf0 " in out
    assert main(["dump", "examples/elman.py", "--after", "all"]) == 0
    dumps = re.findall(r"IR Dump After (\S+) ", capsys.readouterr().out)
    assert dumps[-2:] == ["fuse", "plan"]
