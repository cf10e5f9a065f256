"""What switching the shared-prefix pass off under gradient checkpointing costs (``policy.token_logprobs``).

Under gradient checkpointing transformers drops the KV cache inside checkpointed layers, so the shared-prefix
pass (the prefix once, each row's own tokens on its cache) would compute the rows without their prefix; the
trainer then runs every row whole. This measures one micro-batch's forward + backward of the log-probs three
ways, interleaved so machine noise hits all alike, and prints medians and ratios:

- ``shared``: no checkpointing, the shared-prefix pass (the default path);
- ``plain``: no checkpointing, every row whole (what checkpointing forces, without its recompute);
- ``checkpointed``: checkpointing on, every row whole (what a run with ``model.gradient_checkpointing: true``
  does now).

``plain / shared`` is the saving given up under checkpointing; ``checkpointed / plain`` is checkpointing's own
recompute. The model is SmolLM2-135M's architecture (hidden 576, 9 heads, 3 KV heads, vocabulary 49,152) with
random weights built from a config (nothing is downloaded), ``--layers`` deep (30 in the real model; the ratios
do not depend on depth). Rows: ``--rows`` samples of one prompt (a GRPO group) with a ``--prefix``-token prompt
and ``--tail``-token responses.

    .venv/bin/python benchmarks/bench_checkpointing.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from zerosearch_rl.llm.hf import enable_checkpointing
from zerosearch_rl.policy import TokenBatch, token_logprobs


def smollm2_shape(layers: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=layers,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                         tie_word_embeddings=True, attn_implementation="sdpa")
    torch.manual_seed(0)
    return LlamaForCausalLM(config).train()


def group(rows: int, prefix: int, tail: int) -> TokenBatch:
    g = torch.Generator().manual_seed(0)
    head = torch.randint(0, 49152, (1, prefix), generator=g).expand(rows, -1)
    ids = torch.cat([head, torch.randint(0, 49152, (rows, tail), generator=g)], dim=1)
    mask = torch.zeros(rows, prefix + tail - 1)
    mask[:, prefix - 1 :] = 1.0
    return TokenBatch(ids, torch.ones_like(ids), mask, torch.zeros_like(mask))


def fwd_bwd(model: torch.nn.Module, batch: TokenBatch, whole_rows: bool) -> float:
    start = time.perf_counter()
    if whole_rows:  # what token_logprobs does under DDP/FSDP or checkpointing: one pass over whole rows
        logits = model(input_ids=batch.input_ids).logits[:, :-1].float()
        logp = torch.log_softmax(logits, -1).gather(-1, batch.input_ids[:, 1:, None])[..., 0]
    else:
        logp, _ = token_logprobs(model, batch)
    (logp * batch.loss_mask).sum().backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--prefix", type=int, default=256)
    parser.add_argument("--tail", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, ckpt_model = smollm2_shape(args.layers), smollm2_shape(args.layers)
    enable_checkpointing(ckpt_model)
    batch = group(args.rows, args.prefix, args.tail)
    runs = {"shared": lambda: fwd_bwd(model, batch, whole_rows=False),
            "plain": lambda: fwd_bwd(model, batch, whole_rows=True),
            "checkpointed": lambda: fwd_bwd(ckpt_model, batch, whole_rows=False)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for run in runs.values():  # warm-up
        run()
    for _ in range(args.repeats):
        for k, run in runs.items():
            times[k].append(run())
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.rows} rows x ({args.prefix} shared + {args.tail} own) tokens, {args.layers} layers, "
          f"{args.threads} thread(s), median of {args.repeats}")
    for k, v in med.items():
        print(f"  {k:>13}: {v:.3f} s")
    print(f"saving given up under checkpointing (plain / shared): {med['plain'] / med['shared']:.2f}x")
    print(f"checkpointing's recompute (checkpointed / plain): {med['checkpointed'] / med['plain']:.2f}x")
    print(f"checkpointed run vs the default path (checkpointed / shared): {med['checkpointed'] / med['shared']:.2f}x")


if __name__ == "__main__":
    main()
