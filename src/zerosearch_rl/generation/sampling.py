"""The policy's sampling settings, read by every ``TokenGenerator`` (the simulator's LLM clients have their own,
``llm.base.Sampling``, which also carries a token budget: a policy's budget is per prompt, an argument of
``generate``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sampling:
    """How the policy samples one batch. ``temperature == 0`` means greedy. The defaults are those of
    ``rollout.temperature`` and ``rollout.top_p``. ``top_p=None`` leaves nucleus sampling unset (the in-process
    generator samples from the whole distribution, a server applies its own default); ``seed=None``: the
    generator's own randomness."""

    temperature: float = 1.0
    top_p: float | None = 1.0
    seed: int | None = None
