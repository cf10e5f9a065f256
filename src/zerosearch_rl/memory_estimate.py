"""How much memory one training process needs, from the config and the model's shape alone (no weights loaded).

The estimate is the peak of one step at the longest sequence the caller gives (the pre-flight: the longest
prompt it measured, else ``rollout.max_prompt_tokens``, plus the longest response the rollout settings allow):
what stays allocated (the policy, the frozen reference, the critic, AdamW's two states per trained parameter,
any inference engine or in-process simulator) plus the larger of the two phases of a step:

- **sampling**: the KV cache of every row this process rolls out (its prompts x ``rollout.n_samples``) at that
  length; on the CPU also the prefill's attention scores (decoding runs eager attention there,
  ``generation.transformers.decoding_attention``), one layer at a time;
- **training**: the gradients of the trained parameters, plus the activations of one micro-batch's forward
  and backward pass at that length: the tensors each decoder layer keeps for backward (``layer_width``), and
  the vocabulary-wide float32 tensors of the log-prob and entropy computation (``LOGIT_BYTES``), which
  dominate for small models with large vocabularies.

It is a bound on a step at those lengths, with no shared prompt prefix (one pass over every row, as under
DDP, FSDP or gradient checkpointing; a single process runs a GRPO group's shared prompt once). Checked
against the measured peak of one real step on the CPU (``tests/test_preflight.py``, tolerance stated there and
in docs/training-health.md); on a GPU the CUDA context, kernels' workspaces and the caching allocator come on
top.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zerosearch_rl.config import Config
from zerosearch_rl.model_shape import ModelShape

GiB = 1 << 30


def size_text(n: float) -> str:
    """``512 MiB`` below a GiB, ``1.23 GiB`` from there."""
    return f"{n / (1 << 20):.0f} MiB" if n < GiB else f"{n / GiB:.2f} GiB"
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def layer_width(shape: ModelShape) -> int:
    """Elements one decoder layer keeps per token for backward: 8 x hidden + 2 x kv + 4 x intermediate (the two
    norms' inputs and outputs, the queries, attention output and output projection's input, the keys and values,
    the MLP's gate, activation, up projection and product), as torch's saved-tensor hooks count them on
    transformers' Llama (``tests/test_preflight.py``)."""
    return 8 * shape.hidden + 2 * shape.kv_dim + 4 * shape.intermediate


#: Bytes per vocabulary entry per token of the training pass's logits chain (``policy.token_logprobs`` with
#: entropy): four float32 tensors and a bool mask kept for backward (17 bytes, counted by saved-tensor hooks),
#: plus the scaled logits and the product alive at the peak.
LOGIT_BYTES = 25
#: Sampling on the CPU: bytes per attention score of the prefill's eager attention (scores, their float32
#: softmax and its copy back in the model's dtype), for one layer at a time.
PREFILL_SCORE_BYTES = 12
#: vLLM on the CPU: the KV cache the project gives it (``llm.vllm_chat.CPU_KV_CACHE_BYTES``).
VLLM_CPU_CACHE = 4 * GiB
#: vLLM on a GPU takes this share of the GPU's memory (``vllm_chat.start_engine``'s ``gpu_memory_utilization``).
VLLM_GPU_SHARE = 0.9


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per process: ``parts`` that stay allocated, and the two phases of a step on top of them."""

    parts: dict[str, int] = field(default_factory=dict)
    sampling: dict[str, int] = field(default_factory=dict)
    training: dict[str, int] = field(default_factory=dict)

    @property
    def static(self) -> int:
        return sum(self.parts.values())

    @property
    def peak(self) -> int:
        return self.static + max(sum(self.sampling.values()), sum(self.training.values()))

    def describe(self) -> str:
        """``policy 1.20 GiB + reference 1.20 GiB + ... = 9.50 GiB`` (the larger phase's parts shown)."""
        phase = self.training if sum(self.training.values()) >= sum(self.sampling.values()) else self.sampling
        items = [*self.parts.items(), *phase.items()]
        return " + ".join(f"{k} {size_text(v)}" for k, v in items if v) + f" = {size_text(self.peak)}"


def engine_bytes(kind: str, parameters: int, dtype_bytes: int, device: str, device_total: int | None) -> int:
    """Memory of an in-process inference engine holding a model of ``parameters``: ``transformers`` (its weights,
    float32: ``TransformersChat`` loads so) or ``vllm`` (on a GPU its share of the GPU, on the CPU its weights
    and KV cache)."""
    if kind == "vllm":
        if device == "cuda" and device_total:
            return int(VLLM_GPU_SHARE * device_total)
        return parameters * dtype_bytes + VLLM_CPU_CACHE
    return parameters * 4


def per_process_trajectories(cfg: Config, processes: int) -> int:
    return -(-cfg.trainer.batch_size // processes) * cfg.rollout.n_samples


def estimate_memory(cfg: Config, shape: ModelShape, *, processes: int, prompt_tokens: int, tokens: int,
                    device: str, device_total: int | None = None, simulator: int = 0) -> MemoryEstimate:
    """The peak memory of one training process of ``cfg`` (see the module docstring).

    ``tokens`` is the longest sequence (prompt + response), ``prompt_tokens`` the longest prompt; ``device`` is
    ``cpu`` or ``cuda`` and ``device_total`` the GPU's memory (vLLM takes a share of it); ``simulator`` is the
    memory of an in-process simulator (``engine_bytes``), 0 when it runs elsewhere.
    """
    m, a, t, r = cfg.model, cfg.algorithm, cfg.trainer, cfg.rollout
    s = DTYPE_BYTES[m.dtype]
    shard = processes if t.strategy == "fsdp" else 1  # FSDP keeps 1/N of weights, gradients and states
    lora = m.lora_rank > 0
    # peft keeps the adapters in float32 whatever the base model's dtype
    trained_bytes = shape.lora_parameters * 4 if lora else shape.parameters * s
    critic = (shape.body_parameters + shape.hidden + 1) * s if a.advantage == "gae" else 0
    weights = shape.parameters * s
    parts = {"policy": weights // shard + (trained_bytes if lora else 0)}
    if a.kl_coef > 0 and not lora:  # with LoRA the reference is the policy with its adapters off
        parts["reference"] = weights // shard
    if t.strategy == "fsdp" and r.generator == "transformers":
        parts["sampling copy"] = weights  # FSDP samples from an unsharded copy (distributed.py)
    if critic:
        parts["critic"] = critic // shard
    parts["AdamW states"] = 2 * (trained_bytes + critic) // shard  # in the parameters' dtype, as torch keeps them
    if r.generator == "vllm":
        parts["vLLM engine"] = engine_bytes("vllm", shape.parameters, s, device, device_total)
    if simulator:
        parts["simulator"] = simulator

    rows = per_process_trajectories(cfg, processes)
    sampling: dict[str, int] = {}
    if r.generator == "transformers":
        sampling["KV cache"] = rows * tokens * shape.layers * 2 * shape.kv_dim * s
        if device == "cpu":
            prompts = -(-t.batch_size // processes)  # a group's samples share one prefill
            sampling["prefill scores"] = prompts * shape.heads * prompt_tokens ** 2 * PREFILL_SCORE_BYTES

    micro = min(t.micro_batch_size, max(1, rows // t.mini_batches))
    kept_layers = (shape.layers * shape.hidden + layer_width(shape) if m.gradient_checkpointing
                   else shape.layers * layer_width(shape))
    per_token = (kept_layers + 3 * shape.hidden) * s + shape.vocab * LOGIT_BYTES
    training = {"gradients": (trained_bytes + critic) // shard, "activations": micro * tokens * per_token}
    return MemoryEstimate(parts, sampling, training)


def checkpoint_bytes(cfg: Config, shape: ModelShape) -> int:
    """One checkpoint on disk: the policy (its adapters only with LoRA) and ``state.pt`` (AdamW states, the
    critic and its states)."""
    s = DTYPE_BYTES[cfg.model.dtype]
    trained = shape.lora_parameters * 4 if cfg.model.lora_rank else shape.parameters * s
    critic = (shape.body_parameters + shape.hidden + 1) * s if cfg.algorithm.advantage == "gae" else 0
    return trained + 2 * trained + 3 * critic
