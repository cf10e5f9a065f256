"""Our side of the veRL seam, without veRL: a fake generation server with the signature of veRL 0.9.1's
``LLMServerClient.generate`` (scripted token ids, log-probs and weight version), our search backends, and
veRL-shaped reward calls. ``test_verl_plugin.py`` (marker ``verl``) runs the real plugin inside veRL."""

from __future__ import annotations

import asyncio
import re
from types import SimpleNamespace

import pytest

from zerosearch_rl.config import ConfigError, load_config
from zerosearch_rl.curriculum import is_noisy
from zerosearch_rl.data import DataError
from zerosearch_rl.generation.base import TokenGenerator
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.integrations.verl import EPISODE_METRICS
from zerosearch_rl.integrations.verl.episode import EpisodeRunner, shared_runner
from zerosearch_rl.integrations.verl.generator import ServerManagerGenerator
from zerosearch_rl.integrations.verl.reward import compute_score, gold_answers
from zerosearch_rl.integrations.verl.step import FixedStep, StepUnknown
from zerosearch_rl.protocol import observation_text
from zerosearch_rl.records import Document
from zerosearch_rl.tiny_models import byte_tokenizer

TOK = byte_tokenizer()
CFG = load_config(None, ["search.backend=fake", "rollout.max_turns=3", "rollout.max_response_tokens=2000",
                         "rollout.max_prompt_tokens=2000", "trainer.seed=7", "trainer.total_steps=10",
                         "curriculum.start=0.3", "curriculum.end=0.9", "curriculum.schedule=linear"])
VERL_PARAMS = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}


def row(question: str, answers: list[str], index: int, uid: str) -> dict:
    """A veRL agent-loop row for a ZeroSearch parquet sample (RLHFDataset keeps every column)."""
    return {"data_source": "nq", "question": question, "raw_prompt": [{"role": "user", "content": question}],
            "reward_model": {"style": "rule", "ground_truth": {"target": answers}},
            "extra_info": {"split": "train", "index": index}, "index": index, "uid": uid}


class FakeServer:
    """veRL's server manager: answers each prompt with the script's next turn; log-prob of the i-th token
    of a reply is -(call + i / 1000) so that any misalignment shows."""

    def __init__(self, script, version: int | None = 4, logprobs: bool = True):
        self.script, self.version, self.logprobs, self.calls, self.replies = script, version, logprobs, [], []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        self.calls.append({"request_id": request_id, "prompt_ids": list(prompt_ids), "params": dict(sampling_params)})
        await asyncio.sleep(0)  # let concurrent episodes interleave
        ids = TOK(self.script(TOK.decode(prompt_ids)), add_special_tokens=False)["input_ids"]
        ids = ids[: sampling_params["max_tokens"]]
        n = len(self.calls)
        lps = [-(n + i / 1000) for i in range(len(ids))] if self.logprobs else None
        self.replies.append((ids, lps))
        return SimpleNamespace(token_ids=ids, log_probs=lps, stop_reason="completed",
                               extra_fields={"global_steps": self.version} if self.version is not None else {})


def search_then_answer(context: str) -> str:
    if "is Marlow." not in context:  # no search result yet (the instruction itself mentions <information>)
        who = re.search(r"Where was (\w+) born", context).group(1)
        return f"<think>look up</think><search> {who} birthplace </search>"
    return "<answer> Marlow </answer>"


class Recorder:
    """A search backend that records requests and returns two documents."""

    name = "recorder"

    def __init__(self):
        self.requests, self.batches = [], []

    def search(self, requests):
        self.requests.extend(requests)
        self.batches.append(len(requests))
        return [[Document("d1", "Ada", f"{r.query} is Marlow."), Document("d2", "", "Filler.")] for r in requests]

    def metrics(self):
        return {}

    def close(self):
        pass


def runner(backend=None, cfg=CFG, **kw) -> EpisodeRunner:
    kw.setdefault("engine", "vllm")
    kw.setdefault("response_length", 2048)
    kw.setdefault("prompt_length", 2048)
    return EpisodeRunner(cfg, TOK, backend or Recorder(), **kw)


def test_response_mask_is_zero_exactly_on_observation_tokens_and_logprobs_align():
    backend, server = Recorder(), FakeServer(search_then_answer)
    out = asyncio.run(runner(backend).run(server, VERL_PARAMS, row("Where was Ada born?", ["Marlow"], 3, "u1")))
    (gen1, lp1), (gen2, lp2) = server.replies
    obs = TOK(observation_text(backend.search([backend.requests[0]])[0]), add_special_tokens=False)["input_ids"]
    assert out.response_ids == gen1 + obs + gen2
    assert out.response_mask == [1] * len(gen1) + [0] * len(obs) + [1] * len(gen2)
    assert out.response_logprobs == lp1 + [0.0] * len(obs) + lp2
    assert TOK.decode(obs).strip().startswith("<information>")
    # the second turn was generated from the prompt + everything so far, ids untouched
    # (docs/design.md, §Token-in/token-out)
    assert server.calls[1]["prompt_ids"] == out.prompt_ids + gen1 + obs
    assert out.num_turns == 4  # user, assistant, tool, assistant


def test_search_reaches_the_backend_with_its_own_question_answers_and_noise_draw():
    backend = Recorder()
    r = runner(backend)
    rows = [row("Where was Ada born?", ["Marlow"], 3, "u1"), row("Where was Tom born?", ["Eldham", "Eld"], 4, "u2")]

    async def both():
        return await asyncio.gather(*(r.run(FakeServer(search_then_answer, version=4), VERL_PARAMS, x)
                                      for x in rows))

    outs = asyncio.run(both())
    assert backend.batches == [2]  # the two episodes' searches went out in one backend call
    by_query = {q.query.split()[0]: q for q in backend.requests}
    assert set(by_query) == {"Ada", "Tom"}
    assert (by_query["Ada"].question, by_query["Ada"].answers) == ("Where was Ada born?", ("Marlow",))
    assert (by_query["Tom"].question, by_query["Tom"].answers) == ("Where was Tom born?", ("Eldham", "Eld"))
    p = 0.3 + 4 / 10 * (0.9 - 0.3)  # linear schedule at the weight version 4
    for who, sid in (("Ada", "nq-train-3#0"), ("Tom", "nq-train-4#0")):
        req = by_query[who]
        assert (req.sample_id, req.turn) == (sid, 0)
        assert req.noisy == is_noisy(7, 4, sid, 0, p)
    assert [o.extra["zs_step"] for o in outs] == [4, 4]
    assert [o.extra["zs_searches"] for o in outs] == [1.0, 1.0]


def test_noise_draws_follow_the_weight_version_of_each_trajectory():
    # 40 samples of one prompt at version 0 and at version 9: the served kinds are exactly the draws of
    # docs/design.md, §The noise draw
    for version in (0, 9):
        backend = Recorder()
        r = runner(backend, group_size=40)

        async def many(r=r, version=version):  # the third prompt of the step: priorities 80..119
            x = row("Where was Ada born?", ["Marlow"], 1, f"g{version}")
            return await asyncio.gather(*(r.run(FakeServer(search_then_answer, version), VERL_PARAMS,
                                                {**x, "priority": 80 + k}) for k in range(40)))

        asyncio.run(many())
        p = r.schedule.probability(version)
        got = {q.sample_id: q.noisy for q in backend.requests}
        assert got == {f"nq-train-1#{k}": is_noisy(7, version, f"nq-train-1#{k}", 0, p) for k in range(40)}
        assert 0 < sum(got.values()) < 40  # both kinds drawn: the test can tell draws apart


def test_sample_rank_comes_from_veRLs_priority_or_else_from_arrival_order():
    # veRL 0.9 numbers the repeated batch (n samples of a prompt side by side) before splitting it
    r, ex = runner(group_size=5), SimpleNamespace(id="nq-train-1")
    assert [r.sample_index({"priority": p, "uid": "a"}, ex) for p in (10, 11, 14, 15)] == [0, 1, 4, 0]
    rows = [{"uid": "a"}, {"uid": "a"}, {"uid": "b"}, {"uid": "a"}]
    assert [r.sample_index(x, ex) for x in rows] == [0, 1, 0, 2]
    with pytest.raises(ConfigError, match=r"rollout\.n must be >= 1"):
        runner(group_size=0)


def test_request_parameters_keep_stop_strings_budget_and_no_seed():
    server = FakeServer(search_then_answer)
    asyncio.run(runner(engine="sglang").run(server, {**VERL_PARAMS, "temperature": 0.6},
                                            row("Where was Ada born?", ["Marlow"], 3, "u")))
    first = server.calls[0]["params"]
    assert first["stop"] == ["</search>", "</answer>"] and first["no_stop_trim"] is True
    assert first["max_tokens"] == CFG.rollout.max_new_tokens and first["temperature"] == 0.6
    assert first["logprobs"] is True and "seed" not in first
    assert len({c["request_id"] for c in server.calls}) == 1  # one trajectory sticks to one server
    gen = ServerManagerGenerator(server, VERL_PARAMS, [TOK.eos_token_id], engine="vllm")
    assert gen.params(9, Sampling())["include_stop_str_in_output"] is True


def test_missing_logprobs_give_none_and_missing_version_fails_before_a_search():
    out = asyncio.run(runner().run(FakeServer(search_then_answer, logprobs=False), VERL_PARAMS,
                                   row("Where was Ada born?", ["Marlow"], 3, "u")))
    assert out.response_logprobs is None and 0 in out.response_mask
    with pytest.raises(StepUnknown, match="reported no weight version"):
        asyncio.run(runner().run(FakeServer(search_then_answer, version=None), VERL_PARAMS,
                                 row("Where was Ada born?", ["Marlow"], 3, "u")))
    backend = Recorder()
    fixed = runner(backend, step_source="fixed", fixed_step=10)
    asyncio.run(fixed.run(FakeServer(search_then_answer, version=None), VERL_PARAMS,
                          row("Where was Ada born?", ["Marlow"], 3, "u")))
    assert backend.requests[0].noisy == is_noisy(7, 10, "nq-train-3#0", 0, 0.9)
    with pytest.raises(ValueError, match=">= 0"):
        FixedStep(-1)


def test_generator_is_a_token_generator_and_batches_in_order():
    server = FakeServer(lambda ctx: "<answer> " + ctx[-3:] + " </answer>")
    gen = ServerManagerGenerator(server, VERL_PARAMS, [TOK.eos_token_id])
    assert isinstance(gen, TokenGenerator)
    prompts = [TOK("one", add_special_tokens=False)["input_ids"], TOK("two", add_special_tokens=False)["input_ids"]]
    outs = gen.generate(prompts, [100, 4], Sampling())
    assert TOK.decode(outs[0].token_ids) == "<answer> one </answer>" and outs[0].finish == "stop"
    assert len(outs[1].token_ids) == 4 and outs[1].finish == "length"
    assert gen.weight_version == 4


def test_bad_settings_and_rows_fail_with_one_line_naming_them():
    with pytest.raises(ConfigError, match=r"rollout.max_response_tokens=2000 exceeds veRL's .*response_length=512"):
        runner(response_length=512)
    with pytest.raises(ConfigError, match=r"rollout.max_prompt_tokens=2000 exceeds .*prompt_length=100"):
        runner(prompt_length=100)
    with pytest.raises(ConfigError, match=r"engine 'trtllm' \(actor_rollout_ref.rollout.name\); valid: vllm, sglang"):
        runner(engine="trtllm")
    with pytest.raises(ConfigError, match="valid: vllm, sglang"):
        ServerManagerGenerator(None, {}, [], engine="hf")
    with pytest.raises(ConfigError, match="valid: weights, fixed"):
        runner(step_source="clock")
    bad = row("Where was Ada born?", ["Marlow"], 3, "u")
    del bad["question"]
    with pytest.raises(DataError, match=r"veRL dataset row \(index 3\), field 'question'"):
        asyncio.run(runner().run(FakeServer(search_then_answer), VERL_PARAMS, bad))


def test_shared_runner_builds_the_backend_once_per_configuration():
    a = shared_runner("", ("search.backend=fake",), TOK, engine="vllm", response_length=8192, prompt_length=4096)
    b = shared_runner("", ("search.backend=fake",), TOK, engine="vllm", response_length=8192, prompt_length=4096)
    c = shared_runner("", ("search.backend=fake", "search.topk=2"), TOK, engine="vllm", response_length=8192,
                      prompt_length=4096)
    assert a is b and a.backend is b.backend and c is not a and c.backend.topk == 2


def test_reward_values_by_hand_on_a_fake_reward_batch():
    # (solution_str, ground_truth) as veRL's naive reward manager passes them, with our agent's extra fields
    batch = [
        ("<think>t</think><search> q </search><information>Doc 1: Paris</information><answer> Marlow town </answer>",
         {"target": ["Marlow"]}, {"zs_searches": 1.0, "zs_noisy_searches": 1.0}),
        ("<answer> the Marlow </answer>", ["Eldham", "marlow"], {}),
        ("<information><answer> Marlow </answer></information> no answer", "Marlow", None),
    ]
    scores = [compute_score("nq", s, g, e) for s, g, e in batch]
    assert {frozenset(s) for s in scores} == {frozenset(scores[0])}  # same keys every time: veRL stacks them
    # "marlow town" vs "marlow": precision 1/2, recall 1 -> F1 2/3; not exact; gold is a substring
    assert scores[0]["score"] == pytest.approx(2 / 3) and scores[0]["f1"] == pytest.approx(2 / 3)
    assert (scores[0]["em"], scores[0]["cover_em"], scores[0]["zs_searches"], scores[0]["zs_noisy_searches"]) == (
        0.0, 1.0, 1.0, 1.0)
    assert (scores[1]["score"], scores[1]["em"], scores[1]["format"]) == (1.0, 1.0, 1.0)  # articles are ignored
    assert (scores[2]["score"], scores[2]["answered"]) == (0.0, 0.0)  # an answer inside <information> is not one
    assert set(scores[0]) >= {f"zs_{m}" for m in EPISODE_METRICS}
    assert compute_score("nq", "<answer> Marlow town </answer>", "Marlow", metric="cover_em")["score"] == 1.0
    with pytest.raises(ValueError, match=r"valid: .*f1"):
        compute_score("nq", "x", "Marlow", metric="acc")
    with pytest.raises(ValueError, match="no 'target'"):
        gold_answers({"answers": ["x"]})


def test_weight_version_step_reads_the_latest_reported_version_and_refuses_none():
    from zerosearch_rl.integrations.verl.step import WeightVersionStep

    gen = ServerManagerGenerator(FakeServer(lambda ctx: "x", version=None), VERL_PARAMS, [])
    step = WeightVersionStep(gen)
    with pytest.raises(StepUnknown, match="step_source: fixed"):
        step()
    for version in (2, 5):
        gen.server.version = version
        asyncio.run(gen.agenerate([65], 4, Sampling()))
        assert step() == version
    gen.weight_version = -1
    with pytest.raises(StepUnknown, match="expected >= 0"):
        step()
