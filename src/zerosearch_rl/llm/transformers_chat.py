"""An in-process Hugging Face model as a ``ChatLLM`` (the CPU default behind the simulated engine)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from zerosearch_rl.llm.base import Completion, Sampling, render_chat
from zerosearch_rl.llm.hf import load_causal_lm


class TransformersChat:
    """Batched generation with a local causal LM; messages go through the chat template when there is one,
    after ``system_message`` (``llm.base.chat_messages``: "" an empty one, as the original; None none)."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16, system_message: str | None = "") -> None:
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size
        self.system_message = system_message
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"  # generation continues from the right edge of every row

    @classmethod
    def from_pretrained(cls, path: str, dtype: str = "float32", device: str = "auto",
                        batch_size: int = 16, system_message: str | None = "") -> TransformersChat:
        if not path:
            raise ValueError("simulator.model is empty: give a local model directory for the transformers client")
        model, tokenizer = load_causal_lm(path, dtype, device)
        return cls(model, tokenizer, batch_size, system_message)

    def render(self, message: str) -> str:
        return render_chat(self.tokenizer, message, self.system_message)

    @torch.no_grad()
    def generate(self, messages: Sequence[str], sampling: Sampling) -> list[Completion]:
        out: list[Completion] = []
        with torch.random.fork_rng(devices=[]):  # a seed here must not reseed the caller's RNG
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            for start in range(0, len(messages), self.batch_size):
                out.extend(self._batch([self.render(m) for m in messages[start : start + self.batch_size]],
                                       sampling))
        return out

    def _batch(self, texts: list[str], sampling: Sampling) -> list[Completion]:
        t0 = time.perf_counter()
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        greedy = sampling.temperature == 0
        generated = self.model.generate(
            **enc,
            do_sample=not greedy,
            temperature=None if greedy else sampling.temperature,
            top_p=None if greedy else sampling.top_p,  # None: the whole distribution, not generation_config's
            top_k=None,
            max_new_tokens=sampling.max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        new = generated[:, enc["input_ids"].shape[1]:]
        latency = (time.perf_counter() - t0) / len(texts)
        results = []
        for row, mask in zip(new.tolist(), enc["attention_mask"].tolist(), strict=True):
            eos = self.tokenizer.eos_token_id
            length = row.index(eos) + 1 if eos in row else len(row)
            results.append(Completion(
                text=self.tokenizer.decode(row[:length], skip_special_tokens=True),
                prompt_tokens=int(sum(mask)), completion_tokens=length, latency_s=latency,
            ))
        return results

    def close(self) -> None:
        return None
