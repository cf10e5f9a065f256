"""Next-token pretraining of the world's tiny models, bit-reproducible on a CPU.

Determinism: the weights come from ``torch.manual_seed(seed)`` inside a forked RNG, batches from a
string-seeded ``random.Random``, the thread count is fixed (``threads``) and torch's deterministic
algorithms are on for the run, so the same texts, spec and seed give bit-identical weights.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from zerosearch_rl.config import Autocast
from zerosearch_rl.lr_schedule import lr_multiplier
from zerosearch_rl.precision import autocast

Sample = tuple[list[int], list[int]]  # token ids, loss mask (1 = trained)


@dataclass(frozen=True)
class ModelSpec:
    """A Llama of this shape (the prototype found 4 layers of width 128, under 1M parameters, workable)."""

    hidden: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int = 256
    max_positions: int = 1024


@dataclass(frozen=True)
class TrainSpec:
    """Optimisation of one pretraining run: AdamW, linear warm-up then cosine decay to 10%."""

    steps: int = 2000
    batch_size: int = 16
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.01
    threads: int = 2
    precision: Autocast = "none"  # model.autocast: bf16 matrix products over the float32 weights


def new_model(vocab_size: int, spec: ModelSpec, seed: int, tokenizer: Any) -> Any:
    """A randomly initialised Llama, seeded without touching the caller's RNG."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=spec.hidden, intermediate_size=spec.intermediate,
                         num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
                         num_key_value_heads=spec.heads, max_position_embeddings=spec.max_positions,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
                         attn_implementation="sdpa")  # type: ignore[call-arg]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


@contextmanager
def deterministic(threads: int) -> Iterator[None]:
    """Fixed thread count and deterministic kernels for the duration (restored afterwards).

    Deterministic mode also fills every new tensor's memory by default; nothing here reads memory
    before writing it, and the fill made a step about 8 times slower on a CPU, so it is turned off.
    """
    flags = torch.utils.deterministic
    old = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), flags.fill_uninitialized_memory
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    flags.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    try:
        yield
    finally:
        torch.set_num_threads(old[0])
        torch.use_deterministic_algorithms(old[1])
        flags.fill_uninitialized_memory = old[2]  # type: ignore[attr-defined]


def batches(samples: Sequence[Sample], batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless batches of sample indices: a seeded shuffle per epoch, then length-bucketed (chunks of
    50 batches sorted by length) so short documents are not padded to the length of long traces. The
    caller bounds it (``pretrain`` takes ``spec.steps`` batches); every epoch yields at least one batch,
    so taking the next one never spins."""
    if not samples or batch_size < 1:
        raise ValueError(f"batches need samples and a positive batch size (got {len(samples)}, {batch_size})")
    epoch = 0
    while True:
        order = list(range(len(samples)))
        random.Random(f"pretrain/{seed}/{epoch}").shuffle(order)
        chunk = 50 * batch_size
        out: list[list[int]] = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start : start + chunk], key=lambda i: len(samples[i][0]))
            out += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
        random.Random(f"pretrain/{seed}/{epoch}/batches").shuffle(out)
        yield from out
        epoch += 1


def collate(samples: Sequence[Sample], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, attention mask, target mask) padded on the right; the target mask is aligned with ids[:, 1:]."""
    width = max(len(ids) for ids, _ in samples)
    ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    target = torch.zeros((len(samples), width), dtype=torch.float32)
    for i, (row, mask) in enumerate(samples):
        ids[i, : len(row)] = torch.tensor(row)
        attn[i, : len(row)] = 1
        target[i, : len(row)] = torch.tensor(mask, dtype=torch.float32)
    return ids, attn, target[:, 1:]


def lm_loss(model: Any, ids: torch.Tensor, attn: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Token-mean cross-entropy of the next token over the trained positions."""
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
    return (nll * target).sum() / target.sum().clamp(min=1)


def pretrain(model: Any, samples: Sequence[Sample], spec: TrainSpec, seed: int, pad_id: int,
             on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``model`` in place for ``spec.steps`` steps; returns the loss of every step."""
    if not samples:
        raise ValueError("no pretraining samples")
    losses: list[float] = []
    with deterministic(spec.threads):
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, betas=(0.9, 0.98), weight_decay=spec.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_multiplier(s, spec.steps, spec.warmup, "cosine", min_ratio=0.1))
        it = batches(samples, spec.batch_size, seed)
        for step in range(spec.steps):
            ids, attn, target = collate([samples[i] for i in next(it)], pad_id)
            with autocast(spec.precision, ids.device):
                loss = lm_loss(model, ids, attn, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(step, losses[-1])
        model.eval()
    return losses
