"""Train a speaker classifier on UCI Japanese Vowels: an LSTM cell written in rnncomp, trained in PyTorch.

    python examples/train_vowels.py [--cell lstm|gru] [--epochs 30] [--compare] [--plot vowels.png]

The data (9 speakers, 12 LPC cepstrum coefficients per frame, 7-29 frames per utterance, 270 training and
370 test utterances) come from the copy inside sktime's wheel. The cell is one time step written in the
DSL; `rct.Recurrent` compiles it (numba-cpu) and runs it inside autograd; every batch runs with
`lengths=`, so each row stops at its own last frame and the class is read from that row's own final
state by a linear layer. torch.optim.Adam trains both. `--compare` trains the same model as `nn.LSTM`
(or `nn.GRU`) on a PackedSequence, from the same initial weights in the same data order, and prints both
runs' epoch times and accuracies. Seeded: the same command prints the same numbers.
"""

import argparse
import difflib
import os
import sys
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
from _vowels_data import EXTRA, MissingExtra, Split, load

import rnncomp as rc
from rnncomp import Param, Seq, State

CLASSES = 9


def lstm_cell(I: int, H: int):  # noqa: E741
    """One LSTM step, gates in PyTorch's order i, f, g, o, one fused gate GEMM and a single bias."""

    @rc.cell(name="lstm")
    def lstm(x: Seq["B", I], h: State["B", H], c: State["B", H], Wx: Param[I, 4 * H], Wh: Param[H, 4 * H],
             b: Param[4 * H]):  # fmt: skip
        i, f, g, o = rc.split(x @ Wx + h @ Wh + b, 4)
        c = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
        h = rc.sigmoid(o) * rc.tanh(c)
        return {"h": h, "c": c}

    return lstm


def gru_cell(I: int, H: int):  # noqa: E741
    """One GRU step in PyTorch's formulation (gates r, z, n; the hidden bias of n inside r * (...))."""

    @rc.cell(name="gru")
    def gru(x: Seq["B", I], h: State["B", H], W_ih: Param[I, 3 * H], W_hh: Param[H, 3 * H], b_ih: Param[3 * H],
            b_hh: Param[3 * H]):  # fmt: skip
        x_r, x_z, x_n = rc.split(x @ W_ih + b_ih, 3)
        h_r, h_z, h_n = rc.split(h @ W_hh + b_hh, 3)
        r = rc.sigmoid(x_r + h_r)
        z = rc.sigmoid(x_z + h_z)
        n = rc.tanh(x_n + r * h_n)
        return {"h": (1 - z) * n + z * h}

    return gru


CELLS = {"lstm": lstm_cell, "gru": gru_cell}


def check_cell(name: str) -> str:
    """`name` if it is a known cell, else a SystemExit listing the known ones."""
    if name in CELLS:
        return name
    near = difflib.get_close_matches(name, list(CELLS), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise SystemExit(f"train_vowels.py: --cell {name!r} is not a cell of this example{hint}; known cells: "
                     + ", ".join(CELLS))  # fmt: skip


# ---------------------------------------------------------------- the two models


class RnncompModel:
    """rct.Recurrent over the DSL cell, then a linear read-out of each row's final h."""

    def __init__(self, kind: str, hidden: int, unroll):
        import torch

        import rnncomp.torch as rct

        self.layer = rct.Recurrent(CELLS[kind](12, hidden), length="T", unroll=unroll, dtype="float32")
        self.readout = torch.nn.Linear(hidden, CLASSES)
        self.params = list(self.layer.parameters()) + list(self.readout.parameters())

    def __call__(self, x, lengths):
        return self.readout(self.layer(x, lengths=lengths)["h"])


class TorchModel:
    """nn.LSTM / nn.GRU on a PackedSequence with the rnncomp model's weights, the same read-out."""

    def __init__(self, kind: str, twin: RnncompModel):
        import torch

        layer, hidden = twin.layer, twin.readout.in_features
        self.rnn = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(12, hidden)
        self.readout = torch.nn.Linear(hidden, CLASSES)
        with torch.no_grad():
            if kind == "lstm":  # x @ Wx is x @ weight_ih.T; the cell's one bias is bias_ih (bias_hh stays 0)
                self.rnn.weight_ih_l0.copy_(layer.Wx.T)
                self.rnn.weight_hh_l0.copy_(layer.Wh.T)
                self.rnn.bias_ih_l0.copy_(layer.b)
                self.rnn.bias_hh_l0.zero_()
                self.rnn.bias_hh_l0.requires_grad_(False)  # else Adam moves the sum of two biases twice as fast
            else:
                self.rnn.weight_ih_l0.copy_(layer.W_ih.T)
                self.rnn.weight_hh_l0.copy_(layer.W_hh.T)
                self.rnn.bias_ih_l0.copy_(layer.b_ih)
                self.rnn.bias_hh_l0.copy_(layer.b_hh)
            self.readout.load_state_dict(twin.readout.state_dict())
        self.params = [p for p in self.rnn.parameters() if p.requires_grad] + list(self.readout.parameters())

    def __call__(self, x, lengths):
        from torch.nn.utils.rnn import pack_padded_sequence

        _, h = self.rnn(pack_padded_sequence(x, lengths, enforce_sorted=False))
        return self.readout((h[0] if isinstance(h, tuple) else h)[0])


# ---------------------------------------------------------------- training


@dataclass
class History:
    name: str
    loss: list[float] = field(default_factory=list)  # mean training loss per epoch
    accuracy: list[float] = field(default_factory=list)  # test accuracy after each epoch
    seconds: list[float] = field(default_factory=list)  # wall time of each epoch's training steps


def batches(split: Split, order, size: int):
    """(x, lengths, y) tensors of each batch in `order`, x cut at the batch's longest row."""
    import torch

    for s in range(0, len(order), size):
        idx = order[s : s + size]
        lengths = split.lengths[idx]
        x = np.ascontiguousarray(split.x[: lengths.max(), idx])
        yield torch.from_numpy(x), torch.from_numpy(lengths), torch.from_numpy(split.y[idx])


def accuracy(model, split: Split) -> float:
    import torch

    with torch.no_grad():
        logits = model(torch.from_numpy(split.x), torch.from_numpy(split.lengths))
    return float((logits.argmax(1).numpy() == split.y).mean())


def train(model, name: str, train_set: Split, test_set: Split, orders, args, tqdm) -> History:
    import torch

    opt = torch.optim.Adam(model.params, lr=args.lr)
    hist = History(name)
    n_batches = -(-len(train_set.y) // args.batch)
    for epoch, order in enumerate(orders, 1):
        desc = f"{name} epoch {epoch:>2}/{args.epochs}"
        bar = tqdm(batches(train_set, order, args.batch), total=n_batches, desc=desc, leave=epoch == args.epochs,
                   unit="batch", file=sys.stdout)  # fmt: skip
        total, seen, t0 = 0.0, 0, time.perf_counter()
        for x, lengths, y in bar:
            loss = torch.nn.functional.cross_entropy(model(x, lengths), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, seen = total + loss.item() * len(y), seen + len(y)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        hist.seconds.append(time.perf_counter() - t0)
        hist.loss.append(total / seen)
        hist.accuracy.append(accuracy(model, test_set))
        bar.set_postfix(loss=f"{total / seen:.4f}", test_acc=f"{hist.accuracy[-1]:.3f}")
        bar.close()
    return hist


def plot(histories: list[History], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for i, h in enumerate(histories):
        epochs = range(1, len(h.loss) + 1)
        ax1.plot(epochs, h.loss, "o-" if i == 0 else "s--", ms=3, label=h.name)
        ax2.plot(epochs, [100 * a for a in h.accuracy], "o-" if i == 0 else "s--", ms=3, label=h.name)
    ax1.set_yscale("log")
    ax1.set(xlabel="epoch", ylabel="training loss (cross-entropy, mean over the epoch)")
    ax2.set(
        xlabel="epoch",
        ylabel="test accuracy (%)",
        ylim=(max(0, 100 * min(min(h.accuracy) for h in histories) - 5), 100),
    )
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="lstm", help="lstm (default) or gru")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--unroll", default="loop", help="rnncomp's unroll mode: loop, an int k, or full")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads for rnncomp (Numba) and PyTorch (default 1: at batch 32, hidden 64 a second "
                    "thread does not pay, and on a shared machine it waits for a busy core at every step)")  # fmt: skip
    ap.add_argument("--compare", action="store_true", help="also train nn.LSTM/nn.GRU on a PackedSequence")
    ap.add_argument("--plot", default="vowels_training.png", metavar="PNG", help="the figure's path")
    args = ap.parse_args(argv)
    check_cell(args.cell)
    if args.unroll not in ("loop", "full"):
        args.unroll = (
            int(args.unroll) if args.unroll.isdigit() else ap.error(f"--unroll {args.unroll}: loop, full or an int")
        )
    return args


def main(argv=None) -> None:
    args = parse(argv)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    train_set, test_set = load()  # before torch: a missing sktime is said first
    try:
        import matplotlib  # noqa: F401
        import torch
        from tqdm import tqdm
    except ImportError as e:
        raise MissingExtra(f"train_vowels.py needs the examples extra ({e}): {EXTRA}") from None
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    orders = [rng.permutation(len(train_set.y)) for _ in range(args.epochs)]  # one data order for both runs
    print(f"JapaneseVowels: {len(train_set.y)} training and {len(test_set.y)} test utterances, "
          f"{train_set.lengths.min()}-{max(train_set.x.shape[0], test_set.x.shape[0])} frames of 12 coefficients, "
          f"{CLASSES} speakers")  # fmt: skip
    ours = RnncompModel(args.cell, args.hidden, args.unroll)
    print(f"cell {args.cell} (hidden {args.hidden}) compiled by rnncomp as {ours.layer.program()!r}")
    models = [(f"rnncomp {args.cell}", ours)]
    if args.compare:
        theirs = TorchModel(args.cell, ours)
        x, lengths = torch.from_numpy(test_set.x), torch.from_numpy(test_set.lengths)
        with torch.no_grad():
            diff = float((ours(x, lengths) - theirs(x, lengths)).abs().max())
        print(f"same initial weights: max |rnncomp - nn.{type(theirs.rnn).__name__}| over the test logits = {diff:.1e}")
        models.append((f"nn.{type(theirs.rnn).__name__} packed", theirs))
    histories = []
    for name, model in models:
        t0 = time.perf_counter()
        h = train(model, name, train_set, test_set, orders, args, tqdm)
        total = time.perf_counter() - t0
        rest = f"{np.median(h.seconds[1:]):.3f} s" if len(h.seconds) > 1 else "-"
        print(f"{name}: test accuracy {100 * h.accuracy[-1]:.1f}% after {args.epochs} epochs; {total:.1f} s in all, "
              f"epoch 1 {h.seconds[0]:.2f} s (includes compiling), later epochs median {rest}")  # fmt: skip
        histories.append(h)
    if args.compare:
        a, b = histories
        print(
            "epoch times (s):  " + "  ".join(f"{h.name} {np.median(h.seconds[1:] or h.seconds):.3f}" for h in histories)
        )
        print(f"test accuracy:    {a.name} {100 * a.accuracy[-1]:.1f}%   {b.name} {100 * b.accuracy[-1]:.1f}%")
    title = f"JapaneseVowels, {args.cell} hidden {args.hidden}, Adam lr {args.lr}, batch {args.batch}, seed {args.seed}"
    plot(histories, args.plot, title)
    print(f"figure: {os.path.abspath(args.plot)}")


if __name__ == "__main__":
    main()
