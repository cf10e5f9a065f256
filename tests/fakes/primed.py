"""A tiny policy primed to answer in the protocol's format, so RL tests see rewards that vary (or, with
``reply="search"``, primed to search the question, so a run makes searches to count).

A random tiny LM never writes ``<answer>…</answer>``: every reward is 0 and every advantage 0. A
word-level tokenizer trained on the demo world (our tags are single tokens) and a few seconds of
supervised training on "prompt -> <answer> town </answer>" (right half the time, a wrong town
otherwise) give samples whose rewards are 0 or 1, which is all a trainer test needs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from zerosearch_rl.data import load_examples
from zerosearch_rl.packaged_assets import asset
from zerosearch_rl.protocol import INVALID_ACTION_FEEDBACK, TAGS, build_prompt
from zerosearch_rl.search.corpus import read_corpus
from zerosearch_rl.tiny_models import SPECIAL_TOKENS, tiny_llama

TOWNS = ("Marlow", "Eldham", "Sable Bay", "Harrowgate", "Quenby", "Fennick")


def world_tokenizer(extra_texts: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """Word-level tokenizer trained on the demo world's prompts, corpus and protocol text (and ``extra_texts``)."""
    examples = load_examples(asset("mini_qa.jsonl"))
    texts = [build_prompt(e.question, None, "base") for e in examples]
    texts += [f"{d.title} {d.text}" for d in read_corpus(asset("mini_corpus.jsonl")).documents]
    texts += [INVALID_ACTION_FEEDBACK, "Doc 1 2 3 4 5 (Title: ) No documents were found.",
              "Result Text about The answer to", *extra_texts]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tags = [AddedToken(f"<{slash}{t}>", normalized=False) for t in TAGS for slash in ("", "/")]
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS)))
    tok.add_tokens(tags)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                   bos_token="<s>", eos_token="</s>")


@cache
def primed_policy_dir(root: str, steps: int = 40, seed: int = 0, reply: str = "answer") -> Path:
    """Train (once per process and folder) and save the primed policy; returns its folder. ``reply``: answer
    (a town, right half the time) or search (``<search> the question </search>``)."""
    target = Path(root) / (f"primed-{steps}-{seed}" if reply == "answer" else f"primed-{reply}-{steps}-{seed}")
    if (target / "config.json").is_file():
        return target
    tok = world_tokenizer()
    model = tiny_llama(len(tok), seed).train()
    examples = load_examples(asset("mini_qa.jsonl"))
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        rows, masks = [], []
        for ex in rng.sample(examples, 8):
            answer = ex.answers[0] if rng.random() < 0.5 else rng.choice(TOWNS)
            prompt = tok(build_prompt(ex.question, None, "base"), add_special_tokens=False)["input_ids"]
            text = f"<answer> {answer} </answer>" if reply == "answer" else f"<search> {ex.question} </search>"
            ids_reply = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            rows.append(prompt + ids_reply)
            masks.append([0] * len(prompt) + [1] * len(ids_reply))
        width = max(map(len, rows))
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        mask = torch.tensor([m + [0] * (width - len(m)) for m in masks], dtype=torch.float32)[:, 1:]
        nll = torch.nn.functional.cross_entropy(model(input_ids=ids).logits[:, :-1].transpose(1, 2), ids[:, 1:],
                                                reduction="none")
        ((nll * mask).sum() / mask.sum()).backward()
        opt.step()
        opt.zero_grad()
    model.eval().save_pretrained(target)
    tok.save_pretrained(target)
    return target
