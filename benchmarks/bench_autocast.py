"""bf16 autocast against float32 for SmolLM2-135M-Instruct on the CPU: the training pass, generation, and how
far the log-probs move.

The real-LM recipe (``make demo-real``) lives or dies by CPU throughput. Weights stay float32 either way (the
optimizer's master copy); ``model.autocast=bf16`` runs the matrix products in bf16 (AMX on recent Xeons) and
keeps the softmax and the log-probs in float32. Measured in one run, each arm alternating with the other
(``--repeats`` rounds, the median of each), on the recipe's shapes:

- **training pass**: ``token_logprobs`` of ``--rows`` rows of ``--tokens`` tokens (a GRPO group shares its
  prompt), a token-mean loss, backward, AdamW step;
- **generation**: ``HFGenerator`` continuing ``--rows`` prompts (groups of 4 sharing one) by ``--new-tokens``
  sampled tokens each, end of sequence suppressed so both arms generate the same number of tokens;
- **agreement**: per-token log-probs of the same batch under bf16 autocast against float32 (mean and max
  absolute difference, and the mean |ratio - 1| a PPO clip at 0.2 would see at the first mini-batch), and the
  sampler's own bf16 log-probs against the bf16 training pass (``algorithm.old_logprobs=behaviour``).

Prints the ratios (float32 time / bf16 time: above 1 means bf16 is faster). Run:
``python benchmarks/bench_autocast.py`` (7 minutes here, on 2 shared cores).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch

from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.generation.transformers import HFGenerator
from zerosearch_rl.packaged_models import smollm2_instruct
from zerosearch_rl.policy import TokenBatch, token_logprobs
from zerosearch_rl.precision import autocast

TEXT = ("The Golden Gate Bridge is a suspension bridge spanning the Golden Gate, the one-mile-wide strait "
        "connecting San Francisco Bay and the Pacific Ocean. The structure links San Francisco to Marin County. ")


def batch_of(tokenizer, rows: int, tokens: int, group: int) -> TokenBatch:
    """``rows`` rows of ``tokens`` tokens: groups of ``group`` share the first half (their prompt)."""
    text = tokenizer(TEXT * 40)["input_ids"]
    ids = []
    for r in range(rows):
        prompt = text[(r // group) * 7:][: tokens // 2]
        own = text[r * 13 + 500:][: tokens - len(prompt)]
        ids.append(prompt + own)
    input_ids = torch.tensor(ids)
    mask = torch.zeros(rows, tokens - 1)
    mask[:, tokens // 2:] = 1.0
    return TokenBatch(input_ids, torch.ones_like(input_ids), mask, torch.zeros(rows, tokens - 1))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = smollm2_instruct()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-12)  # a real step that leaves the weights usable
    batch = batch_of(tokenizer, args.rows, args.tokens, group=4)
    contexts = {"float32": nullcontext, "bf16 autocast": lambda: autocast("bf16")}

    def train_pass(arm: str) -> None:
        with contexts[arm]():
            logp, _ = token_logprobs(model, batch)
        loss = -(logp * batch.loss_mask).sum() / batch.loss_mask.sum()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    generator = HFGenerator(model, tokenizer)
    generator.eos_ids = set()  # same length in both arms
    prompts = [batch.input_ids[r, : args.tokens // 2].tolist() for r in range(0, args.rows, 4) for _ in range(4)]

    def generate(arm: str) -> None:
        with contexts[arm]():
            generator.generate(prompts, [args.new_tokens] * len(prompts), Sampling(temperature=1.0, seed=0))

    times: dict[tuple[str, str], list[float]] = {}
    for name, fn in (("training pass", train_pass), ("generation", generate)):
        fn("float32")  # warm-up of both arms
        fn("bf16 autocast")
        for _ in range(args.repeats):
            for arm in contexts:
                times.setdefault((name, arm), []).append(timed(lambda fn=fn, arm=arm: fn(arm)))
    print(f"SmolLM2-135M-Instruct, {args.rows} rows x {args.tokens} tokens, {args.new_tokens} new tokens, "
          f"{args.threads} threads, median of {args.repeats}")
    for name in ("training pass", "generation"):
        fp32, bf16 = (statistics.median(times[(name, arm)]) for arm in contexts)
        print(f"  {name:14s} float32 {fp32:6.2f} s   bf16 autocast {bf16:6.2f} s   ratio {fp32 / bf16:.2f}x")

    with torch.no_grad():
        exact, _ = token_logprobs(model, batch)
        with autocast("bf16"):
            mixed, _ = token_logprobs(model, batch)
    on = batch.loss_mask.bool()
    diff = (mixed - exact)[on].abs()
    ratio = (mixed - exact)[on].exp().sub(1).abs()
    print(f"  log-probs, bf16 autocast vs float32 (policy tokens): mean |diff| {diff.mean():.4f}, "
          f"max {diff.max():.3f}; mean |ratio - 1| {ratio.mean():.4f}, share outside the 0.2 clip "
          f"{(ratio > 0.2).float().mean():.4f}")
    with autocast("bf16"):
        sampled = generator.generate(prompts, [args.new_tokens] * len(prompts), Sampling(temperature=1.0, seed=1))
    rows = [p + g.token_ids for p, g in zip(prompts, sampled, strict=True)]
    ids = torch.tensor(rows)
    mask = torch.zeros(len(rows), ids.shape[1] - 1)
    mask[:, len(prompts[0]) - 1:] = 1.0
    behaviour = torch.zeros_like(mask)
    behaviour[:, len(prompts[0]) - 1:] = torch.tensor([g.logprobs for g in sampled])
    with torch.no_grad(), autocast("bf16"):
        recomputed, _ = token_logprobs(model, TokenBatch(ids, torch.ones_like(ids), mask, behaviour))
    gap = (recomputed - behaviour)[mask.bool()].abs()
    print(f"  sampler's bf16 log-probs vs the bf16 training pass: mean |diff| {gap.mean():.4f}, max {gap.max():.3f}")


if __name__ == "__main__":
    main()
