"""A word-level tokenizer for the world: one token per word, so tiny models see short sequences.

Words are split as GPT-2 does (a word keeps its leading space, punctuation runs are their own
pieces; byte-level characters, so any text the vocabulary covers decodes back byte for byte). The
protocol's tags are added tokens (whole, never split) but *not* special ones: the rollout decodes
with ``skip_special_tokens=True`` and must still see them. The vocabulary is exactly the words of
the texts it is built from, plus the digits: every text of the world (documents of both eras,
questions, the policy prompt, the simulator's SFT prompt, observations, traces) round-trips, and an
unknown word becomes ``<unk>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from zerosearch_rl.protocol import INVALID_ACTION_FEEDBACK, NO_RESULTS, TAGS, build_prompt, observation_text
from zerosearch_rl.records import QAExample
from zerosearch_rl.search.simulated import SFT_TEMPLATE
from zerosearch_rl.world.facts import World
from zerosearch_rl.world.text import documents, questions
from zerosearch_rl.world.traces import FORCED_SEARCH_PREFIX, THINK_AGAIN, THINK_FOUND, THINK_MEMORY

SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")
TAG_TOKENS = tuple(t for tag in TAGS for t in (f"<{tag}>", f"</{tag}>"))
_TAG_SPLIT = re.compile("(" + "|".join(re.escape(t) for t in TAG_TOKENS) + ")")
DIGITS = tuple(str(d) for d in range(10))

#: The policy tokenizer's chat template: of the instruction (``protocol.INSTRUCTION``), only the
#: ``Question: ...`` line is kept. Through the existing prompt machinery (``prompt_style`` auto or
#: chat), a tiny policy reads a prompt of about 12 tokens instead of about 110; any other message
#: passes unchanged.
SHORT_PROMPT_TEMPLATE = (
    "{%- set text = messages[-1]['content'] -%}"
    "{%- if 'Question: ' in text -%}{{ 'Question: ' + text.split('Question: ')[-1] }}"
    "{%- else -%}{{ text }}{%- endif -%}"
)


def _pre_tokenizer() -> Any:
    from tokenizers import pre_tokenizers

    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)


def words_of(texts: Iterable[str]) -> list[str]:
    """The distinct pre-tokenized pieces of ``texts`` (tags excepted), sorted: the vocabulary."""
    pre = _pre_tokenizer()
    seen: set[str] = set()
    for text in [*texts, " ".join(DIGITS), "".join(DIGITS)]:
        for part in _TAG_SPLIT.split(text):
            if part and part not in TAG_TOKENS:
                seen.update(piece for piece, _ in pre.pre_tokenize_str(part))
    return sorted(seen)


def build_tokenizer(texts: Iterable[str]) -> Any:
    """A ``PreTrainedTokenizerFast`` whose vocabulary is the special tokens, the tags and the words of ``texts``.

    The order is fixed (specials, tags, sorted words), so the same texts always give the same ids.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    words = [w for w in words_of(texts) if w not in SPECIAL_TOKENS]
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *TAG_TOKENS, *words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", clean_up_tokenization_spaces=False)


def sft_prompts(examples: Sequence[QAExample]) -> list[str]:
    """The simulator SFT prompt for each question, both kinds (for the vocabulary)."""
    out = []
    for ex in examples:
        for kind in ("useful", "noisy"):
            out.append(SFT_TEMPLATE.format(kind=kind, Kind=kind.capitalize(), question=ex.question,
                                           answer=ex.answers[0], query=ex.metadata["queries"][0]))
    return out


def vocabulary_texts(world: World, samples: Sequence[Sequence[tuple[str, bool]]]) -> list[str]:
    """Every text the models must be able to read and write."""
    qa = [ex for split in questions(world).values() for ex in split]
    texts = [text for runs in samples for text, _ in runs]
    texts += [d.text for era in ("A", "B") for d in documents(world, era)]
    texts.append(observation_text(documents(world, "B")[:5]))  # "Doc N (Title: ...)" for up to 5 documents
    texts += [build_prompt(ex.question, None, "base") for ex in qa] + sft_prompts(qa)
    texts += [INVALID_ACTION_FEEDBACK, observation_text([]), NO_RESULTS, FORCED_SEARCH_PREFIX, THINK_MEMORY,
              THINK_AGAIN, THINK_FOUND, "Doc 1: Doc 2: Doc 3: Doc 4: Doc 5:"]
    texts += [f"<answer> {a} </answer>" for ex in qa for a in (*ex.answers, ex.metadata["era_a_answer"])]
    return texts
