"""The multi-turn search rollout: policy turns, batched searches, observations, one ``Trajectory`` each.

Per turn, every unfinished episode generates until ``</search>``, ``</answer>``, end-of-sequence or
its token budget; its action is parsed from that turn's text; all searches of the turn go to the
engine in **one** batched call; the ``<information>`` block is tokenized on its own and appended as
observation tokens: generated ids are never decoded and re-tokenized into the context
(docs/design.md, §Token-in/token-out). An invalid action gets the feedback text as its observation. In
the last allowed turn a search is not run: its result could never be used.

Each search request carries the sample's own question and gold answers and a noise decision drawn
with ``curriculum.is_noisy(seed, step, sample id, turn, p)`` (docs/design.md, §The search request and
§The noise draw).

The per-episode logic lives in ``Rollout.start / apply_generation / apply_search / finish``, shared by
the batched driver ``Rollout.run`` and the one-trajectory coroutine ``Rollout.arun_one`` that other
engines (veRL's agent loop, TRL's rollout function) can await.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from zerosearch_rl.config import ConfigError, RolloutConfig
from zerosearch_rl.curriculum import is_noisy, unit_draw
from zerosearch_rl.generation.base import Generated, TokenGenerator
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.protocol import (
    FEEDBACK_GIVEN,
    INFORMATION,
    OBSERVED,
    SEARCH,
    build_prompt,
    invalid_action_feedback,
    observation_text,
    parse_action,
    uses_chat_template,
)
from zerosearch_rl.records import Document, QAExample, SearchRequest, SegmentKind, Trajectory
from zerosearch_rl.search.base import FAILED_DOCUMENT_ID, SearchBackend

AsyncGenerate = Callable[[list[int], int, Sampling], Awaitable[Generated]]
AsyncSearch = Callable[[list[SearchRequest]], Awaitable[list[list[Document]]]]


class PromptTooLong(ConfigError):
    """A prompt longer than ``rollout.max_prompt_tokens``, naming the example (a setting to raise, or a question to
    drop: the CLI's one-line error)."""


@dataclass
class Episode:
    """The state of one trajectory while it is being rolled out."""

    traj: Trajectory
    context: list[int]
    turn: int = 0
    done: bool = False
    response_tokens: int = 0
    counts: dict[str, float] = field(default_factory=dict)
    policy_text: list[str] = field(default_factory=list)  # pieces of ``Trajectory.policy_text``

    def bump(self, name: str, by: float = 1.0) -> None:
        self.counts[name] = self.counts.get(name, 0.0) + by


@dataclass(frozen=True)
class RolloutResult:
    trajectories: list[Trajectory]
    generate_s: float
    search_s: float


class Rollout:
    """Drives episodes of the search protocol for one tokenizer, search engine and rollout config."""

    def __init__(self, tokenizer: Any, search: SearchBackend, cfg: RolloutConfig, seed: int = 0,
                 prompt_style: str = "auto", prompt_template: str = "own") -> None:
        self.tokenizer, self.search, self.cfg, self.seed = tokenizer, search, cfg, seed
        self.prompt_style, self.prompt_template = prompt_style, prompt_template
        # A chat template writes its own BOS; the original tokenizes every prompt without added special tokens.
        self._special = not uses_chat_template(tokenizer, prompt_style) and prompt_template == "own"
        self._close_ids = self._encode(f"</{INFORMATION}>\n\n")
        self._feedback_ids = self._encode(invalid_action_feedback(cfg.observation_format))
        #: Generations per episode: the original's max_turns counts the turns that may search, plus one to answer.
        self.turn_limit = cfg.max_turns + int(cfg.final_answer_turn)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # ---------------------------------------------------------------- one episode

    def prompt_ids(self, example: QAExample) -> list[int]:
        """The tokenized prompt of ``example``; too long a prompt is an error naming the example."""
        prompt = build_prompt(example.question, self.tokenizer, self.prompt_style, self.prompt_template,
                              example.metadata.get("prompt"))
        ids = list(self.tokenizer(prompt, add_special_tokens=self._special)["input_ids"])
        if len(ids) > self.cfg.max_prompt_tokens:
            raise PromptTooLong(f"example {example.id!r}: prompt of {len(ids)} tokens exceeds "
                                f"rollout.max_prompt_tokens={self.cfg.max_prompt_tokens}")
        return ids

    def start(self, example: QAExample, sample_index: int, prompt_ids: list[int] | None = None) -> Episode:
        """A new episode for the ``sample_index``-th sample of ``example`` (group id = example id);
        ``prompt_ids`` saves tokenizing the same prompt again for every sample of a group."""
        ids = prompt_ids if prompt_ids is not None else self.prompt_ids(example)
        traj = Trajectory(sample_id=f"{example.id}#{sample_index}", group_id=example.id,
                          question=example.question, answers=example.answers)
        traj.add(SegmentKind.PROMPT, ids)
        return Episode(traj, list(ids))

    def budget(self, ep: Episode) -> int:
        """New tokens this turn may use: the per-turn cap, within what is left of the response cap."""
        return max(0, min(self.cfg.max_new_tokens, self.cfg.max_response_tokens - ep.response_tokens))

    def _append(self, ep: Episode, kind: SegmentKind, ids: list[int], logprobs: list[float] | None = None) -> None:
        ep.traj.add(kind, ids, logprobs)
        ep.context.extend(ids)
        ep.response_tokens += len(ids)

    def apply_generation(self, ep: Episode, gen: Generated, step: int, noise_p: float) -> SearchRequest | None:
        """Record a policy turn; returns the search to run for it, if any."""
        self._append(ep, SegmentKind.POLICY, gen.token_ids, gen.logprobs)
        text = self.tokenizer.decode(gen.token_ids, skip_special_tokens=True)
        ep.policy_text.append(text)
        action = parse_action(text)
        last_turn = ep.turn + 1 >= self.turn_limit
        out_of_tokens = ep.response_tokens >= self.cfg.max_response_tokens
        ep.turn += 1
        if action.kind == "answer":
            ep.done = True
            return None
        if action.kind == "search":
            if last_turn or out_of_tokens:
                ep.bump("skipped_searches")
                ep.done = True
                return None
            ep.bump("searches")
            noisy = is_noisy(self.seed, step, ep.traj.sample_id, ep.turn - 1, noise_p)
            ep.bump("noisy_searches", float(noisy))
            return SearchRequest(query=action.content, question=ep.traj.question, answers=ep.traj.answers,
                                 noisy=noisy, sample_id=ep.traj.sample_id, turn=ep.turn - 1)
        ep.bump("invalid_actions")
        if gen.finish == "eos" or last_turn or out_of_tokens:
            ep.done = True
            return None
        self._observe(ep, list(self._feedback_ids), FEEDBACK_GIVEN)
        return None

    def apply_search(self, ep: Episode, docs: Sequence[Document]) -> None:
        """Append the ``<information>`` observation for the episode's search."""
        ep.bump("failed_searches", float(any(d.id == FAILED_DOCUMENT_ID for d in docs)))
        self._observe(ep, self._encode(observation_text(docs, self.cfg.observation_format)), OBSERVED)

    def force_search(self, ep: Episode, query: str) -> SearchRequest:
        """Inject ``<search> query </search>`` as if the episode had asked for it; returns the request to run.

        The search text is injected (an observation segment: the policy did not sample it, so it is never
        trained on) and takes no policy turn. Evaluation uses it for the "forced to search" baseline.
        """
        injected = f"<{SEARCH}> {query.strip()} </{SEARCH}>"
        self._append(ep, SegmentKind.OBSERVATION, self._encode(injected))
        ep.policy_text.append(injected)  # as if the policy had written it: the format check reads it so
        ep.bump("searches")
        ep.bump("forced_searches")
        return SearchRequest(query=query.strip(), question=ep.traj.question, answers=ep.traj.answers,
                             noisy=False, sample_id=ep.traj.sample_id, turn=-1)

    def _observe(self, ep: Episode, ids: list[int], stands_for: str) -> None:
        """Append observation ``ids``; ``stands_for`` is what the policy's own text shows in their place."""
        ep.policy_text.append(stands_for)
        room = min(self.cfg.max_obs_tokens, self.cfg.max_response_tokens - ep.response_tokens)
        if len(ids) > room:
            ep.bump("truncated_observations")
            if self.cfg.observation_format == "zerosearch":  # the original cuts the block where the budget ends
                ids = ids[:room]
            else:
                ids = ids[: max(0, room - len(self._close_ids))] + self._close_ids[:room]
        self._append(ep, SegmentKind.OBSERVATION, ids)
        if ep.response_tokens >= self.cfg.max_response_tokens:
            ep.done = True

    def finish(self, ep: Episode) -> Trajectory:
        """Close the episode: the response text (for the reward) and the episode's metrics."""
        traj = ep.traj
        response = traj.input_ids[traj.prompt_length:]
        traj.response_text = self.tokenizer.decode(response, skip_special_tokens=True)
        traj.policy_text = "".join(ep.policy_text)
        truncated = ep.response_tokens >= self.cfg.max_response_tokens
        traj.metrics = {"turns": float(ep.turn), "searches": 0.0, "noisy_searches": 0.0, "invalid_actions": 0.0,
                        "skipped_searches": 0.0, "failed_searches": 0.0, "truncated_observations": 0.0,
                        **ep.counts, "truncated_response": float(truncated),
                        "policy_tokens": float(traj.count(SegmentKind.POLICY)),
                        "observation_tokens": float(traj.count(SegmentKind.OBSERVATION))}
        return traj

    # ---------------------------------------------------------------- drivers

    def _sampling(self, sampling: Sampling, step: int, turn: int) -> Sampling:
        """A seed per (run seed, step, turn): rollouts are reproducible and turns draw independently."""
        return replace(sampling, seed=int(unit_draw("generate", self.seed, step, turn) * 2**31))

    def run(self, generator: TokenGenerator, examples: Sequence[QAExample], n_samples: int, step: int,
            noise_p: float, sampling: Sampling) -> RolloutResult:
        """Roll out ``n_samples`` episodes per example, all turns batched across episodes."""
        episodes = [self.start(ex, k, ids) for ex in examples for ids in [self.prompt_ids(ex)]
                    for k in range(n_samples)]
        return self.run_episodes(generator, episodes, step, noise_p, sampling)

    def run_episodes(self, generator: TokenGenerator, episodes: Sequence[Episode], step: int, noise_p: float,
                     sampling: Sampling) -> RolloutResult:
        """Drive already started episodes to their end (``run`` starts them; evaluation may first force a
        search into some with ``force_search``)."""
        generate_s = search_s = 0.0
        for turn in range(self.turn_limit):
            active = [e for e in episodes if not e.done]
            if not active:
                break
            t0 = time.perf_counter()
            outs = generator.generate([e.context for e in active], [self.budget(e) for e in active],
                                      self._sampling(sampling, step, turn))
            t1 = time.perf_counter()
            pending = [(e, r) for e, g in zip(active, outs, strict=True)
                       if (r := self.apply_generation(e, g, step, noise_p)) is not None]
            if pending:
                pages = self.search.search([r for _, r in pending])
                for (e, _), docs in zip(pending, pages, strict=True):
                    self.apply_search(e, docs)
            generate_s += t1 - t0
            search_s += time.perf_counter() - t1
        for e in episodes:
            e.done = True
        return RolloutResult([self.finish(e) for e in episodes], generate_s, search_s)

    async def arun_one(self, example: QAExample, sample_index: int, step: int | Callable[[], int],
                       noise_p: float | Callable[[int], float], sampling: Sampling, agenerate: AsyncGenerate,
                       asearch: AsyncSearch) -> Trajectory:
        """One episode, awaiting the caller's generation and search (for async agent loops).

        ``step`` and ``noise_p`` may be callables, read after each generation: an engine that learns
        the training step only from its generation server (veRL reports the weights' version with
        every generation) still draws each search's noise with the right step (docs/design.md, §The noise draw).
        """
        ep = self.start(example, sample_index)
        for turn in range(self.turn_limit):
            if ep.done:
                break
            known = 0 if callable(step) else step  # seeds sampling only, before the step can be read
            gen = await agenerate(list(ep.context), self.budget(ep), self._sampling(sampling, known, turn))
            now = step() if callable(step) else step
            request = self.apply_generation(ep, gen, now, noise_p(now) if callable(noise_p) else noise_p)
            if request is not None:
                (docs,) = await asearch([request])
                self.apply_search(ep, docs)
        ep.done = True
        return self.finish(ep)
