"""What every policy generator is: the ``TokenGenerator`` protocol, its ``Generated`` record, the end-of-sequence
ids they stop on, and ``ForcedFirstTurn``, which wraps any of them (docs/design.md, §Token-in/token-out).

The generators: ``transformers.HFGenerator`` (in process), ``vllm.VLLMGenerator`` (a vLLM engine), veRL's servers
(``integrations/verl/generator.py``) and, for evaluation only, ``openai_completions.CompletionsGenerator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from zerosearch_rl.generation.sampling import Sampling

Finish = Literal["stop", "eos", "length"]


@dataclass(frozen=True)
class Generated:
    """One continuation: the sampled ids, their log-probs, and why it ended."""

    token_ids: list[int]
    logprobs: list[float]
    finish: Finish


@runtime_checkable
class TokenGenerator(Protocol):
    """Continues each prompt (token ids) by at most its own ``max_new_tokens``."""

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: Sequence[int],
                 sampling: Sampling) -> list[Generated]: ...


def end_of_sequence_ids(tokenizer: Any, generation_config: Any = None) -> frozenset[int]:
    """The token ids that end an episode's turn as end-of-sequence: the tokenizer's EOS and every EOS id of
    the model's generation config (instruct models list several, e.g. ``<|im_end|>`` and ``<|endoftext|>``;
    the inference engines stop on all of them).

    Without ``generation_config`` it is read from the tokenizer's folder when that holds a
    ``generation_config.json`` (a model folder, as veRL loads it). The one definition for every generator.
    """
    if generation_config is None:
        folder = Path(str(getattr(tokenizer, "name_or_path", "") or ""))
        if (folder / "generation_config.json").is_file():
            from transformers import GenerationConfig

            generation_config = GenerationConfig.from_pretrained(folder)
    ids = getattr(generation_config, "eos_token_id", None)
    found = set(ids if isinstance(ids, list | tuple) else [] if ids is None else [ids])
    if tokenizer.eos_token_id is not None:
        found.add(tokenizer.eos_token_id)
    return frozenset(int(i) for i in found)


class ForcedFirstTurn:
    """A generator whose first call (the first turn of a batch of episodes) starts with ``prefix`` ids.

    The prefix tokens are recorded as policy tokens with log-prob 0: measurement only, never training.
    """

    def __init__(self, inner: TokenGenerator, prefix: Sequence[int]) -> None:
        self.inner, self.prefix, self.first = inner, list(prefix), True

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: Sequence[int],
                 sampling: Sampling) -> list[Generated]:
        if not self.first:
            return self.inner.generate(prompts, max_new_tokens, sampling)
        self.first = False
        n = len(self.prefix)
        outs = self.inner.generate([[*p, *self.prefix] for p in prompts], [max(1, b - n) for b in max_new_tokens],
                                   sampling)
        return [Generated(self.prefix + g.token_ids, [0.0] * n + g.logprobs, g.finish) for g in outs]
