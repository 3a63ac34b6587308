"""Data-parallel training of an rnncomp LSTM inside torch.nn.parallel.DistributedDataParallel (gloo).

    torchrun --standalone --nproc_per_node=2 examples/ddp_train.py [--steps 20] [--backend numba-cpu]

Each process takes its half of every batch; DDP all-reduces (averages) the gradients of the
rct.Recurrent's nn.Parameters like any module's. Before training, rank 0 checks that the gradients of
the first step equal those of one process on the whole batch (<= 1e-6, float32) and says so; the run
exits with status 1 if they do not.
"""

import argparse
import os
import sys

import torch
import torch.distributed as dist
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import rnncomp as rc  # noqa: E402
import rnncomp.torch as rct  # noqa: E402
from rnncomp import Param, Seq, State  # noqa: E402


@rc.cell
def lstm(x: Seq["B", 4], h: State["B", 8], c: State["B", 8], W: Param[4, 32], U: Param[8, 32], b: Param[32]):
    i, f, g, o = rc.split(x @ W + h @ U + b, 4)
    c = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
    h = rc.sigmoid(o) * rc.tanh(c)
    return {"h": h, "c": c, "y": h}


class Model(nn.Module):
    """An rnncomp LSTM and a linear read-out of its last state: a sequence regressor."""

    def __init__(self, backend: str | None):
        super().__init__()
        self.rnn = rct.Recurrent(lstm, backend=backend)
        self.head = nn.Linear(8, 1)

    def forward(self, x, lengths):
        return self.head(self.rnn(x, lengths=lengths)["h"]).squeeze(-1)


def batch(step: int, B: int = 8, T: int = 12):
    """A seeded batch (the same in every process): sequences, lengths, targets (the mean of x[..., 0])."""
    g = torch.Generator().manual_seed(step)
    x = torch.randn(T, B, 4, generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = (torch.arange(T)[:, None] < lengths[None, :]).float()
    target = (x[..., 0] * mask).sum(0) / lengths
    return x, lengths, target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--backend", default=None, help="rc.compile backend (default: numba-cpu)")
    args = ap.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    model = Model(args.backend)
    whole = Model(args.backend)
    whole.load_state_dict(model.state_dict())
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-2)
    status = 0
    for step in range(args.steps):
        x, lengths, target = batch(step)
        part = slice(rank * len(target) // world, (rank + 1) * len(target) // world)
        opt.zero_grad()
        loss = (ddp(x[:, part], lengths[part]) - target[part]).pow(2).mean()
        loss.backward()  # DDP averages the gradients over the processes here
        if step == 0 and rank == 0:
            ((whole(x, lengths) - target).pow(2).mean()).backward()
            err = max((p.grad - q.grad).abs().max().item() for p, q in zip(model.parameters(), whole.parameters()))
            ok = err <= 1e-6
            print(f"all-reduced gradients vs one process on the whole batch: max |diff| = {err:.2e}", flush=True)
            status = 0 if ok else 1
        opt.step()
        if rank == 0 and (step % 5 == 0 or step == args.steps - 1):
            print(f"step {step:3d}  loss {loss.item():.4f}", flush=True)
    flag = torch.tensor([status])
    dist.all_reduce(flag)
    dist.barrier()  # every process done with gloo before any tears it down
    dist.destroy_process_group()
    return int(flag.item() > 0)


if __name__ == "__main__":
    sys.exit(main())
