from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from fakes.primed import primed_policy_dir
from zerosearch_rl.config import ConfigError, load_config
from zerosearch_rl.demo import asset
from zerosearch_rl.policy import TokenBatch
from zerosearch_rl.reward import score_trajectory
from zerosearch_rl.trainer import Trainer
from zerosearch_rl.types import SegmentKind, Trajectory

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def policy_dir(tmp_path_factory):
    return primed_policy_dir(str(tmp_path_factory.mktemp("primed")))


@pytest.fixture(scope="session")
def born(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "born.jsonl"
    rows = [line for line in asset("mini_qa.jsonl").read_text().splitlines() if "Where was" in line]
    path.write_text("\n".join(rows) + "\n")
    return path


def format_reward(tr: Trajectory):
    """The primed policy answers in the right format only some of the time: rewards vary within a group."""
    s = score_trajectory(tr)
    return dataclasses.replace(s, reward=float(s.format_valid))


def config(policy_dir, born, tmp_path, *overrides):
    return load_config("configs/smoke.yaml", [
        f"model.policy={policy_dir}", f"data.train_files=[{born}]", f"trainer.output_dir={tmp_path / 'run'}",
        "rollout.max_new_tokens=12", "trainer.lr=1e-2", *overrides])


def flat(model):
    return torch.cat([p.detach().flatten().clone() for p in model.parameters()])


@pytest.mark.parametrize("advantage", ["grpo", "gae", "reinforce"])
def test_two_steps_change_the_policy_and_write_everything(policy_dir, born, tmp_path, advantage):
    cfg = config(policy_dir, born, tmp_path, f"algorithm.advantage={advantage}", "algorithm.old_logprobs=recompute")
    trainer = Trainer(cfg, reward_fn=format_reward)
    before = flat(trainer.policy)
    history = trainer.train()
    trainer.close()
    assert not torch.equal(before, flat(trainer.policy))
    assert len(history) == 2
    for m in history:
        assert all(math.isfinite(v) for v in m.values()), m
        assert m["actor/grad_norm"] > 0
    if advantage == "gae":
        assert "critic/value_loss" in history[0]
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]
    for key in ("reward/mean", "reward/f1", "reward/exact_match", "reward/format_valid", "rollout/searches",
                "noise/probability", "noise/served_share", "rollout/policy_tokens", "rollout/observation_tokens",
                "rollout/truncated_response", "actor/entropy", "actor/kl", "actor/clip_fraction", "actor/grad_norm",
                "actor/behaviour_ratio_mean", "time/generate", "time/search", "time/reference", "time/update"):
        assert key in rows[0], key
    assert load_config(run / "config.yaml") == cfg
    for step in (0, 1):
        ckpt = run / "checkpoints" / f"step-{step:06d}"
        assert (ckpt / "state.pt").is_file() and (ckpt / "policy" / "config.json").is_file()
        assert load_config(ckpt / "config.yaml") == cfg
    from transformers import AutoModelForCausalLM

    final = AutoModelForCausalLM.from_pretrained(run / "final")
    assert torch.equal(flat(final), flat(trainer.policy))


def test_lr_schedule_sets_each_steps_learning_rate(policy_dir, born, tmp_path):
    cfg = config(policy_dir, born, tmp_path, "trainer.total_steps=3", "trainer.lr_schedule=linear",
                 "trainer.save_every=0")
    trainer = Trainer(cfg, reward_fn=format_reward)
    history = trainer.train()
    trainer.close()
    assert [m["actor/lr"] for m in history] == pytest.approx([1e-2, 1e-2 * 2 / 3, 1e-2 / 3])


def test_warmup_ratio_counts_steps_as_verl_does_and_the_critic_warms_up_on_its_own(policy_dir, born, tmp_path):
    """warmup_ratio 0.8 of 4 steps is int(3.2) = 3 warm-up steps; the critic's 0.5 is 2 steps."""
    cfg = config(policy_dir, born, tmp_path, "trainer.total_steps=4", "curriculum.steps=4", "trainer.save_every=0",
                 "trainer.warmup_ratio=0.8", "algorithm.advantage=gae", "algorithm.critic_lr=1e-3",
                 "algorithm.critic_warmup_ratio=0.5")
    trainer = Trainer(cfg, reward_fn=format_reward)
    history = trainer.train()
    trainer.close()
    assert [m["actor/lr"] for m in history] == pytest.approx([1e-2 / 3, 2e-2 / 3, 1e-2, 1e-2])
    assert [m["critic/lr"] for m in history] == pytest.approx([5e-4, 1e-3, 1e-3, 1e-3])
    with pytest.raises(ConfigError, match="both set"):
        config(policy_dir, born, tmp_path, "trainer.warmup_ratio=0.5", "trainer.warmup_steps=3")


def test_kl_in_the_reward_replaces_the_kl_loss(policy_dir, born, tmp_path):
    """KL in the reward (ZeroSearch's PPO): no KL term in the loss, a per-token penalty in the reward that is 0 while
    the policy is its reference (step 0) and negative once it has moved (step 1)."""
    cfg = config(policy_dir, born, tmp_path, "algorithm.kl_in_reward=true", "algorithm.kl_estimator=k1",
                 "algorithm.kl_coef=0.1", "algorithm.old_logprobs=recompute", "trainer.save_every=0")
    trainer = Trainer(cfg, reward_fn=format_reward)
    history = trainer.train()
    trainer.close()
    assert [m["actor/kl"] for m in history] == [0.0, 0.0]
    assert history[0]["reward/kl_penalty"] == 0.0
    assert history[1]["reward/kl_penalty"] != 0.0


def _handmade_batch(trainer):
    """Two trajectories with observation tokens between policy turns (ids are arbitrary vocabulary)."""
    trajs = []
    for i in range(2):
        t = Trajectory(f"q{i}#0", f"q{i}", "Q?", ("A",))
        t.add(SegmentKind.PROMPT, [5, 6, 7, 8])
        t.add(SegmentKind.POLICY, [9, 10, 11], [-1.0, -1.2, -0.8])
        t.add(SegmentKind.OBSERVATION, [12, 13, 14, 15, 16 + i])
        t.add(SegmentKind.POLICY, [17, 18], [-0.5, -0.7])
        trajs.append(t)
    return TokenBatch.from_trajectories(trajs, trainer.tokenizer.pad_token_id), trajs


def test_observation_tokens_receive_no_gradient(policy_dir, born, tmp_path):
    trainer = Trainer(config(policy_dir, born, tmp_path, "algorithm.kl_coef=0.1", "algorithm.entropy_coef=0.01"))
    batch, _ = _handmade_batch(trainer)
    captured = {}

    def keep_logits(module, inputs, output):
        output.logits.retain_grad()
        captured["logits"] = output.logits

    handle = trainer.policy.register_forward_hook(keep_logits)
    adv = torch.ones_like(batch.loss_mask)  # non-zero everywhere: only the mask may stop the gradient
    ref = batch.behaviour_logprobs - 0.3
    trainer._micro_step(batch, [0, 1], batch.behaviour_logprobs, ref, adv, adv, None, float(batch.loss_mask.sum()),
                        sync=True)
    handle.remove()
    grad = captured["logits"].grad[:, :-1].abs().sum(-1)  # position t predicts token t+1
    target_is_policy = batch.loss_mask.bool()
    assert torch.all(grad[~target_is_policy] == 0)
    assert torch.all(grad[target_is_policy] > 0)
    obs = list(range(6, 11))  # prompt 0-3, policy 4-6, observation 7-11: predicted from positions 6-10
    assert torch.all(grad[:, obs] == 0)
    trainer.close()


def test_update_is_the_same_for_any_micro_batch_split(policy_dir, born, tmp_path):
    results = []
    for micro in (1, 2):
        trainer = Trainer(config(policy_dir, born, tmp_path / str(micro), f"trainer.micro_batch_size={micro}",
                                 "trainer.mini_batches=1", "algorithm.kl_coef=0.1"))
        batch, _ = _handmade_batch(trainer)
        adv = torch.tensor([[1.0], [-2.0]]).expand_as(batch.loss_mask).contiguous()
        trainer._update(batch, batch.behaviour_logprobs, batch.behaviour_logprobs - 0.1, adv, adv, None, step=0)
        results.append(flat(trainer.policy))
        trainer.close()
    assert torch.allclose(results[0], results[1], atol=1e-6)


def test_lora_trains_only_adapters_and_exports_a_merged_model(policy_dir, born, tmp_path):
    pytest.importorskip("peft")
    cfg = config(policy_dir, born, tmp_path, "model.lora_rank=4", "model.lora_target_modules=[q_proj, v_proj]",
                 "algorithm.kl_coef=0.01")
    trainer = Trainer(cfg, reward_fn=format_reward)
    named = dict(trainer.policy.named_parameters())
    base = {k: v.detach().clone() for k, v in named.items() if "lora_" not in k}
    adapters = {k: v.detach().clone() for k, v in named.items() if "lora_" in k}
    assert trainer.ref is None  # the reference is the policy with its adapters switched off, not a copy
    history = trainer.train()
    trainer.close()
    after = dict(trainer.policy.named_parameters())
    assert all(torch.equal(after[k], v) for k, v in base.items())
    assert any(not torch.equal(after[k], v) for k, v in adapters.items())
    assert all(math.isfinite(m["actor/kl"]) for m in history)
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final")
    assert not any("lora_" in k for k in merged.state_dict())


def test_validation_uses_its_own_engine(policy_dir, born, tmp_path):
    """trainer.eval_search: the evaluations during training search a real engine (BM25 here), training the fake one."""
    import shutil

    corpus = shutil.copy(asset("mini_corpus.jsonl"), tmp_path / "corpus.jsonl")
    cfg = config(policy_dir, born, tmp_path, "trainer.eval_every=1", f"data.eval_files=[{born}]", "eval.limit=2",
                 "trainer.save_every=0", f"trainer.eval_search=[search.backend=bm25, search.corpus={corpus}]")
    trainer = Trainer(cfg, reward_fn=format_reward)
    assert (trainer.rollout.search.name, trainer.eval_rollout.search.name) == ("fake", "bm25")
    history = trainer.train()
    trainer.close()
    assert all("eval/f1" in m for m in history)
    with pytest.raises(ConfigError, match="not a search"):
        config(policy_dir, born, tmp_path, "trainer.eval_search=[trainer.lr=1]")
