"""The noise curriculum: how likely a simulated search is to return noisy documents at each step.

ZeroSearch raises the noise probability over training with an exponential schedule
(docs/design.md, §The noise draw)::

    p(i) = p_s + (b**(i/m) - 1) / (b - 1) * (p_e - p_s)    for i < m,    p(i) = p_e for i >= m

so early steps are almost always useful (the policy learns the format and to search) and noise
grows fastest near the end (the policy learns to cope with bad results). Whether one particular
search call is noisy is a pure function of (run seed, step, sample id, turn): reruns and resumed
runs draw exactly the same decisions, and the global RNG is never touched. Light module: no torch.
"""

from __future__ import annotations

import hashlib
import math
import typing
from dataclasses import dataclass
from typing import Literal

NoiseScheduleKind = Literal["exponential", "linear", "constant", "step"]
SCHEDULES: tuple[str, ...] = typing.get_args(NoiseScheduleKind)


@dataclass(frozen=True)
class NoiseSchedule:
    """A schedule of the noise probability over training steps.

    ``kind``: one of ``SCHEDULES``. ``start``/``end``: p_s and p_e, in [0, 1] (``constant`` holds
    ``end`` from the first step). ``steps``: m, the
    step at which ``end`` is reached. ``base``: b of the exponential schedule (b > 0, b != 1).
    ``stairs``: for ``step``, the number of equal jumps from ``start`` to ``end`` over ``steps``
    (1 = a single jump at ``steps``).
    """

    kind: str = "exponential"
    start: float = 0.0
    end: float = 0.5
    steps: int = 203
    base: float = 4.0
    stairs: int = 1

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown noise schedule {self.kind!r}; valid: {', '.join(SCHEDULES)}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"noise {name} must be a probability in [0, 1], got {value}")
        if self.steps < 1:
            raise ValueError(f"noise schedule steps must be >= 1, got {self.steps}")
        if self.kind == "exponential" and (self.base <= 0 or self.base == 1):
            raise ValueError(f"exponential schedule base must be > 0 and != 1, got {self.base}")
        if self.stairs < 1:
            raise ValueError(f"step schedule stairs must be >= 1, got {self.stairs}")

    def probability(self, step: int) -> float:
        """The noise probability at training step ``step`` (0-based; ``end`` from ``steps`` on)."""
        if step < 0:
            raise ValueError(f"training step must be >= 0, got {step}")
        if self.kind == "constant":
            return self.end
        if step >= self.steps:
            return self.end
        frac = step / self.steps
        if self.kind == "exponential":
            progress = (self.base**frac - 1.0) / (self.base - 1.0)
        elif self.kind == "linear":
            progress = frac
        else:  # step
            progress = math.floor(frac * self.stairs) / self.stairs
        return self.start + progress * (self.end - self.start)


def unit_draw(*key: object) -> float:
    """A uniform number in [0, 1) that depends only on ``key`` (stable across processes/platforms)."""
    digest = hashlib.blake2b(repr(key).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def is_noisy(seed: int, step: int, sample_id: str | int, turn: int, p: float) -> bool:
    """Draw the useful/noisy decision for one search call.

    Pure and reproducible: the same (seed, step, sample_id, turn) always gives the same draw, so
    a resumed run serves the same kinds of documents. ``p = 0`` is never noisy, ``p = 1`` always.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"noise probability must be in [0, 1], got {p}")
    return unit_draw("noise", int(seed), int(step), str(sample_id), int(turn)) < p
