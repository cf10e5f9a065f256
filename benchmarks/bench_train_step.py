"""One GRPO training step: our ``Trainer.step`` against TRL 1.16's ``GRPOTrainer``, single-turn, on the CPU.

What is compared. One optimizer step of GRPO, everything included: sampling the completions, the reward,
the reference log-probs, the group advantages, the forward/backward passes (gradient accumulation over
micro-batches), gradient clipping, the AdamW step and the learning-rate schedule. Ours is ``Trainer.step``
with ``rollout.max_turns=1`` (one policy turn, so no search ever runs); TRL's is one iteration of its own
``Trainer.train()`` loop, timed by a callback from the end of the previous step to ``on_step_end`` (so it
includes TRL's data loading of that step; logging, saving and evaluation are all switched off).

Why it is fair.
- Same model: one tiny random Llama from ``zerosearch_rl.tiny_models`` (byte-level tokenizer, 260 tokens,
  ``--hidden``/``--layers``/``--heads``, default width 128, 2 layers, 4 heads), saved once to a temp folder with
  its tokenizer, or with ``--model smollm2`` SmolLM2-135M-Instruct (the real-LM recipe's policy, its own
  tokenizer, prompts in plain text); both trainers load it in float32 and keep a frozen copy as the KL
  reference. ``--bf16``: bf16 autocast over the float32 weights on both sides (ours ``model.autocast=bf16``,
  TRL ``bf16=True``), each trainer at its fastest on a CPU with AMX.
- Attention kernel: each trainer runs the kernel it picks itself. Both load the model with transformers'
  default, "sdpa" (torch's fused ``scaled_dot_product_attention``); ours switches to "eager" while decoding on
  the CPU (``generation.transformers.decoding_attention``: faster there with a padding mask) and back to sdpa for the
  training and reference passes. ``--trl-attn eager`` runs TRL all-eager, for comparison.
- Same prompts: the ``--prompts`` first questions of ``src/zerosearch_rl/assets/mini_qa.jsonl``, each step
  uses all of them on both sides. The prompt text is ``protocol.build_prompt(question, style="base")``, what our
  rollout builds; TRL gets the same strings as a plain-text (non-chat) dataset. The script checks that both
  trainers turn each prompt into the same token ids.
- Same work per step: ``--prompts`` prompts x ``--group`` samples (TRL ``num_generations``), exactly
  ``--new-tokens`` generated tokens each, micro-batches of ``--micro`` sequences accumulated into one optimizer
  step (TRL: ``per_device_train_batch_size=--micro``, ``gradient_accumulation_steps=prompts*group/micro``, so
  one generation per optimizer step), same learning rate (constant, no warm-up), AdamW (``torch.optim.AdamW``
  on both sides: TRL's ``optim="adamw_torch"``), grad-norm clip 1.0, KL coefficient ``--beta`` with the k3
  estimator on both, clip ratio 0.2, temperature 1.0, top-p 1, no top-k, token-mean loss over the step (ours;
  TRL's default ``loss_type="dapo"``), group-std-normalised advantages (both defaults), one PPO epoch.
- Equal lengths: every completion is exactly ``--new-tokens`` long on both sides, so neither wins by generating
  less. TRL samples with end-of-sequence suppressed (``generation_kwargs={"suppress_tokens": [eos]}``); ours
  keeps sampling through an end-of-sequence token (``trainer.generator.eos_ids`` is emptied). Our stop strings
  (``</search>``, ``</answer>``) stay on, and their per-token check is counted against us; a random byte
  model essentially never writes them, and the script checks after every step that both sides generated
  exactly ``prompts x group x new-tokens`` tokens. This switches off our generator's advantage of dropping
  finished rows from the batch early.
- Like for like: neither recomputes the "old" log-probs before the update. TRL skips that forward pass when
  generation and optimizer steps are aligned (it uses the detached current log-probs); ours is run with
  ``algorithm.old_logprobs=behaviour`` (the sampler's own log-probs, exact for the in-process generator).
- TRL 1.16 defaults that would make it slow or different on a CPU are switched off: ``bf16=False`` (its config
  defaults to bf16), ``gradient_checkpointing=False`` (defaults to True), ``use_vllm=False``, no
  transformers continuous batching, ``use_cpu=True``, ``report_to="none"``, ``logging_strategy="no"``,
  ``save_strategy="no"``, ``log_completions=False``, no tqdm, constant learning rate.
- Same reward: the share of letters in the completion text (a cheap function of the text only).
- Noise: one warm-up step each, then ``--steps`` timed steps each, interleaved (TRL step, our step, TRL step,
  ...) in one process, so machine noise hits both. Medians are reported, with the CPU time of the process per
  step as a cross-check that other jobs on the machine perturb less. Torch runs one thread by default
  (``--threads``): on a 2-core machine shared with other jobs, two OpenMP threads made single steps swing from
  2 s to 20 s (a thread waiting for a descheduled partner), for both trainers alike. The setting applies to
  both sides; ``--threads 0`` uses torch's default on a quiet machine. Only the ratio of one run means
  anything on a shared machine.

Run (needs TRL: ``pip install -e ".[bench]" torch==2.13.0``):

    .venv/bin/python benchmarks/bench_train_step.py                     # each trainer with its own kernel
    .venv/bin/python benchmarks/bench_train_step.py --trl-attn eager    # the same (eager) kernel on both sides
    .venv/bin/python benchmarks/bench_train_step.py --model smollm2 --bf16 --new-tokens 128 --steps 3
                                                    # the real-LM recipe's model, both at their fastest here

The last line printed is the ratio: ``speed-up vs TRL GRPOTrainer: <TRL median / our median>x``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = REPO / "src" / "zerosearch_rl" / "assets" / "mini_qa.jsonl"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prompts", type=int, default=4, help="prompts per step (<= 18)")
    p.add_argument("--group", type=int, default=4, help="samples per prompt (GRPO group, TRL num_generations)")
    p.add_argument("--new-tokens", type=int, default=64, help="generated tokens per completion (forced)")
    p.add_argument("--micro", type=int, default=8, help="sequences per forward/backward (gradient accumulation)")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--beta", type=float, default=0.001, help="KL coefficient (k3 estimator on both sides)")
    p.add_argument("--model", choices=("tiny", "smollm2"), default="tiny",
                   help="tiny: a random Llama (--hidden/--layers/--heads); smollm2: SmolLM2-135M-Instruct")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast over float32 weights on both sides (ours model.autocast=bf16, TRL bf16=True)")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--trl-attn", choices=("sdpa", "eager"), default="sdpa",
                   help="TRL's attention kernel: sdpa = transformers' default (ours: sdpa, eager while decoding)")
    p.add_argument("--steps", type=int, default=7, help="timed steps per side (after one warm-up step each)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads, both sides (0 = torch's default: one per core; see the module docstring)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def letter_share(text: str) -> float:
    """The reward of both trainers: the share of letters in the completion text."""
    return sum(c.isalpha() for c in text) / max(1, len(text))


def save_model(folder: Path, args: argparse.Namespace) -> Path:
    """The model both trainers load: SmolLM2's own folder, or a tiny random Llama saved to ``folder``."""
    if args.model == "smollm2":
        from zerosearch_rl.packaged_models import smollm2_instruct

        return smollm2_instruct()
    from zerosearch_rl.tiny_models import byte_tokenizer, tiny_llama

    tokenizer = byte_tokenizer()
    tiny_llama(len(tokenizer), args.seed, hidden=args.hidden, layers=args.layers, heads=args.heads).save_pretrained(
        folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_questions(path: Path, n: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    if n > len(rows):
        raise SystemExit(f"--prompts {n}: only {len(rows)} questions in {QUESTIONS}")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:n]), encoding="utf-8")
    return rows[:n]


def build_ours(args: argparse.Namespace, model_dir: Path, data: Path, out: Path) -> Any:
    from zerosearch_rl.config import config_from_dict
    from zerosearch_rl.reward import RewardScores
    from zerosearch_rl.trainer import Trainer

    def reward_fn(traj: Any) -> RewardScores:
        r = letter_share(traj.response_text)
        return RewardScores(reward=r, exact_match=0.0, cover_em=0.0, f1=0.0, format_valid=False, answered=False)

    cfg = config_from_dict({
        "model": {"policy": str(model_dir), "prompt_style": "base", "dtype": "float32", "device": "cpu",
                  "autocast": "bf16" if args.bf16 else "none"},
        "data": {"train_files": [str(data)], "shuffle": True},
        "rollout": {"n_samples": args.group, "max_turns": 1, "max_new_tokens": args.new_tokens,
                    "max_response_tokens": args.new_tokens, "temperature": 1.0, "top_p": 1.0},
        "search": {"backend": "fake"},
        "algorithm": {"advantage": "grpo", "grpo_std_normalize": True, "kl_coef": args.beta, "kl_estimator": "k3",
                      "clip_ratio_low": 0.2, "clip_ratio_high": 0.2, "entropy_coef": 0.0,
                      "old_logprobs": "behaviour"},
        "trainer": {"seed": args.seed, "total_steps": args.steps + 1, "batch_size": args.prompts,
                    "mini_batches": 1, "micro_batch_size": args.micro, "ppo_epochs": 1, "lr": args.lr,
                    "weight_decay": 0.0, "warmup_steps": 0, "max_grad_norm": 1.0, "save_every": 0,
                    "output_dir": str(out)},
    })
    trainer = Trainer(cfg, reward_fn=reward_fn)
    trainer.generator.eos_ids = set()  # sample through end-of-sequence: every completion has --new-tokens tokens
    return trainer


def build_trl(args: argparse.Namespace, model_dir: Path, prompts: list[str], out: Path, callback: Any) -> Any:
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    def reward_func(completions: list[str], **kwargs: Any) -> list[float]:
        return [letter_share(c) for c in completions]

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    per_step = args.prompts * args.group
    config = GRPOConfig(
        output_dir=str(out), seed=args.seed, max_steps=args.steps + 1,
        # batch: one generation of prompts x group completions per optimizer step, in micro-batches of --micro
        per_device_train_batch_size=args.micro, gradient_accumulation_steps=per_step // args.micro,
        num_generations=args.group, max_completion_length=args.new_tokens, num_iterations=1,
        shuffle_dataset=True,
        # sampling
        temperature=1.0, top_p=1.0, top_k=0, generation_kwargs={"suppress_tokens": [tokenizer.eos_token_id]},
        # optimisation
        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        optim="adamw_torch",
        # GRPO loss: k3 KL to a frozen reference, clip 0.2, token mean over the step, group-std advantages
        beta=args.beta, epsilon=0.2, loss_type="dapo", scale_rewards="group", mask_truncated_completions=False,
        # CPU, float32 weights (bf16 autocast with --bf16), no checkpointing, no vLLM
        use_cpu=True, bf16=args.bf16, fp16=False, gradient_checkpointing=False, use_vllm=False,
        use_transformers_continuous_batching=False,
        model_init_kwargs={"dtype": "float32", "attn_implementation": args.trl_attn},
        # no logging, reporting, saving or evaluation
        report_to="none", logging_strategy="no", save_strategy="no", eval_strategy="no", disable_tqdm=True,
        log_completions=False, dataloader_num_workers=0,
    )
    return GRPOTrainer(model=str(model_dir), reward_funcs=reward_func, args=config,
                       train_dataset=Dataset.from_dict({"prompt": prompts}), processing_class=tokenizer,
                       callbacks=[callback])


def main() -> None:
    args = parse_args()
    per_step = args.prompts * args.group
    if per_step % args.micro:
        raise SystemExit(f"--micro {args.micro} must divide prompts x group = {per_step}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("trl").setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)

    tmp = Path(tempfile.mkdtemp(prefix="bench_train_step_"))
    try:
        run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path) -> None:
    import torch
    import transformers
    import trl
    from transformers import PrinterCallback, TrainerCallback

    from zerosearch_rl.protocol import build_prompt
    from zerosearch_rl.records import QAExample

    per_step = args.prompts * args.group
    model_dir = save_model(tmp / "model", args)
    rows = write_questions(tmp / "questions.jsonl", args.prompts)
    prompts = [build_prompt(r["question"], None, "base") for r in rows]

    ours = build_ours(args, model_dir, tmp / "questions.jsonl", tmp / "ours")
    times: dict[str, list[float]] = {"trl": [], "ours": []}  # wall-clock seconds per step
    cpu: dict[str, list[float]] = {"trl": [], "ours": []}  # CPU seconds of this process per step, all threads
    phases: dict[str, list[float]] = {"generate": [], "reference": [], "update": []}
    expected = per_step * args.new_tokens
    clock = {"wall": 0.0, "cpu": 0.0}

    def start() -> None:
        clock["wall"], clock["cpu"] = time.perf_counter(), time.process_time()

    def stop(name: str) -> None:
        times[name].append(time.perf_counter() - clock["wall"])
        cpu[name].append(time.process_time() - clock["cpu"])

    class Interleave(TrainerCallback):
        """Times each TRL step, then runs (and times) one of ours before TRL's next step."""

        def on_train_begin(self, *a: Any, **k: Any) -> None:
            start()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            stop("trl")
            lengths = trl_trainer._metrics["train"]["completions/mean_length"]
            if lengths[-1] * per_step != expected:
                raise RuntimeError(f"TRL generated {lengths[-1]} tokens per completion, not {args.new_tokens}")
            start()
            metrics = ours.step(len(times["ours"]))
            stop("ours")
            if metrics["rollout/policy_tokens"] * per_step != expected or metrics["rollout/turns"] != 1:
                raise RuntimeError(f"ours generated {metrics['rollout/policy_tokens']} tokens per completion")
            for name, values in phases.items():
                values.append(metrics[f"time/{name}"])
            start()

    trl_trainer = build_trl(args, model_dir, prompts, tmp / "trl", Interleave())
    trl_trainer.remove_callback(PrinterCallback)  # it would print TRL's end-of-training summary

    # Same prompt text -> same token ids on both sides.
    for r, text in zip(rows, prompts, strict=True):
        ours_ids = ours.rollout.start(QAExample(r["id"], r["question"], tuple(r["answers"])), 0).context
        trl_ids = trl_trainer.processing_class(text=[text])["input_ids"][0]
        if list(ours_ids) != list(trl_ids):
            raise RuntimeError("the two trainers tokenize the prompt differently")
    for name, model, attn in (("ours", ours.policy, "sdpa"), ("trl", trl_trainer.model, args.trl_attn)):
        if model.dtype != torch.float32 or model.config._attn_implementation != attn:
            raise RuntimeError(f"{name}: {model.dtype}, {model.config._attn_implementation} attention")
    ref = trl_trainer.ref_model
    if (trl_trainer.args.bf16 != args.bf16 or trl_trainer.args.gradient_checkpointing or ref is None
            or ref.dtype != torch.float32):
        raise RuntimeError("TRL is not configured as intended (bf16 / gradient checkpointing / reference)")

    trl_trainer.train()

    n_params = sum(p.numel() for p in ours.policy.parameters())
    prompt_len = statistics.mean(len(trl_trainer.processing_class(text=[p])["input_ids"][0]) for p in prompts)
    print(f"versions: torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}; "
          f"torch threads {torch.get_num_threads()}")
    shape = (f"tiny Llama, hidden {args.hidden}, {args.layers} layers, {args.heads} heads, vocab {len(ours.tokenizer)}"
             f" (bytes)" if args.model == "tiny" else f"SmolLM2-135M-Instruct, vocab {len(ours.tokenizer)}")
    print(f"model: {shape}, {n_params / 1e6:.2f}M parameters, float32 weights"
          f"{', bf16 autocast on both sides' if args.bf16 else ''}; "
          f"attention: ours sdpa (eager while decoding), TRL {args.trl_attn}")
    print(f"step: {args.prompts} prompts (~{prompt_len:.0f} tokens) x {args.group} samples x {args.new_tokens} "
          f"new tokens, micro-batch {args.micro} ({per_step // args.micro} accumulated), lr {args.lr}, "
          f"beta {args.beta}, 1 optimizer step")
    for name in ("trl", "ours"):
        warm, timed = times[name][0], times[name][1:]
        print(f"{name:>4}: warm-up {warm:.2f} s; timed {' '.join(f'{t:.2f}' for t in timed)} s; "
              f"median {statistics.median(timed):.3f} s, min {min(timed):.3f} s; "
              f"CPU median {statistics.median(cpu[name][1:]):.3f} s")
    print("ours, median per phase: " + ", ".join(f"{k} {statistics.median(v[1:]):.3f} s" for k, v in phases.items()))
    cpu_ratio = statistics.median(cpu["trl"][1:]) / statistics.median(cpu["ours"][1:])
    print(f"CPU-time ratio (TRL / ours, medians; less sensitive to other jobs on the machine): {cpu_ratio:.2f}x")
    trl_median, ours_median = statistics.median(times["trl"][1:]), statistics.median(times["ours"][1:])
    print(f"TRL GRPOTrainer median {trl_median:.3f} s/step, ours median {ours_median:.3f} s/step")
    print(f"speed-up vs TRL GRPOTrainer: {trl_median / ours_median:.2f}x")
    ours.close()


if __name__ == "__main__":
    main()
