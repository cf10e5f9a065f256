"""Policy-side tensors: loading the policy (optionally with LoRA), the value model, and per-token log-probs.

A ``TokenBatch`` is a set of trajectories padded on the right. Everything token-wise is aligned with
the *targets* ``input_ids[:, 1:]`` (position t holds the log-prob of token t+1 given its prefix), so
``loss_mask``, behaviour log-probs, advantages and values all have shape ``[B, T - 1]``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from zerosearch_rl.algorithms import entropy_from_logits
from zerosearch_rl.config import ConfigError, ModelConfig
from zerosearch_rl.llm.hf import cache_kwarg, enable_checkpointing, load_causal_lm, resolve_device
from zerosearch_rl.model_paths import resolve_model
from zerosearch_rl.records import Trajectory
from zerosearch_rl.tiny_models import TINY_RANDOM, byte_tokenizer, tiny_llama


@dataclass(frozen=True)
class TokenBatch:
    input_ids: Tensor  # [B, T]
    attention_mask: Tensor  # [B, T]
    loss_mask: Tensor  # [B, T-1] float: 1 where the target token was sampled by the policy
    behaviour_logprobs: Tensor  # [B, T-1]

    @classmethod
    def from_trajectories(cls, trajectories: Sequence[Trajectory], pad_id: int,
                          device: torch.device | str = "cpu") -> TokenBatch:
        width = max(len(t.input_ids) for t in trajectories)
        ids = torch.full((len(trajectories), width), pad_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        mask = torch.zeros((len(trajectories), width), dtype=torch.float32)
        logp = torch.zeros_like(mask)
        for i, t in enumerate(trajectories):
            n = len(t.input_ids)
            ids[i, :n] = torch.tensor(t.input_ids)
            attn[i, :n] = 1
            mask[i, :n] = torch.tensor(t.loss_mask, dtype=torch.float32)
            logp[i, :n] = torch.tensor(t.behaviour_logprobs)
        return cls(ids.to(device), attn.to(device), mask[:, 1:].to(device), logp[:, 1:].to(device))

    def select(self, index: Tensor | Sequence[int]) -> TokenBatch:
        """The rows ``index``, trimmed to their longest sequence (saves work on short micro-batches)."""
        idx = torch.as_tensor(index, dtype=torch.long, device=self.input_ids.device)
        width = int(self.attention_mask[idx].sum(dim=1).max())
        return TokenBatch(self.input_ids[idx, :width], self.attention_mask[idx, :width],
                          self.loss_mask[idx, : width - 1], self.behaviour_logprobs[idx, : width - 1])

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass(frozen=True)
class StepBatch:
    """What one training step's update reads: its ``tokens`` and, aligned with their targets (``[B, T-1]``), the
    old log-probs the ratio is taken against, the advantages and returns, and, where the step has them, the
    reference log-probs (a KL loss term) and the value model's values (PPO's critic)."""

    tokens: TokenBatch
    old_logprobs: Tensor
    advantages: Tensor
    returns: Tensor
    ref_logprobs: Tensor | None = None
    values: Tensor | None = None

    def select(self, rows: Sequence[int]) -> StepBatch:
        """The rows ``rows`` of every tensor, trimmed as ``TokenBatch.select`` trims the tokens."""
        tokens = self.tokens.select(rows)
        width = tokens.loss_mask.shape[1]

        def cut(tensor: Tensor) -> Tensor:
            return tensor[torch.as_tensor(rows, dtype=torch.long, device=tensor.device), :width]

        return StepBatch(tokens, cut(self.old_logprobs), cut(self.advantages), cut(self.returns),
                         None if self.ref_logprobs is None else cut(self.ref_logprobs),
                         None if self.values is None else cut(self.values))


#: Shortest common prefix worth a separate forward pass (below it, one pass over whole rows is as cheap).
MIN_SHARED_PREFIX = 16


def shared_prefix_length(batch: TokenBatch) -> int:
    """How many leading tokens every row of ``batch`` has in common (0 for a single row)."""
    ids, real = batch.input_ids, batch.attention_mask.bool()
    if ids.shape[0] < 2:
        return 0
    same = (ids == ids[:1]).all(dim=0) & real.all(dim=0)
    return int(same.long().cumprod(0).sum())


def _is_wrapped(model: Any) -> bool:
    """DDP or FSDP: every process must run the same forward passes, so no data-dependent splitting."""
    return hasattr(model, "no_sync") or hasattr(model, "set_requires_gradient_sync")


def _checkpointing_now(model: Any) -> bool:
    """Whether this forward runs under gradient checkpointing: a layer with it switched on, in train mode,
    with gradients enabled (the condition under which transformers drops the KV cache inside the layer).

    Then the shared-prefix pass cannot work: the rows' own tokens would be computed without the prefix's
    cache (positions restart at 0), and nothing would say so but a log line.
    """
    if not (model.training and torch.is_grad_enabled()):
        return False
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


def shares_prefix(model: Any) -> bool:
    """Whether ``token_logprobs`` may run a shared prefix once for all rows (see there)."""
    return not _is_wrapped(model) and not _checkpointing_now(model)


def _target_logprobs(logits: Tensor, targets: Tensor, temperature: float,
                     with_entropy: bool) -> tuple[Tensor, Tensor | None]:
    logits = logits.float()
    if temperature > 0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None])[..., 0]
    return logp, (entropy_from_logits(logits) if with_entropy else None)


def token_logprobs(model: Any, batch: TokenBatch, temperature: float = 1.0,
                   with_entropy: bool = False) -> tuple[Tensor, Tensor | None]:
    """Log-probs of the target tokens under ``model`` (logits divided by ``temperature``, as sampled),
    and optionally the per-position entropy. Shapes ``[B, T-1]``.

    Rows are padded on the right, so causal attention alone keeps real tokens from seeing padding and no
    mask is passed (the fused causal kernel is much faster than a padding mask). Rows that share a long
    prefix (the instruction and, within a GRPO group, the whole prompt) run it once: its KV cache is
    copied to every row and only the rest is computed per row. The result, gradients included, is the
    one of the plain pass; the saving is the prefix's share of the work times the rows minus one.
    Under DDP/FSDP and under gradient checkpointing every row runs whole (``shares_prefix``).
    """
    ids, rows = batch.input_ids, batch.input_ids.shape[0]
    shared = shared_prefix_length(batch) if shares_prefix(model) else 0
    if shared < MIN_SHARED_PREFIX or shared >= ids.shape[1]:
        return _target_logprobs(model(input_ids=ids).logits[:, :-1], ids[:, 1:], temperature, with_entropy)
    from transformers import DynamicCache

    cache = DynamicCache()
    head = model(input_ids=ids[:1, :shared], use_cache=True, **{cache_kwarg(model): cache}).logits
    cache.reorder_cache(torch.zeros(rows, dtype=torch.long, device=ids.device))  # type: ignore[arg-type]
    tail = model(input_ids=ids[:, shared:], use_cache=True, **{cache_kwarg(model): cache}).logits
    # positions < shared - 1 predict prefix tokens (the same in every row); the rest predict per-row tokens
    common, common_h = _target_logprobs(head[:, :-1], ids[:1, 1:shared], temperature, with_entropy)
    own_logits = torch.cat([head[:, -1:].expand(rows, -1, -1), tail[:, :-1]], dim=1)
    own, own_h = _target_logprobs(own_logits, ids[:, shared:], temperature, with_entropy)
    logp = torch.cat([common.expand(rows, -1), own], dim=1)
    entropy = torch.cat([common_h.expand(rows, -1), own_h], dim=1) if common_h is not None and own_h is not None \
        else None
    return logp, entropy


class ValueModel(nn.Module):
    """The policy's architecture without its LM head, plus a scalar head: V(prefix) per position."""

    def __init__(self, backbone: nn.Module, hidden_size: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, batch: TokenBatch) -> Tensor:
        hidden = self.backbone(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        return self.head(hidden[:, :-1].float())[..., 0]


def value_model_like(policy: Any) -> ValueModel:
    """A value model initialised from the policy's own transformer body (the usual PPO critic start)."""
    body = getattr(policy, "get_base_model", lambda: policy)().base_model
    return ValueModel(copy.deepcopy(body).train(), policy.config.hidden_size).to(next(policy.parameters()).device)


def load_policy(cfg: ModelConfig, seed: int = 0, key: str = "model.policy") -> tuple[Any, Any]:
    """(policy, tokenizer) per the model config; LoRA adapters through peft when ``lora_rank > 0``. ``key`` names
    the setting that gave ``cfg.policy`` in errors (``model_paths.resolve_model``)."""
    if cfg.policy == TINY_RANDOM:
        if cfg.tokenizer:
            raise ConfigError(f"model.tokenizer={cfg.tokenizer!r} is not used with model.policy={TINY_RANDOM} (it has "
                              f"its own byte tokenizer): leave model.tokenizer empty")
        tokenizer = byte_tokenizer()
        model = tiny_llama(len(tokenizer), seed).to(resolve_device(cfg.device))
    else:
        model, tokenizer = load_causal_lm(resolve_model(cfg.policy, key), cfg.dtype, cfg.device)
        if cfg.tokenizer:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(resolve_model(cfg.tokenizer, "model.tokenizer", weights=False))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)
    if cfg.lora_rank > 0:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as exc:
            raise ImportError("model.lora_rank > 0 needs peft: pip install 'zerosearch-rl[lora]'") from exc
        model = get_peft_model(model, LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                                                 lora_dropout=cfg.lora_dropout, task_type="CAUSAL_LM",
                                                 target_modules=list(cfg.lora_target_modules)))
    return model, tokenizer


def frozen_copy(model: nn.Module) -> nn.Module:
    """A reference model: an independent copy with gradients off."""
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref
