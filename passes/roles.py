"""What each named array between the training forward, the backward program and the runtime holds,
as a typed record: a `Slot` is a role and the forward name it belongs to.

The grad pass names the backward cell's inputs, the forward's extra outputs and the shadow states
it adds; the unroll pass names the traces; the training runtime passes cotangents by name. Each of
them makes the name from a Slot (`Slot(Role.COTANGENT, "y").name == "grad@y"`) and, where it must
know what a name holds, looks its Slot up (GradPlan.slots): no code decides by a name's spelling.
The spellings stay readable in printed IR (`trace@h`, `dstate@c`, `h@d1`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Role(Enum):
    """What an array holds, relative to a forward name `of` (a state, an output or a seq)."""

    PREV = "prev"  # state `of` one step back, at every step: a seq of the backward cell
    TRACE = "trace"  # state `of` at every step: an extra output of the training forward
    RESIDUAL = "res"  # forward value number `of`, saved at every step
    COTANGENT = "grad"  # the cotangent of per-step output `of`, at every step
    DSTATE = "dstate"  # the cotangent of state `of` (the final state's given in; the init's out)
    SHADOW = "shadow"  # a state holding `of` (a state or a seq) `depth` steps further back
    # A state of the backward cell (init zeros) summing over the steps so far: static `of`'s cotangent
    # (depth 0), or the output cotangent of the `depth`-th matmul(of, W) of a static (a GEMM after the loop).
    SUM = "sum"
    # A state of the backward cell (init zeros) summing, per row, piece `depth` of param `of`'s
    # per-step cotangent over the steps so far (a bias's: passes/row_sums.py).
    ROW_SUM = "rowsum"


@dataclass(frozen=True)
class Slot:
    """A role and the forward name it belongs to; `name` is its one spelling."""

    role: Role
    of: str
    depth: int = 0  # a shadow's: it holds `of` at t - depth - 1 when read at delay 1
    of_seq: bool = False  # a shadow of a sequence input (its init is zeros)

    @property
    def name(self) -> str:
        if self.role is Role.SHADOW:
            return f"{self.of}@d{self.depth}"
        if self.role is Role.SUM and self.depth:
            return f"sum@{self.of}@{self.depth}"
        if self.role is Role.ROW_SUM:
            return f"rowsum@{self.of}@{self.depth}"
        return f"{self.role.value}@{self.of}"


def cotangent(output: str) -> str:
    """The name of the cotangent input of per-step output `output` (`grad@y`)."""
    return Slot(Role.COTANGENT, output).name


def dstate(state: str) -> str:
    """The name of state `state`'s cotangent (`dstate@h`): an input and an output of the backward."""
    return Slot(Role.DSTATE, state).name


def trace(state: str) -> str:
    """The name of state `state`'s per-step trace (`trace@h`)."""
    return Slot(Role.TRACE, state).name
