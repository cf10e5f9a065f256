"""The veRL-free core of our agent loop: one dataset row in, the fields of an ``AgentLoopOutput`` out.

Kept apart from ``agent_loop.py`` (the only module that imports veRL) so that the seam, everything
between veRL's server manager and veRL's output record, is tested without veRL or a GPU.

Per trajectory: the row becomes a ``QAExample`` (``data.example_from_row``: the ZeroSearch/Search-R1
parquet columns); ``Rollout.arun_one`` drives the episode over veRL's generation servers
(``ServerManagerGenerator``) and our search backend; the ``Trajectory``'s segments give the response ids,
the response mask (1 on policy tokens, 0 on ``<information>`` and feedback tokens) and the behaviour
log-probs, so none of them can drift from the ids (docs/design.md, §Token-in/token-out). The searches of
the episodes running at once in a worker go to the backend together (``search.batcher.SearchBatcher``), as
our engines expect.

Noise draws follow docs/design.md, §The noise draw: ``is_noisy(trainer.seed, step, sample id, turn,
p(step))`` with the step from ``step.py`` and the sample id ``"<source>-<split>-<index>#<k>"``, ``k`` the
sample's rank among the ``n`` samples of its prompt. veRL repeats each prompt ``n`` times side by side and
numbers the whole step's batch before splitting it across workers (the row's ``priority``, veRL 0.9), so
``k = priority mod n``. Without ``priority``, ``k`` counts the samples of one prompt (``uid``) in the
order this process starts them, which restarts if a group is split across two agent-loop workers.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zerosearch_rl.config import Config, ConfigError
from zerosearch_rl.curriculum import NoiseSchedule
from zerosearch_rl.data import example_from_row
from zerosearch_rl.generation.base import end_of_sequence_ids
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.integrations.verl import EPISODE_METRICS
from zerosearch_rl.integrations.verl.generator import KEEP_STOP_STRING, ServerManager, ServerManagerGenerator
from zerosearch_rl.integrations.verl.step import STEP_SOURCES, FixedStep, StepSource, WeightVersionStep
from zerosearch_rl.records import Document, QAExample, SearchRequest, SegmentKind, Trajectory
from zerosearch_rl.rollout import Rollout
from zerosearch_rl.search.base import SearchBackend
from zerosearch_rl.search.batcher import SearchBatcher

GROUPS_REMEMBERED = 65536  # prompt uids whose sample counters are kept (a few steps' worth)


@dataclass
class EpisodeFields:
    """What veRL's ``AgentLoopOutput`` needs, plus our per-episode metrics for ``extra_fields``."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    response_logprobs: list[float] | None
    num_turns: int
    timing: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def episode_fields(traj: Trajectory, with_logprobs: bool, response_length: int) -> EpisodeFields:
    """Split a finished trajectory into veRL's prompt / response / mask / log-probs (response capped)."""
    n = traj.prompt_length
    ids, mask, logprobs = traj.input_ids, traj.loss_mask, traj.behaviour_logprobs
    turns = 1 + sum(s.kind is not SegmentKind.PROMPT for s in traj.segments)  # user + assistant + tool turns
    return EpisodeFields(
        prompt_ids=ids[:n], response_ids=ids[n:][:response_length], response_mask=mask[n:][:response_length],
        response_logprobs=logprobs[n:][:response_length] if with_logprobs else None, num_turns=turns)


class EpisodeRunner:
    """Runs our episodes for veRL; one per process (the search backend and its cache are shared)."""

    def __init__(self, cfg: Config, tokenizer: Any, backend: SearchBackend, *, engine: str, response_length: int,
                 prompt_length: int, group_size: int = 1, step_source: str = "weights", fixed_step: int = 0) -> None:
        if engine not in KEEP_STOP_STRING:
            raise ConfigError(f"unsupported veRL rollout engine {engine!r} (actor_rollout_ref.rollout.name); "
                              f"valid: {', '.join(KEEP_STOP_STRING)}")
        if step_source not in STEP_SOURCES:
            raise ConfigError(f"unknown step_source {step_source!r}; valid: {', '.join(STEP_SOURCES)}")
        if cfg.rollout.max_response_tokens > response_length:
            raise ConfigError(f"rollout.max_response_tokens={cfg.rollout.max_response_tokens} exceeds veRL's "
                              f"actor_rollout_ref.rollout.response_length={response_length}: lower the first or "
                              f"raise data.max_response_length")
        if cfg.rollout.max_prompt_tokens > prompt_length:
            raise ConfigError(f"rollout.max_prompt_tokens={cfg.rollout.max_prompt_tokens} exceeds veRL's "
                              f"actor_rollout_ref.rollout.prompt_length={prompt_length}: lower the first or "
                              f"raise data.max_prompt_length")
        if group_size < 1:
            raise ConfigError(f"actor_rollout_ref.rollout.n must be >= 1, got {group_size}")
        self.cfg, self.tokenizer, self.backend = cfg, tokenizer, backend
        self.engine, self.response_length, self.group_size = engine, response_length, group_size
        self.step_source, self.fixed_step = step_source, fixed_step
        self.rollout = Rollout(tokenizer, backend, cfg.rollout, cfg.trainer.seed, cfg.model.prompt_style,
                               cfg.model.prompt_template)
        self.schedule: NoiseSchedule = cfg.curriculum.noise_schedule(cfg.trainer.total_steps)
        self.eos_ids = end_of_sequence_ids(tokenizer)  # what HFGenerator stops on, read from the model folder
        self._groups: OrderedDict[str, int] = OrderedDict()
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SearchBatcher] = \
            weakref.WeakKeyDictionary()

    def batcher(self) -> SearchBatcher:
        """The search batcher of the running event loop: concurrent episodes' searches share backend calls."""
        loop = asyncio.get_running_loop()
        if loop not in self._batchers:
            self._batchers[loop] = SearchBatcher(self.backend)
        return self._batchers[loop]

    def example(self, row: Mapping[str, Any]) -> QAExample:
        """The row's question and gold answers (a row without them fails naming the field)."""
        return example_from_row(row, f"veRL dataset row (index {row.get('index', '?')})")

    def sample_index(self, row: Mapping[str, Any], example: QAExample) -> int:
        """The row's rank among its prompt's samples (see the module doc; call before awaiting anything)."""
        if row.get("priority") is not None:
            return int(row["priority"]) % self.group_size
        group = str(row.get("uid", example.id))
        k = self._groups.pop(group, -1) + 1
        self._groups[group] = k
        while len(self._groups) > GROUPS_REMEMBERED:
            self._groups.popitem(last=False)
        return k

    def _step(self, generator: ServerManagerGenerator) -> StepSource:
        return FixedStep(self.fixed_step) if self.step_source == "fixed" else WeightVersionStep(generator)

    async def run(self, server_manager: ServerManager, sampling_params: Mapping[str, Any],
                  row: Mapping[str, Any]) -> EpisodeFields:
        """One episode for one dataset row, as veRL's agent loop receives it."""
        example = self.example(row)
        k = self.sample_index(row, example)
        generator = ServerManagerGenerator(server_manager, sampling_params, self.eos_ids, self.engine)
        step = self._step(generator)
        timing = {"generate_sequences": 0.0, "tool_calls": 0.0}

        async def agenerate(prompt: list[int], budget: int, sampling: Sampling) -> Any:
            t0 = time.perf_counter()
            try:
                return await generator.agenerate(prompt, budget, sampling)
            finally:
                timing["generate_sequences"] += time.perf_counter() - t0

        batcher = self.batcher()

        async def asearch(requests: list[SearchRequest]) -> list[list[Document]]:
            t0 = time.perf_counter()
            try:
                return await batcher.search(requests)
            finally:
                timing["tool_calls"] += time.perf_counter() - t0

        sampling = Sampling(temperature=float(sampling_params.get("temperature", self.cfg.rollout.temperature)),
                            top_p=float(sampling_params.get("top_p", self.cfg.rollout.top_p)))
        traj = await self.rollout.arun_one(example, k, step, self.schedule.probability, sampling, agenerate, asearch)
        out = episode_fields(traj, generator.has_logprobs, self.response_length)
        out.timing = timing
        searched_step = generator.weight_version if self.step_source == "weights" else self.fixed_step
        out.extra = {f"zs_{name}": float(traj.metrics.get(name, 0.0)) for name in EPISODE_METRICS}
        out.extra["zs_step"] = -1 if searched_step is None else int(searched_step)
        out.extra["zs_sample_id"] = traj.sample_id
        out.extra["zs_policy_text"] = traj.policy_text  # what compute_score reads instead of the decoded response
        return out


_RUNNERS: dict[tuple[Any, ...], EpisodeRunner] = {}


def shared_runner(config_path: str, overrides: tuple[str, ...], tokenizer: Any, *, engine: str,
                  response_length: int, prompt_length: int, group_size: int = 1, step_source: str = "weights",
                  fixed_step: int = 0) -> EpisodeRunner:
    """The process's runner for one configuration: veRL builds an agent loop per sample, but the search
    backend (its HTTP clients, cache and counters) must be built once per process."""
    key = (config_path, overrides, id(tokenizer), engine, response_length, prompt_length, group_size, step_source,
           fixed_step)
    if key not in _RUNNERS:
        from zerosearch_rl.config import load_config
        from zerosearch_rl.search import build_backend

        cfg = load_config(config_path or None, overrides)
        _RUNNERS[key] = EpisodeRunner(cfg, tokenizer, build_backend(cfg), engine=engine,
                                      response_length=response_length, prompt_length=prompt_length,
                                      group_size=group_size, step_source=step_source,
                                      fixed_step=fixed_step)
    return _RUNNERS[key]
