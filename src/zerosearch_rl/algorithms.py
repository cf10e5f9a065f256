"""Advantage estimators and losses as pure tensor functions, chosen by name.

No model, no trainer state: tensors in, tensors out. Shapes: ``B`` trajectories, ``T`` response
positions (everything after the prompt, policy and observation tokens alike), ``V`` vocabulary.
``mask`` is the loss mask ``[B, T]``: 1 = token sampled by the policy, 0 = observation or padding.

Aggregation (docs/design.md, §Losses are token means): every loss is a token mean over the loss mask whose
denominator is the number of masked tokens of the whole *mini-batch*, passed in as ``token_count``.
Each micro-batch then contributes ``sum(loss * mask) / token_count`` and the micro-batch losses (and
their gradients, accumulated by ``backward``) sum to the full mini-batch token mean, whatever the split.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from zerosearch_rl.config import AlgorithmConfig

LOG_RATIO_LIMIT = 20.0  # log-ratios are clamped to +-20 before exp: finite even for wild log-probs


# ---------------------------------------------------------------- aggregation


def token_mean(values: Tensor, mask: Tensor, token_count: float | Tensor | None = None) -> Tensor:
    """``sum(values * mask) / token_count``; ``token_count`` defaults to ``mask.sum()`` (a local mean).

    Pass the masked-token count of the whole mini-batch to make micro-batch losses add up to the
    mini-batch token mean (under DDP, which averages gradients, pass the count over all ranks and
    multiply by the world size). No masked token gives 0, not NaN; values at masked-out positions are
    ignored even if they are inf or NaN.
    """
    m = mask.bool()
    total = torch.where(m, values, torch.zeros_like(values)).sum()
    count = m.sum() if token_count is None else torch.as_tensor(token_count, device=values.device)
    return total / count.clamp(min=1).to(total.dtype)


def total_loss(pg_loss: Tensor, kl: Tensor, entropy: Tensor, kl_coef: float, entropy_coef: float) -> Tensor:
    """``pg_loss + kl_coef * kl - entropy_coef * entropy``: the KL penalises drift, the entropy is a bonus."""
    return pg_loss + kl_coef * kl - entropy_coef * entropy


# ---------------------------------------------------------------- advantage estimators


@dataclass(frozen=True)
class AdvantageBatch:
    """What every estimator reads.

    ``rewards`` [B] is the outcome reward of each trajectory; ``mask`` [B, T] the loss mask;
    ``group_ids`` (B hashables, or an integer tensor [B]) names the prompt each trajectory was
    sampled for (grpo, rloo); ``values`` [B, T] are the value model's predictions (gae).

    ``reduce_sum`` makes batch-wide statistics (reinforce's baseline, gae's whitening) those of the whole
    step when the batch is one process's share of it: it sums a tensor over every process (under data
    parallelism, ``distributed.all_reduce``); ``None`` means this batch is the whole step. Group
    statistics need none: a group never spans processes.

    ``token_rewards`` [B, T] are per-token rewards on top of the outcome (the KL penalty
    ``-kl_coef * KL_t`` when ``algorithm.kl_in_reward``, as veRL's ``apply_kl_penalty``): gae adds them token
    by token, the outcome estimators add their sum over the mask to each trajectory's reward.
    """

    rewards: Tensor
    mask: Tensor
    group_ids: Sequence[Hashable] | Tensor | None = None
    values: Tensor | None = None
    reduce_sum: Callable[[Tensor], Tensor] | None = None
    token_rewards: Tensor | None = None

    def total(self, local: Tensor) -> Tensor:
        """``local`` (a sum over this batch) summed over the whole step."""
        return local if self.reduce_sum is None else self.reduce_sum(local)

    def __post_init__(self) -> None:
        if self.rewards.dim() != 1 or self.mask.dim() != 2 or self.mask.shape[0] != self.rewards.shape[0]:
            raise ValueError(f"rewards must be [B] and mask [B, T] with the same B; got rewards "
                             f"{tuple(self.rewards.shape)} and mask {tuple(self.mask.shape)}")
        if self.group_ids is not None and len(self.group_ids) != self.rewards.shape[0]:
            raise ValueError(f"group_ids has {len(self.group_ids)} entries for {self.rewards.shape[0]} rewards")
        for name in ("values", "token_rewards"):
            t = getattr(self, name)
            if t is not None and t.shape != self.mask.shape:
                raise ValueError(f"{name} must have the mask's shape {tuple(self.mask.shape)}, got {tuple(t.shape)}")


@dataclass(frozen=True)
class AdvantageOptions:
    """Knobs of the estimators (each reads only its own).

    ``std_normalize`` (grpo), ``baseline`` (reinforce), ``gamma``/``lam``/``whiten`` (gae),
    ``eps`` (the std guards of grpo and of whitening).
    """

    std_normalize: bool = True
    baseline: bool = True
    gamma: float = 1.0
    lam: float = 1.0
    whiten: bool = True
    eps: float = 1e-6

    @classmethod
    def from_config(cls, cfg: AlgorithmConfig) -> AdvantageOptions:
        """The options an ``AlgorithmConfig`` asks for."""
        return cls(std_normalize=cfg.grpo_std_normalize, baseline=cfg.reinforce_baseline,
                   gamma=cfg.gamma, lam=cfg.lam, whiten=cfg.gae_whiten)


AdvantageEstimator = Callable[[AdvantageBatch, AdvantageOptions], tuple[Tensor, Tensor]]


def _float_rewards(batch: AdvantageBatch) -> Tensor:
    """Each trajectory's reward: the outcome plus its per-token rewards summed over the mask."""
    r = batch.rewards if batch.rewards.is_floating_point() else batch.rewards.float()
    if batch.token_rewards is None:
        return r
    return r + torch.where(batch.mask.bool(), batch.token_rewards, torch.zeros_like(batch.token_rewards)).sum(-1)


def _broadcast(per_trajectory: Tensor, mask: Tensor) -> Tensor:
    """[B] -> [B, T]: the value on every masked token, 0 elsewhere."""
    return per_trajectory[:, None] * mask.to(per_trajectory.dtype)


def _group_index(group_ids: Sequence[Hashable] | Tensor | None, device: torch.device) -> Tensor:
    """Dense indices 0..G-1 from arbitrary group ids (equal ids -> equal index; order irrelevant)."""
    if group_ids is None:
        raise ValueError("this estimator needs group_ids: one id per trajectory naming its prompt")
    if isinstance(group_ids, Tensor):
        return torch.unique(group_ids, return_inverse=True)[1].to(device)
    dense: dict[Hashable, int] = {}
    return torch.tensor([dense.setdefault(g, len(dense)) for g in group_ids], dtype=torch.long, device=device)


@dataclass(frozen=True)
class _GroupStats:
    """Per-trajectory views of its group's statistics."""

    size: Tensor  # n_g
    total: Tensor  # sum_g r
    mean: Tensor
    std: Tensor  # unbiased (n - 1); 0 for groups of one
    constant: Tensor  # bool: every reward of the group is equal (size-1 groups included)


def _group_stats(r: Tensor, index: Tensor) -> _GroupStats:
    g = int(index.max()) + 1 if index.numel() else 0
    zeros = r.new_zeros(g)
    size = zeros.index_add(0, index, torch.ones_like(r))
    total = zeros.index_add(0, index, r)
    mean = total / size.clamp(min=1)
    sq = zeros.index_add(0, index, (r - mean[index]) ** 2)
    std = (sq / (size - 1).clamp(min=1)).sqrt()
    hi = zeros.scatter_reduce(0, index, r, reduce="amax", include_self=False)
    lo = zeros.scatter_reduce(0, index, r, reduce="amin", include_self=False)
    return _GroupStats(size[index], total[index], mean[index], std[index], (hi == lo)[index])


def grpo_advantages(batch: AdvantageBatch, opts: AdvantageOptions = AdvantageOptions()) -> tuple[Tensor, Tensor]:
    """GRPO: ``A_i = (r_i - mean_g) / (std_g + eps)`` (or ``r_i - mean_g`` without std normalisation).

    ``std_g`` is the *unbiased* group std (divides by n - 1), as ``torch.std`` in veRL. Groups of one,
    and groups whose rewards are all equal, give exactly 0. Returns ``(A, R)`` broadcast over the mask,
    with ``R = r_i`` (the undiscounted return of every token: the only reward comes at the end).
    """
    r = _float_rewards(batch)
    s = _group_stats(r, _group_index(batch.group_ids, r.device))
    adv = r - s.mean
    if opts.std_normalize:
        adv = adv / (s.std + opts.eps)
    adv = torch.where(s.constant, torch.zeros_like(adv), adv)
    return _broadcast(adv, batch.mask), _broadcast(r, batch.mask)


def rloo_advantages(batch: AdvantageBatch, opts: AdvantageOptions = AdvantageOptions()) -> tuple[Tensor, Tensor]:
    """RLOO: ``A_i = r_i - (sum_g r - r_i) / (n_g - 1)``, the mean of the *other* samples of the group.

    Groups of one, and groups of equal rewards, give exactly 0. Returns ``(A, R = r_i)`` over the mask.
    """
    r = _float_rewards(batch)
    s = _group_stats(r, _group_index(batch.group_ids, r.device))
    adv = r - (s.total - r) / (s.size - 1).clamp(min=1)
    adv = torch.where(s.constant, torch.zeros_like(adv), adv)
    return _broadcast(adv, batch.mask), _broadcast(r, batch.mask)


def reinforce_advantages(batch: AdvantageBatch, opts: AdvantageOptions = AdvantageOptions()
                         ) -> tuple[Tensor, Tensor]:
    """REINFORCE: ``A_i = r_i - mean(r)`` over the whole step with ``baseline``, else ``A_i = r_i``; ``R = r_i``."""
    r = _float_rewards(batch)
    adv = r
    if opts.baseline:
        count = batch.total(r.new_tensor(float(r.numel())))
        adv = r - batch.total(r.sum()) / count.clamp(min=1)
    return _broadcast(adv, batch.mask), _broadcast(r, batch.mask)


def outcome_token_rewards(rewards: Tensor, mask: Tensor) -> Tensor:
    """[B, T] token rewards: ``rewards[i]`` on the last masked (policy) token of row i, 0 elsewhere.

    A row without any policy token gets no reward.
    """
    m = mask.bool()
    t = mask.shape[1]
    positions = torch.arange(t, device=mask.device).expand_as(m)
    last = torch.where(m, positions, torch.full_like(positions, -1)).amax(dim=1)
    out = torch.zeros(mask.shape, dtype=rewards.dtype, device=rewards.device)
    has = last >= 0
    out[has.nonzero(as_tuple=True)[0], last[has]] = rewards[has]
    return out


def masked_whiten(values: Tensor, mask: Tensor, eps: float = 1e-6,
                  reduce_sum: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """``(x - mean) / sqrt(var + eps)`` with mean and unbiased variance over masked positions; 0 off the mask.

    ``reduce_sum`` (see ``AdvantageBatch``) takes the mean and variance over the masked positions of every
    process. Fewer than two masked positions: centred only (which gives 0), never NaN.
    """
    total = reduce_sum or (lambda x: x)
    m = mask.bool()
    n = total(m.sum().to(values.dtype))
    mean = total(torch.where(m, values, torch.zeros_like(values)).sum()) / n.clamp(min=1)
    centred = torch.where(m, values - mean, torch.zeros_like(values))
    if n < 2:
        return centred
    var = total(centred.pow(2).sum()) / (n - 1)
    return centred * torch.rsqrt(var + eps)


def gae_advantages(batch: AdvantageBatch, opts: AdvantageOptions = AdvantageOptions()) -> tuple[Tensor, Tensor]:
    """GAE over policy tokens only; the outcome reward sits on each row's last policy token.

    For the policy positions ``t_1 < ... < t_K`` of a row (mask 1):
    ``delta_k = r_k + gamma * V(t_{k+1}) - V(t_k)`` with ``V(t_{K+1}) = 0``, and
    ``A_k = delta_k + gamma * lam * A_{k+1}``; returns ``R_k = A_k + V(t_k)`` (before whitening).

    Observation tokens (mask 0 between two policy turns) are skipped: the recursion jumps over them
    as if they were not there, so the bootstrap of the last token of a turn is the value of the first
    policy token of the next turn, and gamma discounts per policy token, not per position. Their
    values never enter. With ``whiten`` the advantages are whitened over the mask (returns are not).
    """
    if batch.values is None:
        raise ValueError("gae needs values [B, T] from the value model")
    values = batch.values.detach()
    m = batch.mask.bool()
    outcome = batch.rewards if batch.rewards.is_floating_point() else batch.rewards.float()
    rewards = outcome_token_rewards(outcome.to(values.dtype), m)
    if batch.token_rewards is not None:
        rewards = rewards + torch.where(m, batch.token_rewards.to(values.dtype), torch.zeros_like(rewards))
    adv = torch.zeros_like(values)
    next_value = values.new_zeros(values.shape[0])
    next_adv = values.new_zeros(values.shape[0])
    for t in reversed(range(values.shape[1])):
        on = m[:, t]
        a = rewards[:, t] + opts.gamma * next_value - values[:, t] + opts.gamma * opts.lam * next_adv
        adv[:, t] = torch.where(on, a, torch.zeros_like(a))
        next_value = torch.where(on, values[:, t], next_value)
        next_adv = torch.where(on, a, next_adv)
    returns = torch.where(m, adv + values, torch.zeros_like(adv))
    if opts.whiten:
        adv = masked_whiten(adv, m, opts.eps, batch.reduce_sum)
    return adv, returns


ADVANTAGE_ESTIMATORS: dict[str, AdvantageEstimator] = {
    "grpo": grpo_advantages,
    "reinforce": reinforce_advantages,
    "rloo": rloo_advantages,
    "gae": gae_advantages,
}


def get_advantage_estimator(name: str) -> AdvantageEstimator:
    """The estimator called ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in ADVANTAGE_ESTIMATORS:
        raise ValueError(f"unknown advantage estimator {name!r}; valid: {', '.join(ADVANTAGE_ESTIMATORS)}")
    return ADVANTAGE_ESTIMATORS[name]


# ---------------------------------------------------------------- losses


def ppo_clip_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, *, clip_ratio_low: float,
                  clip_ratio_high: float, token_count: float | Tensor | None = None
                  ) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO-clip: token mean of ``max(-A * rho, -A * clip(rho, 1 - clip_ratio_low, 1 + clip_ratio_high))``.

    ``rho = exp(logp - old_logp)`` (log-ratio clamped to +-20). A token whose clipped term wins gets no
    gradient. Stats (detached 0-d tensors, means over masked tokens, 0 without tokens):
    ``clip_fraction`` (share of tokens where clipping is active), ``approx_kl`` (KL(old || new) by
    the low-variance estimator ``rho - 1 - log rho``), ``ratio_mean``, ``ratio_max``.
    """
    log_ratio = (logp - old_logp).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_ratio_low, 1.0 + clip_ratio_high)
    loss = token_mean(torch.maximum(unclipped, clipped), mask, token_count)
    with torch.no_grad():
        m = mask.bool()
        stats = {
            "clip_fraction": token_mean((clipped > unclipped).to(ratio.dtype), m),
            "approx_kl": token_mean(ratio - 1 - log_ratio, m),
            "ratio_mean": token_mean(ratio, m),
            "ratio_max": ratio[m].max() if m.any() else ratio.new_zeros(()),
        }
    return loss, stats


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, *, clip: float,
               token_count: float | Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped value loss: token mean of ``0.5 * max((V - R)^2, (V_clip - R)^2)``.

    ``V_clip = V_old + clamp(V - V_old, -clip, clip)``. Stats: ``vf_clip_fraction`` (share of masked
    tokens where the clipped term wins, so no gradient flows).
    """
    v_clipped = old_values + (values - old_values).clamp(-clip, clip)
    unclipped = (values - returns) ** 2
    clipped = (v_clipped - returns) ** 2
    loss = 0.5 * token_mean(torch.maximum(unclipped, clipped), mask, token_count)
    with torch.no_grad():
        stats = {"vf_clip_fraction": token_mean((clipped > unclipped).to(values.dtype), mask)}
    return loss, stats


def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k1 per token: ``log p - log p_ref`` (unbiased for KL(p || p_ref), may be negative)."""
    return logp - ref_logp


#: The largest per-token k3 value; beyond it the estimate is clamped (and gives no gradient), as veRL's
#: ``low_var_kl`` and ZeroSearch's fork of it clamp it to [-10, 10].
K3_LIMIT = 10.0


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 per token: ``exp(ref - logp) - (ref - logp) - 1`` (unbiased, low variance, always >= 0).

    Computed as ``expm1(d) - d`` (``exp(d) - d - 1`` rounds below 0 for tiny ``d``); the log-ratio ``d``
    is clamped to +-20 so the exp stays finite, and the estimate to ``K3_LIMIT`` as in veRL: a token
    the reference finds about 13 times likelier than the policy does (``d`` > 2.6), or 60,000 times less
    likely (``d`` < -11), stops pulling on the policy instead of dominating the loss.
    """
    d = (ref_logp - logp).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    return (torch.expm1(d) - d).clamp(max=K3_LIMIT)


KL_ESTIMATORS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"k1": kl_k1, "k3": kl_k3}


def kl_penalty(logp: Tensor, ref_logp: Tensor, estimator: str) -> Tensor:
    """Per-token KL of the policy to the frozen reference by ``estimator`` (``k1`` or ``k3``)."""
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {estimator!r}; valid: {', '.join(KL_ESTIMATORS)}")
    return KL_ESTIMATORS[estimator](logp, ref_logp)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Per-position entropy ``H = -sum_v p_v log p_v`` over the last dim, via ``log_softmax``.

    Stable for large logits; ``-inf`` logits (banned tokens) contribute 0, with finite gradients.
    """
    logp = torch.log_softmax(logits, dim=-1)
    p = logp.exp()
    return -(p * logp.masked_fill(p == 0, 0.0)).sum(dim=-1)
