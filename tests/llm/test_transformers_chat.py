from __future__ import annotations

import pytest
import torch

from fakes.tiny_lm import save_tiny
from zerosearch_rl.llm.base import Sampling
from zerosearch_rl.llm.hf import resolve_device
from zerosearch_rl.llm.transformers_chat import TransformersChat

MESSAGES = ["where was ada born ?", "the capital of peru is", "who", "which company does tomas work for ?"]


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    return TransformersChat.from_pretrained(str(save_tiny(tmp_path_factory.mktemp("tiny"))), batch_size=3)


def test_batched_greedy_equals_one_at_a_time(chat):
    # Left padding must not change what a row generates: a batch of mixed lengths gives the same
    # text as generating each message alone.
    greedy = Sampling(temperature=0.0, max_new_tokens=12)
    together = chat.generate(MESSAGES, greedy)
    alone = [chat.generate([m], greedy)[0] for m in MESSAGES]
    assert [c.text for c in together] == [c.text for c in alone]
    assert all(c.ok and c.text for c in together)
    assert [c.prompt_tokens for c in together] == [len(chat.tokenizer(m, add_special_tokens=False)["input_ids"])
                                                   for m in MESSAGES]
    assert all(1 <= c.completion_tokens <= 12 for c in together)


def test_seeded_sampling_is_reproducible_and_leaves_the_global_rng_alone(chat):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    hot = Sampling(temperature=1.5, max_new_tokens=10, seed=7)
    first = [c.text for c in chat.generate(MESSAGES, hot)]
    assert torch.rand(1) == expected_next  # the caller's RNG stream is untouched
    assert [c.text for c in chat.generate(MESSAGES, hot)] == first
    assert [c.text for c in chat.generate(MESSAGES, Sampling(temperature=1.5, max_new_tokens=10, seed=8))] != first


def test_empty_path_and_missing_cuda_are_clear_errors():
    with pytest.raises(ValueError, match=r"simulator\.model is empty"):
        TransformersChat.from_pretrained("")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"
