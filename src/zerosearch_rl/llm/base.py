"""Text generators behind the simulated search engine (and later the policy's HTTP generator).

A ``ChatLLM`` takes a batch of user messages and returns one ``Completion`` per message, in order.
It never raises for one failed request: the completion carries the error (naming the endpoint),
so the caller decides between failing loudly and serving a "search failed" document, and one bad
request never takes its neighbours down with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one batch. ``temperature == 0`` means greedy."""

    temperature: float = 0.8
    top_p: float = 1.0
    max_new_tokens: int = 600
    seed: int | None = None


@dataclass(frozen=True)
class Completion:
    """The answer to one message: ``text``, or ``error`` when it failed after every retry."""

    text: str | None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class ChatLLM(Protocol):
    """Anything that answers user messages in batches (HTTP server, in-process model)."""

    def generate(self, messages: Sequence[str], sampling: Sampling) -> list[Completion]: ...

    def close(self) -> None: ...
