"""Mixed precision of the policy's passes: float32 weights, bf16 matrix products under ``torch.autocast``.

On a CPU with AMX (``amx_bf16`` in /proc/cpuinfo) bf16 matrix products run several times faster than float32,
while bf16 *weights* would make AdamW's small updates vanish in rounding; autocast keeps the weights and the
optimizer in float32 and casts per operation, and torch keeps the softmax and log-softmax in float32
(``benchmarks/bench_autocast.py`` measures the speed and how far the log-probs move).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import get_args

import torch

from zerosearch_rl.config import Autocast


def autocast(mode: Autocast, device: torch.device | str = "cpu") -> AbstractContextManager[object]:
    """The context the policy's forward passes run in: nothing for ``none``, bf16 autocast on ``device``'s type."""
    if mode == "none":
        return nullcontext()
    if mode == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    raise ValueError(f"autocast {mode!r} is not valid; valid: {', '.join(get_args(Autocast))}")
