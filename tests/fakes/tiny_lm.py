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
