"""``HFGenerator``: the policy's ``TokenGenerator`` in process, over a transformers model.

A ``TokenGenerator`` continues token-id prompts and returns the sampled ids with their behaviour
log-probs (docs/design.md, §Token-in/token-out): nothing is decoded and re-tokenized on the way. ``HFGenerator``
is a KV-cached sampling loop over any Hugging Face causal LM that drops a row from the batch the
moment it finishes (end-of-sequence, a stop string such as ``</search>``, or its own token budget),
so one long sequence does not keep the whole batch busy.

Log-probs are those of the *sampling* distribution, ``log_softmax(logits / temperature)`` (greedy:
temperature 1), which is also what the trainer recomputes. With ``top_p < 1`` the sampler draws from
the truncated distribution while the log-prob is the untruncated one, as in veRL: keep ``top_p = 1``
for training.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from zerosearch_rl.config import Autocast
from zerosearch_rl.generation.base import Finish, Generated, end_of_sequence_ids
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.llm.hf import cache_kwarg
from zerosearch_rl.precision import autocast


def top_p_filter(logits: torch.Tensor, top_p: float | None) -> torch.Tensor:
    """Mask (to -inf) the tokens outside the smallest set whose probability reaches ``top_p`` (None: none)."""
    if top_p is None or top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative - torch.softmax(sorted_logits, dim=-1) >= top_p  # mass before this token
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def stop_window(stop_strings: Sequence[str]) -> int:
    """How many last tokens to decode to see every stop string whole: its length in UTF-8 bytes.

    Every token of a stop string's tokenization decodes to at least one of its bytes, so no tokenizer
    (byte-level ones spell ``</search>`` with 9 tokens) can spread one over more tokens than that.
    """
    return max((len(s.encode("utf-8")) for s in stop_strings), default=0)


@contextmanager
def decoding_attention(model: Any) -> Iterator[None]:
    """Eager attention while decoding on the CPU, the model's own kernel otherwise.

    Measured here: with a left-padding mask, torch's SDPA made batched decoding of SmolLM2 several times
    slower than eager (41 s vs 7 s for 8 x 50 tokens), while for full-sequence training passes SDPA is
    about twice as fast as eager. Each phase gets the kernel that suits it.
    """
    current = getattr(model.config, "_attn_implementation", None)
    switch = model.device.type == "cpu" and current == "sdpa" and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(current)


class HFGenerator:
    """KV-cached batched sampling with per-row stopping, for a Hugging Face causal LM."""

    def __init__(self, model: Any, tokenizer: Any, stop_strings: Sequence[str] = (),
                 precision: Autocast = "none") -> None:
        self.model, self.tokenizer, self.precision = model, tokenizer, precision
        self.stop_strings = tuple(stop_strings)
        self.tail_tokens = stop_window(self.stop_strings)  # the last tokens decoded to look for a stop string
        self.eos_ids = set(end_of_sequence_ids(tokenizer, model.generation_config))
        self._cache_kw = cache_kwarg(model)
        params = inspect.signature(model.forward).parameters
        # the prefill needs the last position's logits only (a vocabulary-wide row per prompt token otherwise)
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)

    def _stopped(self, tokens: list[int]) -> bool:
        if not self.stop_strings:
            return False
        tail = self.tokenizer.decode(tokens[-self.tail_tokens:], skip_special_tokens=False)
        return any(s in tail for s in self.stop_strings)

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: Sequence[int],
                 sampling: Sampling) -> list[Generated]:
        with torch.no_grad(), decoding_attention(self.model), autocast(self.precision, self.model.device):
            return self._generate(prompts, max_new_tokens, sampling)

    def _generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: Sequence[int],
                  sampling: Sampling) -> list[Generated]:
        if len(prompts) != len(max_new_tokens):
            raise ValueError(f"{len(prompts)} prompts but {len(max_new_tokens)} token budgets")
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        out = [Generated([], [], "length") for _ in prompts]
        rows = [i for i, n in enumerate(max_new_tokens) if n > 0]
        if not rows:
            return out
        device = self.model.device
        # A group's samples share their prompt: prefill each distinct prompt once, then copy its cache.
        distinct: dict[tuple[int, ...], int] = {}
        owner = [distinct.setdefault(tuple(prompts[i]), len(distinct)) for i in rows]
        width = max(len(p) for p in distinct)
        ids = torch.full((len(distinct), width), self.pad_id, dtype=torch.long, device=device)
        mask = torch.zeros_like(ids)
        for r, p in enumerate(distinct):  # left padding: every row ends at the same column
            ids[r, width - len(p):] = torch.tensor(p, device=device)
            mask[r, width - len(p):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        generator = None
        if sampling.seed is not None:
            generator = torch.Generator(device=device).manual_seed(sampling.seed)
        tokens: dict[int, list[int]] = {i: [] for i in rows}
        logps: dict[int, list[float]] = {i: [] for i in rows}
        from transformers import DynamicCache

        cache = DynamicCache()
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                            **{self._cache_kw: cache}, **self._last_only).logits[:, -1]
        expand = torch.tensor(owner, device=device)
        if len(distinct) < len(rows):
            cache.reorder_cache(expand)  # type: ignore[arg-type]
        logits, mask, positions = logits[expand], mask[expand], positions[expand]
        next_pos = positions[:, -1] + 1
        alive = list(rows)
        while alive:
            tok, lp = self._sample(logits, sampling, generator)
            keep: list[int] = []
            for r, i in enumerate(alive):
                tokens[i].append(int(tok[r]))
                logps[i].append(float(lp[r]))
                finish: Finish | None = None
                if tokens[i][-1] in self.eos_ids:
                    finish = "eos"
                elif self._stopped(tokens[i]):
                    finish = "stop"
                elif len(tokens[i]) >= max_new_tokens[i]:
                    finish = "length"
                if finish is None:
                    keep.append(r)
                else:
                    out[i] = Generated(tokens[i], logps[i], finish)
            if not keep:
                break
            if len(keep) < len(alive):
                index = torch.tensor(keep, device=device)
                cache.reorder_cache(index)  # type: ignore[arg-type]
                mask, next_pos, tok = mask[index], next_pos[index], tok[index]
                alive = [alive[r] for r in keep]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            logits = self.model(input_ids=tok[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                                use_cache=True, **{self._cache_kw: cache}).logits[:, -1]
            next_pos = next_pos + 1
        return out

    def _sample(self, logits: torch.Tensor, sampling: Sampling,
                generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        logits = logits.float()
        if sampling.temperature == 0:
            tok = logits.argmax(dim=-1)
            return tok, torch.log_softmax(logits, dim=-1).gather(-1, tok[:, None])[:, 0]
        scaled = logits / sampling.temperature
        probs = torch.softmax(top_p_filter(scaled, sampling.top_p), dim=-1)
        tok = torch.multinomial(probs, 1, generator=generator)[:, 0]
        return tok, torch.log_softmax(scaled, dim=-1).gather(-1, tok[:, None])[:, 0]
