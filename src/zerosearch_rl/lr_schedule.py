"""Learning-rate schedules as a factor on the base rate, for ``torch.optim.lr_scheduler.LambdaLR``
(the RL trainer's ``trainer.lr_schedule``, the world's pretraining). No torch import."""

from __future__ import annotations

import math
import typing
from typing import Literal

LrSchedule = Literal["constant", "linear", "cosine"]
LR_SCHEDULES: tuple[str, ...] = typing.get_args(LrSchedule)


def lr_multiplier(step: int, total_steps: int, warmup_steps: int = 0, schedule: str = "constant",
                  min_ratio: float = 0.0) -> float:
    """The factor on the base learning rate for optimizer step ``step`` (0-based): a linear warm-up reaching 1 at
    step ``warmup_steps - 1``, then constant, or a linear or cosine decay from 1 (right after the warm-up)
    to ``min_ratio`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    if schedule == "linear":
        shape = 1.0 - progress
    elif schedule == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"unknown lr schedule {schedule!r}; valid: {', '.join(LR_SCHEDULES)}")
    return min_ratio + (1.0 - min_ratio) * shape
