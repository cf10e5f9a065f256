"""Tiny models and tokenizers built inside the test (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from zerosearch_rl.tiny_models import SPECIAL_TOKENS, byte_tokenizer, tiny_llama

__all__ = ["byte_tokenizer", "save_tiny", "tiny_model", "tiny_tokenizer"]

WORDS = (
    "the a of is in was born where who which company work for doc useful noisy query output answer "
    "search information think marlow eldham veland ada tomas kowalski varga capital peru lima "
    ": . , ? ! \" 1 2 3 4 5 < > /"
).split()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over a small vocabulary (short sequences, readable ids)."""
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                   bos_token="<s>", eos_token="</s>")


def tiny_model(vocab_size: int, seed: int = 0):
    return tiny_llama(vocab_size, seed, hidden=64, layers=2, heads=2)


def save_tiny(path: Path, seed: int = 0) -> Path:
    """The word-level tiny model saved as a checkpoint folder."""
    tokenizer = tiny_tokenizer()
    tiny_model(len(tokenizer), seed).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_vllm_tiny(path: Path, chat_template: str | None = None) -> Path:
    """A word-level tiny Llama that vLLM's CPU attention accepts (head_dim 64), saved with its tokenizer.

    Its end-of-sequence logit row is a scaled copy of the word "output", so some greedy continuations end
    early and others run to their token budget: both endings get exercised.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = chat_template
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3, tie_word_embeddings=False,
                         initializer_range=0.3)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        rows = model.lm_head.weight
        rows[tokenizer.eos_token_id] = 1.05 * rows[tokenizer.convert_tokens_to_ids("output")]
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
