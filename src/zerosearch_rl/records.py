"""The records passed between modules: documents, search requests, QA examples and trajectories.

Light module: no torch. Token ids and log-probs are plain lists so that a trajectory can be built by
any generator (transformers, vLLM, an HTTP server) and turned into tensors only by the trainer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


@dataclass(frozen=True)
class Document:
    """One search result. ``title`` may be empty (simulated documents often have none)."""

    id: str
    title: str
    text: str
    score: float | None = None
    #: The whole result page as its engine writes it for the original's observation format, the same on every
    #: document of a page (``protocol.render_zerosearch``); ``None`` for engines that return documents only.
    page: str | None = None

    @property
    def contents(self) -> str:
        """The Search-R1 / FlashRAG ``contents`` form: ``"Title"`` on the first line, then the text."""
        return f'"{self.title}"\n{self.text}' if self.title else self.text

    @classmethod
    def from_contents(cls, id: str, contents: str, score: float | None = None) -> Document:
        """Parse the ``contents`` form back into title and text (the title is the first line, unquoted)."""
        first, sep, rest = contents.partition("\n")
        if sep and len(first) >= 2 and first.startswith('"') and first.endswith('"'):
            return cls(id=id, title=first[1:-1], text=rest.strip(), score=score)
        return cls(id=id, title="", text=contents.strip(), score=score)


@dataclass(frozen=True)
class QAExample:
    """A question with its gold answers. ``id`` is unique across everything loaded together."""

    id: str
    question: str
    answers: tuple[str, ...]
    source: str = "unknown"
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchRequest:
    """One search call as the engine sees it.

    ``question`` and ``answers`` are those of the sample that issued the query (never a neighbour's):
    the simulator needs them to write useful or noisy documents; the policy never sees them.
    ``noisy`` is the noise decision drawn for this very call (see ``curriculum.is_noisy``).
    """

    query: str
    question: str = ""
    answers: tuple[str, ...] = ()
    noisy: bool = False
    sample_id: str = ""
    turn: int = 0


class SegmentKind(str, Enum):
    """Who produced a run of tokens: only ``POLICY`` tokens are trained on."""

    PROMPT = "prompt"
    POLICY = "policy"
    OBSERVATION = "observation"


@dataclass(frozen=True)
class Segment:
    """A run of token ids from one producer. Policy segments carry the behaviour log-probs."""

    kind: SegmentKind
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind is SegmentKind.POLICY:
            if self.logprobs is None or len(self.logprobs) != len(self.token_ids):
                raise ValueError(
                    f"a policy segment needs one behaviour log-prob per token: "
                    f"{len(self.token_ids)} tokens, "
                    f"{'no' if self.logprobs is None else len(self.logprobs)} log-probs"
                )
        elif self.logprobs is not None:
            raise ValueError(f"a {self.kind.value} segment must not carry log-probs")


@dataclass
class Trajectory:
    """One sampled episode, token-in/token-out (docs/design.md, §Token-in/token-out).

    The ids, the loss mask and the behaviour log-probs are all *derived* from ``segments``, so they
    cannot drift apart. ``group_id`` names the prompt this sample was drawn for: GRPO normalises
    rewards within a group, and groups are keyed by this id, never by text or position.
    """

    sample_id: str
    group_id: str
    question: str
    answers: tuple[str, ...]
    segments: list[Segment] = field(default_factory=list)
    #: Everything after the prompt, decoded: the policy's turns and the observations, as the policy read them.
    response_text: str = ""
    #: The response as the policy wrote it: its own turns verbatim, each observation replaced by an empty
    #: ``<information></information>`` block (``protocol.OBSERVED``, ``protocol.FEEDBACK_GIVEN``). Rewards and
    #: format checks read this, so nothing an engine or our feedback wrote can be scored as the policy's.
    policy_text: str = ""
    reward: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def add(self, kind: SegmentKind, token_ids: list[int], logprobs: list[float] | None = None) -> None:
        """Append a segment (empty runs are dropped: they carry no information)."""
        if token_ids:
            lp = tuple(logprobs) if logprobs is not None else None
            self.segments.append(Segment(kind, tuple(token_ids), lp))

    @property
    def input_ids(self) -> list[int]:
        return [t for s in self.segments for t in s.token_ids]

    @property
    def loss_mask(self) -> list[int]:
        """1 for tokens the policy sampled, 0 for the prompt and for injected observations."""
        return [int(s.kind is SegmentKind.POLICY) for s in self.segments for _ in s.token_ids]

    @property
    def behaviour_logprobs(self) -> list[float]:
        """Log-probs under the sampling policy, aligned with ``input_ids`` (0.0 where the mask is 0)."""
        out: list[float] = []
        for s in self.segments:
            out.extend(s.logprobs if s.logprobs is not None else [0.0] * len(s.token_ids))
        return out

    @property
    def prompt_length(self) -> int:
        """Tokens before the first non-prompt segment: the part a reward must never read."""
        n = 0
        for s in self.segments:
            if s.kind is not SegmentKind.PROMPT:
                break
            n += len(s.token_ids)
        return n

    def count(self, kind: SegmentKind) -> int:
        """Number of tokens of one kind."""
        return sum(len(s.token_ids) for s in self.segments if s.kind is kind)
