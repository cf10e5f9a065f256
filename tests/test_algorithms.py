"""Advantage estimators and losses: hand-computed numbers on small tensors, plus a few properties."""

from __future__ import annotations

import math
import typing

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zerosearch_rl.algorithms import (
    ADVANTAGE_ESTIMATORS,
    KL_ESTIMATORS,
    AdvantageBatch,
    AdvantageOptions,
    entropy_from_logits,
    gae_advantages,
    get_advantage_estimator,
    grpo_advantages,
    kl_penalty,
    masked_whiten,
    outcome_token_rewards,
    ppo_clip_loss,
    reinforce_advantages,
    rloo_advantages,
    token_mean,
    total_loss,
    value_loss,
)
from zerosearch_rl.config import AlgorithmConfig

F64 = torch.float64
RAW = AdvantageOptions(std_normalize=False, whiten=False)


def t(*rows: object) -> torch.Tensor:
    return torch.tensor(rows, dtype=F64)


def ones(b: int, n: int = 1) -> torch.Tensor:
    return torch.ones(b, n, dtype=F64)


def close(actual: torch.Tensor, expected: object) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype))


def per_row(adv: torch.Tensor) -> list[float]:
    """Each row's value (the estimators put the same value on every masked token of a row)."""
    return adv[:, 0].tolist()


# ---------------------------------------------------------------- GRPO


def test_grpo_group_with_equal_rewards_gets_zero():
    # Group a = [1, 0]: mean 0.5, unbiased std sqrt((0.25 + 0.25) / 1) = sqrt(0.5). Group b = [1, 1]: std 0 -> 0.
    adv, ret = grpo_advantages(AdvantageBatch(t(1.0, 0.0, 1.0, 1.0), ones(4), ["a", "a", "b", "b"]))
    s = 0.5 / (math.sqrt(0.5) + 1e-6)
    assert per_row(adv) == pytest.approx([s, -s, 0.0, 0.0], abs=1e-12)
    assert adv[2:].eq(0).all()  # exactly zero, not eps-sized noise
    assert per_row(ret) == [1.0, 0.0, 1.0, 1.0]


def test_grpo_uses_unbiased_std():
    # [0, 0.5, 1]: mean 0.5, unbiased std sqrt((0.25 + 0 + 0.25) / 2) = 0.5 -> [-1, 0, 1]
    # (the biased std sqrt(0.5 / 3) would give +-1.2247).
    adv, _ = grpo_advantages(AdvantageBatch(t(0.0, 0.5, 1.0), ones(3), [7, 7, 7]), AdvantageOptions(eps=0.0))
    assert per_row(adv) == pytest.approx([-1.0, 0.0, 1.0])


def test_grpo_groups_by_id_not_position_and_without_std():
    # a = rows 0, 2 = [1, 3] (mean 2); b = rows 1, 3 = [2, 6] (mean 4).
    batch = AdvantageBatch(t(1.0, 2.0, 3.0, 6.0), ones(4), ["a", "b", "a", "b"])
    assert per_row(grpo_advantages(batch, RAW)[0]) == [-1.0, -2.0, 1.0, 2.0]
    # With std: a has std sqrt(2), b has std sqrt(8): every deviation becomes +-1/sqrt(2).
    s = 1 / math.sqrt(2)
    assert per_row(grpo_advantages(batch, AdvantageOptions(eps=0.0))[0]) == pytest.approx([-s, -s, s, s])


def test_grpo_singleton_group_is_zero_and_tensor_ids_match_list_ids():
    rewards = t(5.0, 0.0, 1.0)
    adv, _ = grpo_advantages(AdvantageBatch(rewards, ones(3), ["solo", "pair", "pair"]))
    assert adv[0, 0] == 0.0 and not adv.isnan().any()
    adv_t, _ = grpo_advantages(AdvantageBatch(rewards, ones(3), torch.tensor([42, 3, 3])))
    assert torch.equal(adv, adv_t)


def test_grpo_broadcasts_over_the_mask():
    mask = torch.tensor([[1, 1, 0, 1], [0, 1, 1, 0]])
    adv, ret = grpo_advantages(AdvantageBatch(torch.tensor([1.0, 0.0]), mask, ["g", "g"]), RAW)
    assert adv.tolist() == [[0.5, 0.5, 0.0, 0.5], [0.0, -0.5, -0.5, 0.0]]
    assert ret.tolist() == [[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]


# ---------------------------------------------------------------- RLOO and REINFORCE


def test_rloo_leave_one_out():
    # g = [1, 0, 0.5]: 1 - (0 + 0.5)/2 = 0.75, 0 - (1 + 0.5)/2 = -0.75, 0.5 - (1 + 0)/2 = 0.
    # h = [2, 4]: 2 - 4 = -2, 4 - 2 = 2. s is alone: 0.
    batch = AdvantageBatch(t(1.0, 0.0, 0.5, 2.0, 4.0, 9.0), ones(6), ["g", "g", "g", "h", "h", "s"])
    adv, ret = rloo_advantages(batch)
    assert per_row(adv) == pytest.approx([0.75, -0.75, 0.0, -2.0, 2.0, 0.0])
    assert per_row(ret) == [1.0, 0.0, 0.5, 2.0, 4.0, 9.0]


def test_reinforce_with_and_without_baseline():
    batch = AdvantageBatch(t(1.0, 0.0, 0.0, 1.0), torch.tensor([[1, 0], [1, 1], [0, 1], [1, 1]]))
    adv, _ = reinforce_advantages(batch)
    assert adv.tolist() == [[0.5, 0.0], [-0.5, -0.5], [0.0, -0.5], [0.5, 0.5]]
    assert per_row(reinforce_advantages(batch, AdvantageOptions(baseline=False))[0]) == [1.0, 0.0, 0.0, 1.0]


# ---------------------------------------------------------------- GAE

GAE_MASK = torch.tensor([[1, 1, 0, 0, 1, 0],  # turn 1 = 0-1, observation 2-3, turn 2 = 4, padding 5
                         [1, 0, 1, 1, 0, 0]])
GAE_VALUES = t([0.5, 0.4, 9.0, 9.0, 0.2, 9.0],  # 9.0 on observation / padding: must never enter
               [0.3, 5.0, 0.1, 0.6, 5.0, 5.0])
GAE_REWARDS = t(1.0, 0.0)


def test_gae_skips_observation_tokens_hand_unrolled():
    g, lam = 0.9, 0.8
    # Row 0, policy positions 0, 1, 4; reward 1 on position 4.
    a4 = 1.0 + g * 0.0 - 0.2  # 0.8
    a1 = (0.0 + g * 0.2 - 0.4) + g * lam * a4  # next policy value is V(4), not V(2): -0.22 + 0.576 = 0.356
    a0 = (0.0 + g * 0.4 - 0.5) + g * lam * a1  # -0.14 + 0.25632 = 0.11632
    # Row 1, policy positions 0, 2, 3; reward 0 on position 3.
    b3 = 0.0 - 0.6
    b2 = (g * 0.6 - 0.1) + g * lam * b3  # 0.44 - 0.432 = 0.008
    b0 = (g * 0.1 - 0.3) + g * lam * b2  # -0.21 + 0.00576 = -0.20424
    assert (a0, a1, b0, b2) == pytest.approx((0.11632, 0.356, -0.20424, 0.008))
    batch = AdvantageBatch(GAE_REWARDS, GAE_MASK, values=GAE_VALUES)
    adv, ret = gae_advantages(batch, AdvantageOptions(gamma=g, lam=lam, whiten=False))
    close(adv, [[a0, a1, 0, 0, a4, 0], [b0, 0, b2, b3, 0, 0]])
    close(ret, [[a0 + 0.5, a1 + 0.4, 0, 0, a4 + 0.2, 0], [b0 + 0.3, 0, b2 + 0.1, 0, 0, 0]])

    raw = [a0, a1, a4, b0, b2, b3]
    mean = sum(raw) / 6
    std = math.sqrt(sum((x - mean) ** 2 for x in raw) / 5 + 1e-6)
    white, ret_w = gae_advantages(batch, AdvantageOptions(gamma=g, lam=lam, whiten=True))
    w = [(x - mean) / std for x in raw]
    close(white, [[w[0], w[1], 0, 0, w[2], 0], [w[3], 0, w[4], w[5], 0, 0]])
    assert torch.equal(ret_w, ret)  # returns are not whitened


def test_gae_needs_values_and_outcome_reward_placement():
    with pytest.raises(ValueError, match="values"):
        gae_advantages(AdvantageBatch(GAE_REWARDS, GAE_MASK))
    placed = outcome_token_rewards(t(1.0, 2.0, 3.0), torch.tensor([[1, 1, 0, 1, 0], [0] * 5, [0, 1, 1, 0, 0]]))
    assert placed.tolist() == [[0, 0, 0, 1, 0], [0] * 5, [0, 0, 3, 0, 0]]


def test_masked_whiten():
    x = t([1.0, 100.0, 3.0], [5.0, 0.0, 0.0])
    mask = torch.tensor([[1, 0, 1], [1, 0, 0]])
    # masked values 1, 3, 5: mean 3, unbiased var (4 + 0 + 4) / 2 = 4
    assert masked_whiten(x, mask, eps=0.0).tolist() == [[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    assert masked_whiten(x, torch.zeros(2, 3)).eq(0).all()
    assert masked_whiten(x, torch.tensor([[0, 1, 0], [0, 0, 0]])).eq(0).all()  # one token: centred -> 0


# ---------------------------------------------------------------- NaN safety, registry, validation


@pytest.mark.parametrize("name", list(ADVANTAGE_ESTIMATORS))
def test_empty_masks_and_constant_rewards_give_zero_not_nan(name):
    mask = torch.tensor([[0, 0, 0], [1, 1, 0], [0, 0, 0], [0, 1, 0]])
    batch = AdvantageBatch(t(1.0, 1.0, 1.0, 1.0), mask, ["a", "a", "b", "b"], values=torch.zeros(4, 3, dtype=F64))
    adv, ret = get_advantage_estimator(name)(batch, AdvantageOptions(baseline=True))
    assert not adv.isnan().any() and not ret.isnan().any()
    assert adv[mask == 0].eq(0).all() and ret[mask == 0].eq(0).all()
    if name != "gae":
        assert adv.eq(0).all()
    empty = AdvantageBatch(t(0.0, 1.0), torch.zeros(2, 3), [0, 0], values=torch.zeros(2, 3, dtype=F64))
    adv, ret = get_advantage_estimator(name)(empty, AdvantageOptions())
    assert adv.eq(0).all() and ret.eq(0).all()


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match=r"'ppo'.*grpo, reinforce, rloo, gae"):
        get_advantage_estimator("ppo")
    with pytest.raises(ValueError, match=r"'k2'.*k1, k3"):
        kl_penalty(t(0.0), t(0.0), "k2")


def test_every_config_choice_resolves_and_options_follow_config():
    hints = typing.get_type_hints(AlgorithmConfig)
    for name in typing.get_args(hints["advantage"]):
        get_advantage_estimator(name)
    assert set(typing.get_args(hints["kl_estimator"])) == set(KL_ESTIMATORS)
    cfg = AlgorithmConfig(grpo_std_normalize=False, reinforce_baseline=False, gamma=0.9, lam=0.95)
    assert AdvantageOptions.from_config(cfg) == AdvantageOptions(std_normalize=False, baseline=False, gamma=0.9,
                                                                 lam=0.95)


def test_bad_shapes_and_missing_group_ids():
    with pytest.raises(ValueError, match="rewards must be"):
        AdvantageBatch(t(1.0, 2.0), ones(3))
    with pytest.raises(ValueError, match="group_ids has 1"):
        AdvantageBatch(t(1.0, 2.0), ones(2), ["a"])
    with pytest.raises(ValueError, match="values must"):
        AdvantageBatch(t(1.0, 2.0), ones(2, 3), values=ones(2, 2))
    with pytest.raises(ValueError, match="group_ids"):
        grpo_advantages(AdvantageBatch(t(1.0, 2.0), ones(2)))


# ---------------------------------------------------------------- PPO clip


def test_ppo_clip_values_stats_and_zero_gradient_when_clipped():
    ratios = [1.5, 0.5, 1.1, 0.7, 1.5, 50.0]
    adv = t([1.0, -1.0, 1.0, 1.0, -1.0, 1.0])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])  # the last token (wild ratio) is not the policy's
    logp = torch.tensor([[math.log(r) for r in ratios]], dtype=F64, requires_grad=True)
    loss, stats = ppo_clip_loss(logp, torch.zeros(1, 6, dtype=F64), adv, mask,
                                clip_ratio_low=0.2, clip_ratio_high=0.28)
    # 1.5, A=+1: above 1.28 -> clipped, -1.28.   0.5, A=-1: below 0.8 -> clipped, max(0.5, 0.8) = 0.8.
    # 1.1: inside, -1.1.   0.7, A=+1: max(-0.7, -0.8) = -0.7 (not clipped).   1.5, A=-1: max(1.5, 1.28) = 1.5.
    assert loss.item() == pytest.approx((-1.28 + 0.8 - 1.1 - 0.7 + 1.5) / 5)
    loss.backward()
    # d/dlogp of -A * rho is -A * rho for unclipped tokens; clipped and masked tokens get 0.
    close(logp.grad, [[0.0, 0.0, -1.1 / 5, -0.7 / 5, 1.5 / 5, 0.0]])
    assert stats["clip_fraction"].item() == pytest.approx(2 / 5)
    assert stats["ratio_mean"].item() == pytest.approx((1.5 + 0.5 + 1.1 + 0.7 + 1.5) / 5)
    assert stats["ratio_max"].item() == pytest.approx(1.5)
    assert stats["approx_kl"].item() == pytest.approx(sum(r - 1 - math.log(r) for r in ratios[:5]) / 5)
    assert not any(v.requires_grad for v in stats.values())


def test_ppo_clip_with_empty_mask_is_zero_without_nan():
    logp = torch.zeros(2, 3, requires_grad=True)
    loss, stats = ppo_clip_loss(logp, torch.full((2, 3), -5.0), torch.ones(2, 3), torch.zeros(2, 3),
                                clip_ratio_low=0.2, clip_ratio_high=0.2)
    loss.backward()
    assert loss.item() == 0.0 and logp.grad.eq(0).all()
    assert all(v.item() == 0.0 for v in stats.values())


# ---------------------------------------------------------------- value loss, KL, entropy, aggregation


def test_value_loss_clipping():
    values = torch.tensor([[1.0, 2.0, 0.0, 7.0]], dtype=F64, requires_grad=True)
    old, returns = t([0.5, 0.5, 0.0, 0.0]), t([2.0, 3.0, 1.0, 0.0])
    loss, stats = value_loss(values, old, returns, torch.tensor([[1, 1, 1, 0]]), clip=0.5)
    # 0: within clip, 0.5 * 1^2.  1: V_clip = 1.0, max((2-3)^2, (1-3)^2) = 4 -> 2.0, clipped.  2: 0.5 * 1.
    assert loss.item() == pytest.approx((0.5 + 2.0 + 0.5) / 3)
    loss.backward()
    close(values.grad, [[-1 / 3, 0.0, -1 / 3, 0.0]])
    assert stats["vf_clip_fraction"].item() == pytest.approx(1 / 3)


def test_kl_k1_and_k3_values():
    logp, ref = t(math.log(0.5), math.log(0.25), -1.0), t(math.log(0.25), math.log(0.5), -1.0)
    assert kl_penalty(logp, ref, "k1").tolist() == pytest.approx([math.log(2), -math.log(2), 0.0])
    # k3 = exp(ref - logp) - (ref - logp) - 1: 0.5 + log 2 - 1, 2 - log 2 - 1, 0
    assert kl_penalty(logp, ref, "k3").tolist() == pytest.approx([0.5 + math.log(2) - 1, 1 - math.log(2), 0.0])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-30, 0), st.floats(-30, 0)), min_size=1, max_size=8),
       st.sampled_from([torch.float32, F64]))
def test_k3_is_never_negative(pairs, dtype):
    logp = torch.tensor([p for p, _ in pairs], dtype=dtype)
    ref = torch.tensor([r for _, r in pairs], dtype=dtype)
    k3 = kl_penalty(logp, ref, "k3")
    assert (k3 >= 0).all() and k3.isfinite().all()


def test_k3_is_not_negative_for_tiny_log_ratios():
    # exp(d) - d - 1 rounds below zero for many tiny d; expm1(d) - d does not.
    for dtype in (torch.float32, F64):
        d = torch.logspace(-20, 0, 20001, dtype=dtype)
        for sign in (1, -1):
            assert (kl_penalty(torch.zeros_like(d), sign * d, "k3") >= 0).all()


def test_entropy_from_logits():
    close(entropy_from_logits(torch.zeros(2, 3, 7)), [[math.log(7)] * 3] * 2)
    two = entropy_from_logits(t(math.log(0.25), math.log(0.75))).item()
    assert two == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    assert entropy_from_logits(t(1000.0, 0.0)).item() == pytest.approx(0.0, abs=1e-12)
    logits = torch.tensor([0.0, 0.0, -math.inf], requires_grad=True)
    h = entropy_from_logits(logits)
    h.backward()
    assert h.item() == pytest.approx(math.log(2)) and logits.grad.isfinite().all()


def test_token_mean_and_total_loss():
    x = t([1.0, 2.0, 3.0], [4.0, math.nan, 6.0])
    mask = torch.tensor([[1, 1, 0], [0, 0, 1]])
    assert token_mean(x, mask).item() == 3.0  # (1 + 2 + 6) / 3, the NaN is off the mask
    assert token_mean(x, mask, token_count=6).item() == 1.5
    assert token_mean(x, torch.zeros(2, 3)).item() == 0.0
    assert total_loss(t(1.0), t(2.0), t(3.0), kl_coef=0.1, entropy_coef=0.01).item() == pytest.approx(1.17)


# ---------------------------------------------------------------- micro-batch invariance

B, T, V, D = 6, 7, 5, 4
LENGTHS = [3, 7, 1, 5, 2, 6]


def _setup() -> tuple:
    gen = torch.Generator().manual_seed(0)
    mask = torch.tensor([[1] * n + [0] * (T - n) for n in LENGTHS])
    mask[1, 3:5] = 0  # an observation in the middle of trajectory 1
    feats = torch.randn(B, T, D, generator=gen, dtype=F64)
    actions = torch.randint(V, (B, T), generator=gen)
    old_logp = torch.randn(B, T, generator=gen, dtype=F64) * 0.3 - 1.6
    ref_logp = torch.randn(B, T, generator=gen, dtype=F64) * 0.3 - 1.6
    rewards = torch.rand(B, generator=gen, dtype=F64)
    adv, _ = grpo_advantages(AdvantageBatch(rewards, mask, [0, 0, 0, 1, 1, 1]))
    return mask, feats, actions, old_logp, ref_logp, adv


def _loss(model: torch.nn.Module, rows: list[int], data: tuple, token_count: float | None) -> torch.Tensor:
    mask, feats, actions, old_logp, ref_logp, adv = (x[rows] for x in data)
    logits = model(feats)
    logp = torch.log_softmax(logits, -1).gather(-1, actions[..., None]).squeeze(-1)
    pg, _ = ppo_clip_loss(logp, old_logp, adv, mask, clip_ratio_low=0.2, clip_ratio_high=0.28,
                          token_count=token_count)
    kl = token_mean(kl_penalty(logp, ref_logp, "k3"), mask, token_count)
    ent = token_mean(entropy_from_logits(logits), mask, token_count)
    return total_loss(pg, kl, ent, kl_coef=0.1, entropy_coef=0.01)


@pytest.mark.parametrize("sizes", [(1, 2, 3), (3, 2, 1), (2, 2, 2), (1,) * 6])
def test_micro_batch_losses_and_gradients_add_up_to_the_full_batch(sizes):
    data = _setup()
    model = torch.nn.Linear(D, V, dtype=F64)
    init = torch.Generator().manual_seed(1)  # weight and bias alike: the global RNG depends on the tests before
    torch.nn.init.normal_(model.weight, generator=init)
    torch.nn.init.normal_(model.bias, generator=init)
    n_tokens = data[0].sum().item()

    full = _loss(model, list(range(B)), data, None)  # the plain token mean of the whole batch
    full.backward()
    full_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    total, start = 0.0, 0
    for size in sizes:
        micro = _loss(model, list(range(start, start + size)), data, n_tokens)
        micro.backward()  # gradients accumulate across micro-batches
        total += micro.item()
        start += size
    assert total == pytest.approx(full.item(), abs=1e-6)
    for p, g in zip(model.parameters(), full_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=0, atol=1e-6)

    # The naive per-micro-batch mean (mean of the micro means) is not the token mean.
    naive, start = 0.0, 0
    for size in sizes:
        naive += _loss(model, list(range(start, start + size)), data, None).item() / len(sizes)
        start += size
    assert abs(naive - full.item()) > 1e-3, naive - full.item()


# ---------------------------------------------------------------- properties

GRID = st.integers(0, 20).map(lambda k: k / 20)  # F1-like rewards on a grid


@st.composite
def grouped_batches(draw: st.DrawFn) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    sizes = draw(st.lists(st.integers(1, 5), min_size=1, max_size=5))
    ids = [g for g, n in enumerate(sizes) for _ in range(n)]
    order = draw(st.permutations(range(len(ids))))
    ids = [ids[i] for i in order]  # groups interleaved in any order
    rewards = torch.tensor(draw(st.lists(GRID, min_size=len(ids), max_size=len(ids))), dtype=F64)
    mask = torch.tensor(draw(st.lists(st.lists(st.integers(0, 1), min_size=4, max_size=4),
                                      min_size=len(ids), max_size=len(ids))))
    return rewards, ids, mask


@settings(max_examples=60, deadline=None)
@given(grouped_batches())
def test_grpo_group_means_are_zero_and_stds_one(data):
    rewards, ids, _ = data
    adv, _ = grpo_advantages(AdvantageBatch(rewards, torch.ones(len(ids), 1), ids))
    for g in set(ids):
        rows = [i for i, x in enumerate(ids) if x == g]
        a, r = adv[rows, 0], rewards[rows]
        if len(set(r.tolist())) > 1:
            assert a.mean().item() == pytest.approx(0.0, abs=1e-9)
            assert a.std().item() == pytest.approx(1.0, abs=1e-4)
        else:
            assert a.eq(0).all()


@settings(max_examples=60, deadline=None)
@given(grouped_batches(), st.sampled_from(list(ADVANTAGE_ESTIMATORS)), st.booleans())
def test_advantages_vanish_off_the_mask(data, name, whiten):
    rewards, ids, mask = data
    values = torch.linspace(-1, 1, mask.numel(), dtype=F64).reshape(mask.shape)
    adv, ret = get_advantage_estimator(name)(AdvantageBatch(rewards, mask, ids, values),
                                             AdvantageOptions(gamma=0.9, lam=0.7, whiten=whiten))
    assert adv.isfinite().all() and ret.isfinite().all()
    assert adv[mask == 0].eq(0).all() and ret[mask == 0].eq(0).all()


@settings(max_examples=40, deadline=None)
@given(grouped_batches(), st.randoms(use_true_random=False))
def test_group_estimators_follow_ids_not_positions(data, rnd):
    rewards, ids, mask = data
    perm = list(range(len(ids)))
    rnd.shuffle(perm)
    for fn in (grpo_advantages, rloo_advantages):
        adv, _ = fn(AdvantageBatch(rewards, mask, ids))
        shuffled, _ = fn(AdvantageBatch(rewards[perm], mask[perm], [ids[i] for i in perm]))
        torch.testing.assert_close(shuffled, adv[perm])


@settings(max_examples=40, deadline=None)
@given(grouped_batches())
def test_rloo_is_scaled_mean_baseline(data):
    # r_i - mean_{j != i} r_j = n / (n - 1) * (r_i - mean_g) for groups of n >= 2.
    rewards, ids, _ = data
    rloo, _ = rloo_advantages(AdvantageBatch(rewards, torch.ones(len(ids), 1), ids))
    centred, _ = grpo_advantages(AdvantageBatch(rewards, torch.ones(len(ids), 1), ids), RAW)
    n = torch.tensor([ids.count(g) for g in ids], dtype=F64)
    expected = torch.where(n > 1, n / (n - 1).clamp(min=1) * centred[:, 0], torch.zeros_like(n))
    torch.testing.assert_close(rloo[:, 0], expected)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 1), min_size=6, max_size=6), min_size=1, max_size=4), GRID)
def test_gae_with_unit_gamma_lambda_is_monte_carlo(mask_rows, reward):
    # gamma = lam = 1: A_t = R - V(t) at every policy token, whatever the observation gaps.
    mask = torch.tensor(mask_rows)
    values = torch.linspace(0, 1, mask.numel(), dtype=F64).reshape(mask.shape)
    rewards = torch.full((mask.shape[0],), reward, dtype=F64)
    adv, ret = gae_advantages(AdvantageBatch(rewards, mask, values=values), AdvantageOptions(whiten=False))
    expected = torch.where(mask.bool(), reward - values, torch.zeros_like(values))
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, torch.where(mask.bool(), rewards[:, None].expand_as(values), 0.0))


@pytest.mark.parametrize(("d", "value", "has_gradient"), [
    (0.5, math.exp(0.5) - 0.5 - 1, True),
    (2.5, math.exp(2.5) - 2.5 - 1, True),  # 8.68: below the limit
    (3.0, 10.0, False),  # exp(3) - 4 = 16.1: clamped, as veRL's low_var_kl clamps it
    (-10.0, math.exp(-10) + 10 - 1, True),  # 9.00005
    (-12.0, 10.0, False),
    (50.0, 10.0, False),  # the log-ratio clamp (20) first, then the estimate's
])
def test_k3_is_clamped_to_ten_as_verl_does(d, value, has_gradient):
    """veRL (core_algos.kl_penalty, low_var_kl) and ZeroSearch's fork clamp the k3 estimate to [-10, 10]."""
    logp = torch.tensor([0.0], requires_grad=True)
    k3 = kl_penalty(logp, torch.tensor([d]), "k3")
    assert float(k3) == pytest.approx(value, rel=1e-6)
    k3.sum().backward()
    assert (float(logp.grad) != 0.0) is has_gradient


def test_token_rewards_add_to_every_estimator():
    """Per-token rewards (the KL penalty in the reward): summed over the mask into each trajectory's reward for the
    outcome estimators, kept token by token for GAE. Hand-computed."""
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    tok = torch.tensor([[-0.1, -0.2, -5.0], [-0.3, -9.0, -9.0]])  # off-mask values never count
    batch = AdvantageBatch(torch.tensor([1.0, 0.0]), mask, ["g", "g"], token_rewards=tok)
    # reinforce without a baseline: A_i = r_i + sum(token rewards) = 0.7 and -0.3
    adv, ret = get_advantage_estimator("reinforce")(batch, AdvantageOptions(baseline=False))
    assert adv[:, 0].tolist() == pytest.approx([0.7, -0.3]) and ret[:, 0].tolist() == pytest.approx([0.7, -0.3])
    # grpo: (0.7 - 0.2) / (std(0.7, -0.3) = sqrt(0.5)) on every masked token
    adv, _ = get_advantage_estimator("grpo")(batch, AdvantageOptions())
    assert adv[0, :2].tolist() == pytest.approx([0.5 / math.sqrt(0.5)] * 2, rel=1e-5) and adv[0, 2] == 0
    # gae, gamma = lam = 1, values 0: A_t = sum of rewards from t on = [-0.1 - 0.2 + 1, -0.2 + 1], [-0.3]
    values = torch.zeros(2, 3)
    gae = AdvantageBatch(torch.tensor([1.0, 0.0]), mask, values=values, token_rewards=tok)
    adv, ret = get_advantage_estimator("gae")(gae, AdvantageOptions(whiten=False))
    assert torch.allclose(adv, torch.tensor([[0.7, 0.8, 0.0], [-0.3, 0.0, 0.0]]))
