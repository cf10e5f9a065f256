"""Evaluation methods: how one model is asked a question, as small strategy objects chosen by name.

- ``direct``: answer at once, in ``<answer>`` tags.
- ``cot``: think step by step in ``<think>``, then answer.
- ``rag``: the question is searched once; the top documents go into the prompt; then answer.
- ``agent``: the multi-turn search protocol of training (``Rollout``): think, search, read, answer.
- ``agent_forced``: ``agent`` whose first action is a search of the question, injected before the
  model's first turn (the "base policy forced to search" row of a comparison).
- ``agent_prefixed``: ``agent`` whose first turn starts with ``eval.first_turn_prefix`` (default
  ``<search>``): the model is made to search first but writes the query itself, in its own words and
  format (the stronger "forced to search" baseline for a model trained on its own traces).

Every method returns one ``Trajectory`` per question, scored the same way afterwards; the one-turn
methods build theirs with a prompt segment and one policy segment, so the token counts mean the same
thing for every method. Documents are recorded by the ``RecordingBackend`` the harness passes in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol

from zerosearch_rl.config import EVAL_METHODS, Config, ConfigError, RolloutConfig
from zerosearch_rl.generation.base import ForcedFirstTurn, TokenGenerator
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.protocol import render_information, render_user_message, uses_chat_template
from zerosearch_rl.records import Document, QAExample, SearchRequest, SegmentKind, Trajectory
from zerosearch_rl.rollout import PromptTooLong, Rollout
from zerosearch_rl.search.base import SearchBackend

_ANSWER_FORMAT = ("write only the final answer, a short phrase with no explanation, between <answer> and "
                  "</answer>, for example <answer> Lisbon </answer>.")
DIRECT_TEMPLATE = "Answer the question below: " + _ANSWER_FORMAT + "\nQuestion: {question}\n"
COT_TEMPLATE = ("Answer the question below. First reason step by step between <think> and </think>, then "
                + _ANSWER_FORMAT + "\nQuestion: {question}\n")
RAG_TEMPLATE = ("Answer the question below using the documents. First reason between <think> and </think>, "
                "then " + _ANSWER_FORMAT + "\nDocuments:\n{documents}\nQuestion: {question}\n")


@dataclass(frozen=True)
class EvalContext:
    """What every method may use: the model (as a token generator and its tokenizer) and the engine."""

    generator: TokenGenerator
    tokenizer: Any
    backend: SearchBackend
    rollout: RolloutConfig
    sampling: Sampling
    prompt_style: str = "auto"
    seed: int = 0
    answer_max_new_tokens: int = 64
    first_turn_prefix: str = "<search>"
    prompt_template: str = "own"

    @classmethod
    def from_config(cls, cfg: Config, generator: TokenGenerator, tokenizer: Any, backend: SearchBackend
                    ) -> EvalContext:
        """The context of an evaluation run by ``cfg`` (its ``eval`` sampling, the model's prompt)."""
        e = cfg.eval
        sampling = Sampling(temperature=e.temperature, top_p=e.top_p, seed=e.seed if e.temperature > 0 else None)
        return cls(generator, tokenizer, backend, cfg.rollout, sampling, cfg.model.prompt_style, e.seed,
                   e.answer_max_new_tokens, e.first_turn_prefix, cfg.model.prompt_template)


class Method(Protocol):
    """Answers a batch of questions; one trajectory per example, in order."""

    name: ClassVar[str]
    searches: ClassVar[bool]  # whether it needs a search engine

    def run(self, ctx: EvalContext, examples: Sequence[QAExample]) -> list[Trajectory]: ...


def _sample_id(ex: QAExample) -> str:
    return f"{ex.id}#0"


class OneTurn:
    """A method that writes one prompt per question and generates once (direct, cot, rag)."""

    name: ClassVar[str]
    template: ClassVar[str]
    searches: ClassVar[bool] = False

    def documents(self, ctx: EvalContext, examples: Sequence[QAExample]) -> list[list[Document]] | None:
        """Documents to put in each prompt (``None``: the template has no documents)."""
        return None

    def run(self, ctx: EvalContext, examples: Sequence[QAExample]) -> list[Trajectory]:
        pages = self.documents(ctx, examples)
        chat = uses_chat_template(ctx.tokenizer, ctx.prompt_style)
        prompts = []
        for i, ex in enumerate(examples):
            fields = {"question": ex.question.strip()}
            if pages is not None:
                fields["documents"] = render_information(pages[i]).removeprefix("<information>").removesuffix(
                    "</information>")
            text = render_user_message(self.template.format(**fields), ctx.tokenizer, ctx.prompt_style)
            ids = list(ctx.tokenizer(text, add_special_tokens=not chat)["input_ids"])
            if len(ids) > ctx.rollout.max_prompt_tokens:
                raise PromptTooLong(f"example {ex.id!r}: {self.name} prompt of {len(ids)} tokens exceeds "
                                    f"rollout.max_prompt_tokens={ctx.rollout.max_prompt_tokens}")
            prompts.append(ids)
        outs = ctx.generator.generate(prompts, [ctx.answer_max_new_tokens] * len(prompts), ctx.sampling)
        trajectories = []
        for ex, ids, gen in zip(examples, prompts, outs, strict=True):
            traj = Trajectory(sample_id=_sample_id(ex), group_id=ex.id, question=ex.question, answers=ex.answers)
            traj.add(SegmentKind.PROMPT, ids)
            traj.add(SegmentKind.POLICY, gen.token_ids, gen.logprobs)
            traj.response_text = traj.policy_text = ctx.tokenizer.decode(gen.token_ids, skip_special_tokens=True)
            traj.metrics = {"turns": 1.0, "searches": float(pages is not None),
                            "policy_tokens": float(len(gen.token_ids)), "observation_tokens": 0.0,
                            "truncated_response": float(gen.finish == "length")}
            trajectories.append(traj)
        return trajectories


class Direct(OneTurn):
    name = "direct"
    template = DIRECT_TEMPLATE


class ChainOfThought(OneTurn):
    name = "cot"
    template = COT_TEMPLATE


class Rag(OneTurn):
    """The question is the query; its top ``search.topk`` documents go into the prompt."""

    name = "rag"
    template = RAG_TEMPLATE
    searches = True

    def documents(self, ctx: EvalContext, examples: Sequence[QAExample]) -> list[list[Document]] | None:
        return ctx.backend.search([SearchRequest(query=ex.question, question=ex.question, answers=ex.answers,
                                                 sample_id=_sample_id(ex), turn=-1) for ex in examples])


class Agent:
    """The training protocol, driven by ``Rollout`` (greedy by default, noise-free searches)."""

    name: ClassVar[str] = "agent"
    forced: ClassVar[bool] = False
    searches: ClassVar[bool] = True

    def run(self, ctx: EvalContext, examples: Sequence[QAExample]) -> list[Trajectory]:
        rollout = Rollout(ctx.tokenizer, ctx.backend, ctx.rollout, ctx.seed, ctx.prompt_style, ctx.prompt_template)
        episodes = [rollout.start(ex, 0) for ex in examples]
        if self.forced:
            requests = [rollout.force_search(ep, ex.question) for ep, ex in zip(episodes, examples, strict=True)]
            for ep, docs in zip(episodes, ctx.backend.search(requests), strict=True):
                rollout.apply_search(ep, docs)
        return rollout.run_episodes(ctx.generator, episodes, 0, 0.0, ctx.sampling).trajectories


class ForcedAgent(Agent):
    name = "agent_forced"
    forced = True


class PrefixedAgent(Agent):
    name = "agent_prefixed"

    def run(self, ctx: EvalContext, examples: Sequence[QAExample]) -> list[Trajectory]:
        if not ctx.first_turn_prefix:
            raise ConfigError("agent_prefixed needs a non-empty eval.first_turn_prefix")
        prefix = ctx.tokenizer(ctx.first_turn_prefix, add_special_tokens=False)["input_ids"]
        return super().run(replace(ctx, generator=ForcedFirstTurn(ctx.generator, prefix)), examples)


#: Every method by name; ``config.EVAL_METHODS`` lists the same names (the config must stay light).
METHODS: dict[str, Callable[[], Method]] = {
    m.name: m for m in (Direct, ChainOfThought, Rag, Agent, ForcedAgent, PrefixedAgent)
}
assert tuple(METHODS) == EVAL_METHODS, "config.EVAL_METHODS and evaluate.methods.METHODS must agree"


def get_method(name: str) -> Method:
    """The method called ``name``; an unknown name is an error listing the valid ones."""
    if name not in METHODS:
        raise ConfigError(f"unknown eval method {name!r}; valid: {', '.join(METHODS)}")
    return METHODS[name]()
