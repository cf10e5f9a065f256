"""VLLMGenerator against HFGenerator and the trainer's log-probs, on one tiny saved model (``make test-vllm``).

The model is built as in tests/llm/test_vllm_chat.py: Llama, hidden 128 with 2 heads (vLLM's CPU
attention needs head_dim >= 64), 2 layers, float32, weights drawn wide so greedy continuations differ
from prompt to prompt with clear margins, and an EOS row of the output layer that copies the row of
"output" (x 1.05) so that some rows end with EOS and others at their budget. One engine serves the whole
module; the test that changes its weights puts the saved ones back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaForCausalLM

from fakes.tiny_lm import save_vllm_tiny, tiny_tokenizer
from zerosearch_rl.generation import vllm as generation_vllm
from zerosearch_rl.generation.base import Generated
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.generation.transformers import HFGenerator
from zerosearch_rl.generation.vllm import VLLMGenerator
from zerosearch_rl.policy import TokenBatch, token_logprobs

pytestmark = pytest.mark.vllm

MAX_MODEL_LEN = 64
TEXTS = ["where was ada born ?", "the capital of peru is", "who", "which company does tomas work for ?",
         "query : marlow eldham", "useful doc"]
BUDGETS = [12, 0, 24, 5, 24, 1]
GREEDY = Sampling(temperature=0.0)
LOGPROB_ATOL = 1e-3
"""Max abs difference allowed between vLLM's behaviour log-probs and the trainer's (float32, CPU)."""


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_vllm_tiny(tmp_path_factory.mktemp("tiny-vllm-generator"))


@pytest.fixture(scope="module")
def generator(saved_model: Path):
    # blocks of 32 tokens (the CPU build's default is 128): prompts longer than that hit the prefix cache
    engine = VLLMGenerator(str(saved_model), dtype="float32", max_model_len=MAX_MODEL_LEN,
                           kv_cache_memory_bytes=64 << 20, block_size=32)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def original(saved_model: Path) -> LlamaForCausalLM:
    return AutoModelForCausalLM.from_pretrained(saved_model, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def prompts() -> list[list[int]]:
    tokenizer = tiny_tokenizer()
    return [tokenizer.encode(text, add_special_tokens=False) for text in TEXTS]


def recomputed_logprobs(model: torch.nn.Module, prompts: Sequence[Sequence[int]], outs: Sequence[Generated],
                        temperature: float) -> list[torch.Tensor]:
    """The trainer's log-probs (``token_logprobs`` on prompt + continuation) of each row's sampled tokens."""
    rows = [(list(p), o.token_ids) for p, o in zip(prompts, outs, strict=True) if o.token_ids]
    width = max(len(p) + len(t) for p, t in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    attn = torch.zeros_like(ids)
    for r, (p, t) in enumerate(rows):
        ids[r, : len(p) + len(t)] = torch.tensor(p + t)
        attn[r, : len(p) + len(t)] = 1
    zeros = torch.zeros((len(rows), width - 1))
    with torch.no_grad():
        logp, _ = token_logprobs(model, TokenBatch(ids, attn, zeros, zeros), temperature)
    return [logp[r, len(p) - 1 : len(p) - 1 + len(t)] for r, (p, t) in enumerate(rows)]


def behaviour_logprobs(outs: Sequence[Generated]) -> list[torch.Tensor]:
    return [torch.tensor(o.logprobs) for o in outs if o.token_ids]


def max_abs_diff(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def test_greedy_ids_finishes_and_logprobs_equal_hf_generator(generator, original, prompts):
    expected = HFGenerator(original, tiny_tokenizer()).generate(prompts, BUDGETS, GREEDY)
    got = generator.generate(prompts, BUDGETS, GREEDY)
    assert [o.token_ids for o in got] == [o.token_ids for o in expected]
    assert [o.finish for o in got] == [o.finish for o in expected]
    assert got[1] == Generated([], [], "length")  # budget 0: never sent to the engine
    assert {o.finish for o in got} == {"eos", "length"}  # both endings are exercised
    assert len({tuple(o.token_ids) for o in got}) == len(got)  # distinct rows: the order check has teeth
    assert max_abs_diff(behaviour_logprobs(got), behaviour_logprobs(expected)) < LOGPROB_ATOL
    assert generator.generate(prompts[::-1], BUDGETS[::-1], GREEDY) == got[::-1]


def first_new_word(tokenizer, ids: list[int]) -> str | None:
    """A word of the continuation ``ids``, from its third token on, that its text does not hold before."""
    for k in range(2, len(ids)):
        word = tokenizer.convert_ids_to_tokens(ids[k])
        if word.isalpha() and word not in tokenizer.decode(ids[:k]):
            return word
    return None


def test_stop_strings_end_rows_as_hf_generator_does(generator, original, prompts, monkeypatch):
    tokenizer = tiny_tokenizer()
    free = generator.generate(prompts, BUDGETS, GREEDY)
    stops = [w for w in (first_new_word(tokenizer, o.token_ids) for o in free) if w][:2]
    assert len(stops) == 2
    monkeypatch.setattr(generator, "stop_strings", tuple(stops))
    got = generator.generate(prompts, BUDGETS, GREEDY)
    expected = HFGenerator(original, tokenizer, stop_strings=stops).generate(prompts, BUDGETS, GREEDY)
    assert [(o.token_ids, o.finish) for o in got] == [(o.token_ids, o.finish) for o in expected]
    for before, after in zip(free, got, strict=True):
        assert after.token_ids == before.token_ids[: len(after.token_ids)]  # the same text, cut short
        if after.finish == "stop":  # the stop string is kept: the last token completes it
            assert any(tokenizer.decode(after.token_ids).endswith(s) for s in stops)
    assert [o.finish for o in got].count("stop") >= 2


def test_logprobs_are_those_of_the_temperature_scaled_distribution(generator, original, prompts):
    # At temperature 1 raw and processed log-probs coincide; at 0.6 only processed ones match the trainer's.
    outs = generator.generate(prompts, BUDGETS, Sampling(temperature=0.6, seed=1))
    behaviour = behaviour_logprobs(outs)
    assert max_abs_diff(behaviour, recomputed_logprobs(original, prompts, outs, 0.6)) < LOGPROB_ATOL
    assert max_abs_diff(behaviour, recomputed_logprobs(original, prompts, outs, 1.0)) > 0.1


def test_seeded_sampling_is_reproducible_per_row(generator, prompts):
    hot = Sampling(temperature=1.0, seed=7)
    first = generator.generate(prompts, BUDGETS, hot)
    assert generator.generate(prompts, BUDGETS, hot) == first
    assert generator.generate(prompts[:1], BUDGETS[:1], hot)[0] == first[0]  # row i is seeded with seed + i
    assert generator.generate(prompts, BUDGETS, Sampling(temperature=1.0, seed=8)) != first
    twins = generator.generate([prompts[0]] * 2, [12, 12], hot)
    assert twins[0].token_ids != twins[1].token_ids  # a GRPO group's shared prompt gets independent samples


def test_bad_inputs_fail_before_reaching_the_engine(generator, prompts):
    with pytest.raises(ValueError, match="2 prompts but 1 token budgets"):
        generator.generate(prompts[:2], [3], GREEDY)
    with pytest.raises(ValueError, match="at least one token"):
        generator.generate([[]], [3], GREEDY)
    with pytest.raises(ValueError, match=f"prompt 1 has {MAX_MODEL_LEN} tokens.*max_model_len {MAX_MODEL_LEN}"):
        generator.generate([prompts[0], [5] * MAX_MODEL_LEN], [3, 3], GREEDY)


def test_sync_weights_makes_rollouts_follow_the_trained_policy(generator, original, saved_model, prompts,
                                                               monkeypatch):
    # The trained policy: a few SGD steps towards continuations of its own, so every weight matrix moves.
    policy = AutoModelForCausalLM.from_pretrained(saved_model, dtype=torch.float32)
    targets = torch.tensor([[*p[:3], 5, 9, 14, 22, 31] for p in prompts if len(p) >= 3])
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.05)
    for _ in range(5):
        optimizer.zero_grad()
        policy(input_ids=targets, labels=targets).loss.backward()
        optimizer.step()
    policy.eval()
    hot = Sampling(temperature=1.0, seed=3)
    # one prompt past a 32-token block: its KV is cached from the stale rollout, and must not be reused after
    rows, budgets = [*prompts, [t for p in prompts * 2 for t in p][:40]], [*BUDGETS, 20]

    stale = generator.generate(rows, budgets, hot)
    stale_diff = max_abs_diff(behaviour_logprobs(stale), recomputed_logprobs(policy, rows, stale, 1.0))

    monkeypatch.setattr(generation_vllm, "SYNC_CHUNK_BYTES", 100_000)  # many chunks: q, k and v land apart
    try:
        generator.sync_weights(policy.state_dict())
        fresh = generator.generate(rows, budgets, hot)
        behaviour = behaviour_logprobs(fresh)
        trainer = recomputed_logprobs(policy, rows, fresh, 1.0)
    finally:
        generator.sync_weights(original.state_dict())
    diff = max_abs_diff(behaviour, trainer)
    ratio = torch.cat(trainer).sub(torch.cat(behaviour)).exp()
    print(f"\nmax |behaviour - recomputed| log-prob: synced {diff:.2e}, stale {stale_diff:.2e}; "
          f"importance ratio synced: mean {float(ratio.mean()):.6f}, max {float(ratio.max()):.6f} "
          f"over {ratio.numel()} tokens")
    assert diff < LOGPROB_ATOL
    assert stale_diff > 0.1  # without the sync vLLM still samples from the old policy
    assert float((ratio - 1).abs().max()) < 2 * LOGPROB_ATOL
    # and the saved weights are back: greedy rollouts equal HFGenerator's on the original model again
    expected = HFGenerator(original, tiny_tokenizer()).generate(prompts, BUDGETS, GREEDY)
    assert [o.token_ids for o in generator.generate(prompts, BUDGETS, GREEDY)] == [o.token_ids for o in expected]


def test_training_with_vllm_rollouts_keeps_them_on_policy(tmp_path):
    # Two GRPO steps whose rollouts come from vLLM: after the first update the engine gets the new
    # weights, so the trainer's recomputed log-probs of the second step's samples match vLLM's.
    from zerosearch_rl.config import load_config
    from zerosearch_rl.tiny_models import save_tiny_random
    from zerosearch_rl.trainer import Trainer

    policy = save_tiny_random(tmp_path / "policy", seed=3)
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"id": "a", "question": "Where was Ada born?", "answers": ["Marlow"]}\n'
                  '{"id": "b", "question": "Where was Tom born?", "answers": ["Eldham"]}\n')
    cfg = load_config("configs/smoke.yaml", [
        f"model.policy={policy}", f"data.train_files=[{qa}]", f"trainer.output_dir={tmp_path / 'run'}",
        "rollout.generator=vllm", "algorithm.old_logprobs=recompute", "algorithm.entropy_coef=0.5",
        "trainer.lr=0.05", "rollout.max_new_tokens=16"])
    trainer = Trainer(cfg)
    try:
        history = trainer.train()
    finally:
        trainer.close()
    assert history[0]["actor/grad_norm"] > 0  # the first update really changed the policy
    for m in history:
        assert abs(m["actor/behaviour_ratio_mean"] - 1) < 1e-3 and m["actor/behaviour_ratio_max"] < 1.01, m
    assert history[1]["time/weight_sync"] > 0
