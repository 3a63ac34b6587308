"""rnncomp inside PyTorch: compiled cells as `nn.Module`s over registered custom ops.

    import rnncomp.torch as rct
    layer = rct.Recurrent(cell, length="T", unroll="loop", dtype="float32")  # any rc.compile option
    out = layer(x, lengths=lengths, h=h0)   # a dict of tensors, keyed as prog(...) keys them
    net = rct.from_torch(nn.LSTM(16, 32, num_layers=2, bidirectional=True))  # the same weights

Needs PyTorch (`pip install -e '.[torch]'`); `import rnncomp` alone never imports it.
"""

try:
    import torch as _torch  # noqa: F401
except ImportError as e:  # pragma: no cover  (the test environment has torch)
    raise ImportError("rnncomp.torch needs PyTorch, which is an optional extra: pip install -e '.[torch]'") from e

from .compose import Bidirectional, Stack
from .from_torch import ImportedRNN, from_torch
from .init import default_init, feeds
from .recurrent import Recurrent

__all__ = ["Bidirectional", "ImportedRNN", "Recurrent", "Stack", "default_init", "feeds", "from_torch"]
