"""Tiny models built from a config, for smoke runs and tests: nothing is downloaded, everything is seeded.

``tiny-random`` (the smoke preset's ``model.policy``) is a 2-layer Llama of width 64 over a byte-level
tokenizer, so any text, tags included, round-trips exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY_RANDOM = "tiny-random"
SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")


def byte_tokenizer() -> Any:
    """A byte-level tokenizer without merges (one token per byte) plus pad/unk/bos/eos."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *alphabet])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                   bos_token="<s>", eos_token="</s>")


def tiny_config(vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 2) -> Any:
    """The ``LlamaConfig`` of ``tiny_llama`` (the pre-flight reads tiny-random's shape from it, without weights)."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                       num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                       max_position_embeddings=4096, pad_token_id=0, bos_token_id=2, eos_token_id=3,
                       tie_word_embeddings=True, attn_implementation="sdpa")  # type: ignore[call-arg]


def tiny_llama(vocab_size: int, seed: int = 0, hidden: int = 64, layers: int = 2, heads: int = 2) -> Any:
    """A randomly initialised Llama (seeded, so two calls give identical weights)."""
    import torch
    from transformers import LlamaForCausalLM

    config = tiny_config(vocab_size, hidden, layers, heads)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config).eval()


def save_tiny_random(path: str | Path, seed: int = 0) -> Path:
    """Write the tiny model and its tokenizer as a normal Hugging Face checkpoint folder."""
    target = Path(path)
    tokenizer = byte_tokenizer()
    tiny_llama(len(tokenizer), seed).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
