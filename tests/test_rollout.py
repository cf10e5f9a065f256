from __future__ import annotations

import asyncio
import re
from typing import ClassVar

import pytest
import torch

from fakes.tiny_lm import byte_tokenizer, tiny_model
from zerosearch_rl.config import RolloutConfig
from zerosearch_rl.curriculum import is_noisy
from zerosearch_rl.generation.base import Generated
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.generation.transformers import HFGenerator
from zerosearch_rl.protocol import INVALID_ACTION_FEEDBACK
from zerosearch_rl.records import Document, QAExample, SegmentKind
from zerosearch_rl.reward import score
from zerosearch_rl.rollout import PromptTooLong, Rollout

TOK = byte_tokenizer()
ADA = QAExample("ada", "Where was Ada born?", ("Marlow",), "nq")
TOM = QAExample("tom", "Where was Tom born?", ("Eldham",), "nq")
IVY = QAExample("ivy", "Where was Ivy born?", ("Fennick",), "nq")


def default_script(context: str) -> str:
    """A policy that searches once for the person, then answers with the first document's last word."""
    name = re.search(r"Where was (\w+) born", context).group(1)
    if name == "Ivy":  # Ivy answers from memory, without searching
        return "<think>I know this</think><answer> Fennick </answer>"
    info = re.findall(r"<information>Doc 1 \(Title: [^)]*\) (.*?)\n", context)
    if not info:
        return f"<think>need facts</think><search> {name} birthplace </search>"
    return f"<think>found</think><answer> {info[-1].split()[-1].rstrip('.')} </answer>"


class ScriptedGenerator:
    """Writes the script's next turn as byte tokens with fake log-probs; respects the token budget."""

    def __init__(self, script=default_script, eos=False):
        self.script, self.eos, self.calls = script, eos, []

    def _one(self, prompt, budget):
        ids = TOK(self.script(TOK.decode(prompt)), add_special_tokens=False)["input_ids"]
        if self.eos:
            ids = [*ids, TOK.eos_token_id]
        finish = "eos" if self.eos else "stop"
        if len(ids) > budget:
            ids, finish = ids[:budget], "length"
        return Generated(ids, [-0.25] * len(ids), finish)

    def generate(self, prompts, max_new_tokens, sampling):
        self.calls.append(len(prompts))
        return [self._one(p, b) for p, b in zip(prompts, max_new_tokens, strict=True)]


class Engine:
    """Answers "<name> birthplace" from a tiny table; records every batch it receives."""

    name = "engine"
    TABLE: ClassVar[dict[str, str]] = {"Ada": "Marlow", "Tom": "Eldham"}

    def __init__(self):
        self.batches = []

    def search(self, requests):
        self.batches.append(list(requests))
        pages = []
        for r in requests:
            who = r.query.split()[0]
            pages.append([Document(f"d-{who}", who, f"{who} was born in {self.TABLE.get(who, 'Nowhere')}."),
                          Document("filler", "Other", "Unrelated text.")])
        return pages

    def metrics(self):
        return {}

    def close(self):
        pass


def make(cfg=None, seed=0, engine=None):
    engine = engine or Engine()
    return Rollout(TOK, engine, cfg or RolloutConfig(max_turns=3), seed=seed, prompt_style="base"), engine


def test_search_then_answer_builds_the_segments_and_scores():
    rollout, _ = make()
    (traj,) = rollout.run(ScriptedGenerator(), [ADA], 1, step=0, noise_p=0.0, sampling=Sampling()).trajectories
    kinds = [s.kind for s in traj.segments]
    assert kinds == [SegmentKind.PROMPT, SegmentKind.POLICY, SegmentKind.OBSERVATION, SegmentKind.POLICY]
    assert "<information>Doc 1 (Title: Ada) Ada was born in Marlow.\nDoc 2 (Title: Other)" in traj.response_text
    assert traj.response_text.endswith("<answer> Marlow </answer>")
    assert "Question: Where was Ada born?" not in traj.response_text  # the prompt is not part of the response
    assert score(traj.response_text, traj.answers) == 1.0
    mask = traj.loss_mask
    for seg_start, seg in zip(_starts(traj), traj.segments, strict=True):
        assert set(mask[seg_start : seg_start + len(seg.token_ids)]) == {int(seg.kind is SegmentKind.POLICY)}
    assert traj.metrics["searches"] == 1 and traj.metrics["turns"] == 2 and traj.metrics["invalid_actions"] == 0


def _starts(traj):
    out, n = [], 0
    for s in traj.segments:
        out.append(n)
        n += len(s.token_ids)
    return out


def test_each_search_carries_its_own_sample_and_turns_are_batched():
    rollout, engine = make()
    gen = ScriptedGenerator()
    result = rollout.run(gen, [ADA, IVY, TOM], 2, step=4, noise_p=0.5, sampling=Sampling())
    assert len(result.trajectories) == 6
    assert gen.calls == [6, 4]  # Ivy's samples answered in turn 1 and left the batch
    assert len(engine.batches) == 1  # one batched search call for the whole turn
    requests = engine.batches[0]
    assert [r.sample_id for r in requests] == ["ada#0", "ada#1", "tom#0", "tom#1"]
    for r in requests:
        owner = ADA if r.sample_id.startswith("ada") else TOM
        assert (r.question, r.answers) == (owner.question, owner.answers)  # never a neighbour's
        assert r.query.startswith(owner.question.split()[2])
        assert r.noisy == is_noisy(0, 4, r.sample_id, 0, 0.5)
    assert [t.group_id for t in result.trajectories] == ["ada", "ada", "ivy", "ivy", "tom", "tom"]
    assert all(score(t.response_text, t.answers) == 1.0 for t in result.trajectories)


def test_no_search_runs_in_the_last_turn():
    rollout, engine = make(RolloutConfig(max_turns=1))
    (traj,) = rollout.run(ScriptedGenerator(), [ADA], 1, 0, 0.0, Sampling()).trajectories
    assert engine.batches == []
    assert traj.metrics["skipped_searches"] == 1 and traj.metrics["searches"] == 0
    assert [s.kind for s in traj.segments] == [SegmentKind.PROMPT, SegmentKind.POLICY]


def test_invalid_action_gets_feedback_then_continues():
    turns = iter(["I am not sure.", "<answer> Marlow </answer>"])
    rollout, _ = make()
    (traj,) = rollout.run(ScriptedGenerator(lambda c: next(turns)), [ADA], 1, 0, 0.0, Sampling()).trajectories
    assert traj.segments[2].kind is SegmentKind.OBSERVATION
    assert TOK.decode(list(traj.segments[2].token_ids)) == INVALID_ACTION_FEEDBACK
    assert traj.metrics["invalid_actions"] == 1 and score(traj.response_text, ("Marlow",)) == 1.0


def test_end_of_sequence_without_an_action_ends_the_episode():
    rollout, _ = make()
    (traj,) = rollout.run(ScriptedGenerator(lambda c: "I give up.", eos=True), [ADA], 1, 0, 0.0,
                          Sampling()).trajectories
    assert traj.metrics["turns"] == 1 and traj.metrics["invalid_actions"] == 1
    assert traj.segments[-1].token_ids[-1] == TOK.eos_token_id


def test_long_observations_are_truncated_and_still_closed():
    rollout, _ = make(RolloutConfig(max_turns=3, max_obs_tokens=40))
    (traj,) = rollout.run(ScriptedGenerator(), [ADA], 1, 0, 0.0, Sampling()).trajectories
    obs = traj.segments[2]
    assert len(obs.token_ids) == 40 and TOK.decode(list(obs.token_ids)).endswith("</information>\n\n")
    assert traj.metrics["truncated_observations"] >= 1  # (the cut page makes the script search again)


def test_response_budget_caps_policy_and_observation_tokens():
    rollout, _ = make(RolloutConfig(max_turns=3, max_response_tokens=70))
    (traj,) = rollout.run(ScriptedGenerator(), [ADA], 1, 0, 0.0, Sampling()).trajectories
    assert len(traj.input_ids) - traj.prompt_length == 70
    assert traj.metrics["truncated_response"] == 1


def test_prompt_too_long_names_the_example():
    rollout, _ = make(RolloutConfig(max_prompt_tokens=20))
    with pytest.raises(PromptTooLong, match=r"example .ada.: prompt of .* exceeds rollout\.max_prompt_tokens=20"):
        rollout.run(ScriptedGenerator(), [ADA], 1, 0, 0.0, Sampling())


def test_async_single_trajectory_matches_the_batched_driver():
    rollout, engine = make(seed=3)
    gen = ScriptedGenerator()
    batched = rollout.run(gen, [ADA, TOM], 1, step=2, noise_p=0.5, sampling=Sampling()).trajectories

    async def agenerate(prompt, budget, sampling):
        return gen.generate([prompt], [budget], sampling)[0]

    async def asearch(requests):
        return engine.search(requests)

    async def both():
        return await asyncio.gather(*(rollout.arun_one(ex, 0, 2, 0.5, Sampling(), agenerate, asearch)
                                      for ex in (ADA, TOM)))

    for a, b in zip(asyncio.run(both()), batched, strict=True):
        assert (a.input_ids, a.loss_mask, a.behaviour_logprobs, a.metrics) == (
            b.input_ids, b.loss_mask, b.behaviour_logprobs, b.metrics)


def test_real_model_rollout_keeps_ids_and_logprobs_exact():
    # A random tiny LM babbles (invalid actions, feedback, maybe searches). Whatever it does, the ids it
    # sampled are kept verbatim and a teacher-forced pass over the whole trajectory reproduces the
    # behaviour log-probs at exactly the positions the mask marks as trainable.
    model = tiny_model(len(TOK), seed=2)
    rollout, _ = make(RolloutConfig(max_turns=3, max_new_tokens=24, max_obs_tokens=64))
    generator = HFGenerator(model, TOK, stop_strings=("</search>", "</answer>"))
    result = rollout.run(generator, [ADA, TOM], 2, step=0, noise_p=0.0, sampling=Sampling(temperature=1.0))
    for traj in result.trajectories:
        ids = torch.tensor([traj.input_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        recomputed = logp.gather(-1, ids[0, 1:, None])[:, 0]
        mask = torch.tensor(traj.loss_mask[1:], dtype=torch.bool)
        behaviour = torch.tensor(traj.behaviour_logprobs[1:])
        assert mask.sum() == traj.count(SegmentKind.POLICY) > 0
        assert torch.allclose(recomputed[mask], behaviour[mask], atol=1e-4)
    assert result.generate_s > 0
