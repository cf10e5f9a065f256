from __future__ import annotations

import pytest
import torch

from fakes.tiny_lm import tiny_model, tiny_tokenizer
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.generation.transformers import HFGenerator, top_p_filter


@pytest.fixture(scope="module")
def lm():
    tok = tiny_tokenizer()
    return tiny_model(len(tok), seed=1), tok


def encode(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


PROMPTS = ["where was ada born ?", "the capital of peru is lima .", "who", "which company does tomas work for ?"]


def teacher_forced_logprobs(model, prompt, continuation, temperature=1.0):
    ids = torch.tensor([prompt + continuation])
    logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(continuation)[:, None])[:, 0]


def test_greedy_matches_transformers_generate_and_is_batch_invariant(lm):
    model, tok = lm
    gen = HFGenerator(model, tok)
    prompts = [encode(tok, p) for p in PROMPTS]
    batched = gen.generate(prompts, [10] * 4, Sampling(temperature=0.0))
    for p, out in zip(prompts, batched, strict=True):
        alone = gen.generate([p], [10], Sampling(temperature=0.0))[0]
        assert out.token_ids == alone.token_ids
        ref = model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                             max_new_tokens=10, do_sample=False, pad_token_id=0, eos_token_id=3)[0, len(p):].tolist()
        assert out.token_ids == ref[: len(out.token_ids)]


def test_behaviour_logprobs_equal_a_teacher_forced_forward(lm):
    model, tok = lm
    gen = HFGenerator(model, tok)
    prompts = [encode(tok, p) for p in PROMPTS]
    outs = gen.generate(prompts, [12, 5, 12, 8], Sampling(temperature=0.7, seed=3))
    with torch.no_grad():
        for p, out in zip(prompts, outs, strict=True):
            expected = teacher_forced_logprobs(model, p, out.token_ids, temperature=0.7)
            assert torch.allclose(torch.tensor(out.logprobs), expected, atol=1e-5)


def test_budgets_eos_and_stop_strings(lm):
    model, tok = lm
    prompts = [encode(tok, p) for p in PROMPTS]
    outs = HFGenerator(model, tok).generate(prompts, [3, 1, 0, 6], Sampling(temperature=1.0, seed=0))
    assert [len(o.token_ids) <= n for o, n in zip(outs, [3, 1, 0, 6], strict=True)] == [True] * 4
    assert outs[2].token_ids == [] and outs[2].finish == "length"
    assert all(o.finish in ("length", "eos") for o in outs)
    # a stop string ends the row at the token that completes it: take the third greedy token as the stop word
    free = HFGenerator(model, tok).generate(prompts[:1], [10], Sampling(temperature=0.0))[0]
    word = tok.convert_ids_to_tokens(free.token_ids[2])
    first = next(k for k, t in enumerate(free.token_ids) if word in tok.decode(free.token_ids[: k + 1]))
    stopped = HFGenerator(model, tok, stop_strings=[word]).generate(prompts[:1], [10], Sampling(temperature=0.0))[0]
    assert stopped.token_ids == free.token_ids[: first + 1] and stopped.finish == "stop"


def test_seeded_sampling_is_reproducible(lm):
    model, tok = lm
    gen = HFGenerator(model, tok)
    prompts = [encode(tok, p) for p in PROMPTS]
    a = gen.generate(prompts, [8] * 4, Sampling(temperature=1.0, seed=11))
    b = gen.generate(prompts, [8] * 4, Sampling(temperature=1.0, seed=11))
    c = gen.generate(prompts, [8] * 4, Sampling(temperature=1.0, seed=12))
    assert [o.token_ids for o in a] == [o.token_ids for o in b] != [o.token_ids for o in c]


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(top_p_filter(logits, 0.7))[0].tolist()
    assert kept == [True, True, False, False]  # 0.5 < 0.7 <= 0.8
    assert torch.isfinite(top_p_filter(logits, 1.0)).all()
    assert torch.isfinite(top_p_filter(logits, 0.1))[0].tolist() == [True, False, False, False]


def test_bad_inputs(lm):
    model, tok = lm
    gen = HFGenerator(model, tok)
    with pytest.raises(ValueError, match="2 prompts but 1 token budgets"):
        gen.generate([[5], [6]], [3], Sampling())
    with pytest.raises(ValueError, match="at least one token"):
        gen.generate([[]], [3], Sampling())


def test_a_group_sharing_its_prompt_is_prefilled_once_and_stays_exact(lm):
    model, tok = lm
    gen = HFGenerator(model, tok)
    a, b = encode(tok, PROMPTS[0]), encode(tok, PROMPTS[3])
    calls = []
    hook = model.register_forward_pre_hook(lambda m, args, kwargs: calls.append(kwargs["input_ids"].shape),
                                           with_kwargs=True)
    try:
        greedy = gen.generate([a, a, b, a], [6, 6, 6, 6], Sampling(temperature=0.0))
    finally:
        hook.remove()
    assert calls[0][0] == 2  # the prefill ran on the two distinct prompts only
    assert greedy[0].token_ids == greedy[1].token_ids == greedy[3].token_ids
    assert greedy[2].token_ids == gen.generate([b], [6], Sampling(temperature=0.0))[0].token_ids
    sampled = gen.generate([a, a, b, a], [10, 10, 10, 10], Sampling(temperature=1.0, seed=4))
    with torch.no_grad():
        for p, out in zip([a, a, b, a], sampled, strict=True):
            expected = teacher_forced_logprobs(model, p, out.token_ids)
            assert torch.allclose(torch.tensor(out.logprobs), expected, atol=1e-5)


class ScriptedLM(torch.nn.Module):
    """A causal LM that writes ``script`` whatever its prompt (the script's k-th token after a prompt of
    ``prompt_len`` tokens), through the same forward signature and KV-cache arguments as a real one."""

    def __init__(self, script: list[int], vocab: int, prompt_len: int, eos_ids: list[int]) -> None:
        from types import SimpleNamespace

        from transformers import GenerationConfig

        super().__init__()
        self.script, self.vocab, self.prompt_len = script, vocab, prompt_len
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(_attn_implementation=None)
        self.generation_config = GenerationConfig(eos_token_id=eos_ids)

    @property
    def device(self) -> torch.device:
        return self.weight.device

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=None, past_key_values=None):
        from types import SimpleNamespace

        k = (position_ids[:, -1] - (self.prompt_len - 1)).clamp(max=len(self.script) - 1)
        logits = torch.full((input_ids.shape[0], 1, self.vocab), -1e4)
        logits[torch.arange(len(k)), 0, torch.tensor(self.script)[k]] = 0.0
        return SimpleNamespace(logits=logits)


@pytest.mark.parametrize(("text", "stop", "expected"), [
    ("<think>x</think><search> who </search> never read", "</search>", "<think>x</think><search> who </search>"),
    ("<answer> Lima </answer> and more", "</answer>", "<answer> Lima </answer>"),
    ("no tag at all, runs to the budget", "</search>", "no tag at all, runs to"),
])
def test_byte_level_stop_strings_end_the_turn(text, stop, expected):
    """With one token per byte, ``</search>`` and ``</answer>`` are 9 tokens each: the generator must still see
    them whole and stop right after them."""
    from zerosearch_rl.tiny_models import byte_tokenizer

    tok = byte_tokenizer()
    prompt = encode(tok, "Question: where? ")
    assert len(encode(tok, stop)) == 9
    model = ScriptedLM(encode(tok, text), len(tok), len(prompt), [tok.eos_token_id])
    out = HFGenerator(model, tok, ("</search>", "</answer>")).generate([prompt], [len(encode(tok, expected))],
                                                                       Sampling(temperature=0.0))[0]
    assert tok.decode(out.token_ids) == expected
    assert out.finish == ("length" if stop not in text else "stop")


def test_every_end_of_sequence_id_ends_the_turn(tmp_path):
    """An instruct model's generation config lists more EOS ids than its tokenizer's one (``<|im_end|>`` and
    ``<|endoftext|>``): each ends a turn as end-of-sequence, in our sampler and in the veRL seam alike."""
    from transformers import AutoTokenizer

    from zerosearch_rl.generation.base import end_of_sequence_ids
    from zerosearch_rl.tiny_models import byte_tokenizer

    tok = byte_tokenizer()
    other = encode(tok, "#")[0]
    prompt = encode(tok, "Q? ")
    model = ScriptedLM(encode(tok, "ab#cd"), len(tok), len(prompt), [tok.eos_token_id, other])
    out = HFGenerator(model, tok).generate([prompt], [10], Sampling(temperature=0.0))[0]
    assert (tok.decode(out.token_ids), out.finish) == ("ab#", "eos")
    tok.save_pretrained(tmp_path)
    model.generation_config.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)  # as veRL loads the policy's tokenizer from its folder
    assert end_of_sequence_ids(loaded) == {tok.eos_token_id, other}
    assert end_of_sequence_ids(byte_tokenizer()) == {tok.eos_token_id}  # no folder: the tokenizer's own


def test_the_policys_sampling_defaults_are_the_rollouts_and_not_the_simulators():
    from zerosearch_rl.config import RolloutConfig, SimulatorConfig

    rollout, simulator = RolloutConfig(), SimulatorConfig()
    assert Sampling() == Sampling(temperature=rollout.temperature, top_p=rollout.top_p, seed=None)
    assert rollout.temperature != simulator.temperature  # the two defaults differ, so the two records do too
    from zerosearch_rl.llm.base import Sampling as ChatSampling

    assert ChatSampling().temperature == simulator.temperature
