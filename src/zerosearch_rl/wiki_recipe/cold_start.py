"""A short supervised cold start on the answer format, from training questions and real-engine pages only.

A 135M instruct model never writes ``<answer>`` on its own (EM 0 on FanOutQA, every method), so RL would
see reward 0 for every sample and learn nothing. The cold start shows it the protocol a few hundred times:
episodes written by a scripted *teacher* that searches the question, answers with the gold answer when the
real engine's pages hold it, and otherwise searches the title of the question's evidence page (a keyword
query, the reformulation a searching policy should learn) before answering. Episodes whose pages never hold
the answer are left out: the model is never taught to answer what it did not read.

The episodes are driven by ``rollout.Rollout`` itself with the teacher in the generator's seat, so the
prompt, the observation blocks and the loss mask (the policy's turns only) are token for token what RL
later feeds the policy. The paper starts RL from the base model; at 3B it needs no such step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zerosearch_rl.generation.base import Generated
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.protocol import ANSWER, INFORMATION, SEARCH
from zerosearch_rl.records import QAExample, Trajectory
from zerosearch_rl.reward import cover_em, extract_answer
from zerosearch_rl.rollout import Rollout

Sample = tuple[list[int], list[int]]  # token ids, loss mask (1 = trained)


def teacher_turn(ex: QAExample, response: str) -> str:
    """The teacher's next turn for an episode of ``ex`` whose response so far is ``response``: answer when the
    last ``<information>`` block holds the gold; else search the question, then each evidence title; else an
    empty answer (the episode is dropped by ``cold_start_samples``)."""
    searched = response.count(f"</{INFORMATION}>")
    last = response.rsplit(f"<{INFORMATION}>", 1)[-1] if searched else ""
    if searched and cover_em(last, ex.answers):
        return f"<{ANSWER}> {ex.answers[0]} </{ANSWER}>"
    queries = [ex.question, *ex.metadata.get("evidence", ())]
    if searched < len(queries):
        return f"<{SEARCH}> {queries[searched]} </{SEARCH}>"
    return f"<{ANSWER}> </{ANSWER}>"


class Teacher:
    """A ``TokenGenerator`` that writes the scripted turns of each example's episode.

    It recognises an episode by its prompt (the context starts with it) and reads the last
    ``<information>`` block of the context to decide between answering and searching again.
    """

    def __init__(self, rollout: Rollout, examples: Sequence[QAExample]) -> None:
        self.tokenizer = rollout.tokenizer
        self._by_prompt = {tuple(rollout.prompt_ids(ex)): ex for ex in examples}
        self._lengths = sorted({len(p) for p in self._by_prompt})
        self._eos = self.tokenizer.eos_token_id

    def _example(self, context: Sequence[int]) -> tuple[QAExample, int]:
        for length in self._lengths:
            ex = self._by_prompt.get(tuple(context[:length]))
            if ex is not None:
                return ex, length
        raise KeyError("the teacher was handed a context that starts with none of its prompts")

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: Sequence[int],
                 sampling: Sampling) -> list[Generated]:
        out = []
        for context in prompts:
            ex, length = self._example(context)
            text = teacher_turn(ex, self.tokenizer.decode(list(context[length:]), skip_special_tokens=True))
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            finish = "stop"
            if text.startswith(f"<{ANSWER}>") and self._eos is not None:
                ids.append(self._eos)
                finish = "eos"
            out.append(Generated(token_ids=ids, logprobs=[0.0] * len(ids), finish=finish))
        return out


@dataclass(frozen=True)
class ColdStart:
    samples: list[Sample]
    trajectories: list[Trajectory]  # the kept episodes
    offered: int  # training questions the teacher tried
    first_search: int  # kept episodes answered from the question's own search
    reformulated: int  # kept episodes that needed the evidence-title search


def cold_start_samples(rollout: Rollout, examples: Sequence[QAExample]) -> ColdStart:
    """The teacher's episodes of ``examples`` (searching ``rollout.search``, the real engine) whose pages
    held the answer, as (ids, loss mask) samples."""
    result = rollout.run(Teacher(rollout, examples), examples, n_samples=1, step=0, noise_p=0.0,
                         sampling=Sampling(temperature=0.0))
    kept = [t for t in result.trajectories if cover_em(extract_answer(t.policy_text) or "", t.answers)]
    return ColdStart(samples=[(t.input_ids, t.loss_mask) for t in kept], trajectories=kept, offered=len(examples),
                     first_search=sum(t.metrics.get("searches", 0) == 1 for t in kept),
                     reformulated=sum(t.metrics.get("searches", 0) > 1 for t in kept))
