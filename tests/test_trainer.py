from __future__ import annotations

import copy
import dataclasses
import json
import math

import pytest
import torch

from fakes.primed import primed_policy_dir
from zerosearch_rl import algorithms
from zerosearch_rl.config import ConfigError, load_config
from zerosearch_rl.health import HealthStop
from zerosearch_rl.packaged_assets import asset
from zerosearch_rl.policy import StepBatch, TokenBatch
from zerosearch_rl.records import SegmentKind, Trajectory
from zerosearch_rl.reward import score_trajectory
from zerosearch_rl.trainer import Trainer

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
    step = StepBatch(batch, batch.behaviour_logprobs, adv, adv, ref_logprobs=ref)
    trainer._micro_step(step.select([0, 1]), float(batch.loss_mask.sum()), sync=True)
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
        trainer._update(StepBatch(batch, batch.behaviour_logprobs, adv, adv, batch.behaviour_logprobs - 0.1), step=0)
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


# ---------------------------------------------------------------- the health watch

COLLAPSE_WATCHES_OFF = ("health.max_kl=null", "health.min_entropy=null", "health.max_truncated=null",
                        "health.max_invalid=null")


def around_steps(trainer, hook):
    """Call ``hook(step, "before" | "after")`` around each of ``trainer``'s steps."""
    inner = trainer.step

    def step(s):
        hook(s, "before")
        metrics = inner(s)
        hook(s, "after")
        return metrics

    trainer.step = step


def same_tensors(a, b):
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_tensors(a[k], b[k]) for k in a)
    return a == b


def saved_weights(ckpt):
    from transformers import AutoModelForCausalLM

    return flat(AutoModelForCausalLM.from_pretrained(ckpt / "policy"))


def saved(run):
    return sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step-"))


def test_a_non_finite_reward_skips_that_update_and_training_goes_on(policy_dir, born, tmp_path):
    cfg = config(policy_dir, born, tmp_path, "trainer.total_steps=3", "curriculum.steps=3",
                 "trainer.lr_schedule=linear")
    now = {}

    def reward(tr):
        s = format_reward(tr)
        return dataclasses.replace(s, reward=float("nan")) if now["step"] == 1 else s

    trainer = Trainer(cfg, reward_fn=reward)
    weights, opt = {}, {}

    def hook(step, phase):
        now["step"] = step
        weights[step, phase] = flat(trainer.policy)
        opt[step, phase] = copy.deepcopy(trainer.optimizer.state_dict()["state"])

    around_steps(trainer, hook)
    history = trainer.train()
    trainer.close()
    assert torch.equal(weights[1, "before"], weights[1, "after"])
    assert same_tensors(opt[1, "before"], opt[1, "after"])
    assert not torch.equal(weights[2, "before"], weights[2, "after"])
    assert [m["health/skipped_update"] for m in history] == [0.0, 1.0, 0.0]
    assert history[1]["health/nonfinite/rewards"] == 1.0 and "actor/pg_loss" not in history[1]
    assert [m["actor/lr"] for m in history] == pytest.approx([1e-2, 1e-2 * 2 / 3, 1e-2 / 3])  # the schedule moved on
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    (event,) = rows[1]["health/events"]
    assert (event["watch"], event["action"]) == ("nonfinite", "skip") and "non-finite rewards" in event["message"]
    assert [e.step for e in trainer.health_events] == [1]
    assert saved(tmp_path / "run") == ["step-000000", "step-000002"]  # the skipped step is not checkpointed


def test_non_finite_losses_in_a_row_stop_the_run_and_resume_continues_from_the_last_good_checkpoint(
        policy_dir, born, tmp_path, monkeypatch):
    cfg = config(policy_dir, born, tmp_path, "trainer.total_steps=5", "curriculum.steps=5",
                 "trainer.keep_checkpoints=5", "health.max_bad_steps=2")
    poisoned = {"on": False}
    clip_loss = algorithms.ppo_clip_loss

    def nan_loss(*args, **kwargs):
        pg, stats = clip_loss(*args, **kwargs)
        return (pg * float("nan") if poisoned["on"] else pg), stats

    monkeypatch.setattr(algorithms, "ppo_clip_loss", nan_loss)
    trainer = Trainer(cfg, reward_fn=format_reward)
    weights = {}

    def hook(step, phase):
        poisoned["on"] = step in (2, 3)
        weights[step, phase] = flat(trainer.policy)

    around_steps(trainer, hook)
    with pytest.raises(HealthStop, match=r"training stopped at step 3 by the health watch: non-finite loss: update "
                                         r"skipped \(2 such steps in a row, health.max_bad_steps=2\); the latest "
                                         r"checkpoint is .*step-000001"):
        trainer.train()
    trainer.close()
    run = tmp_path / "run"
    assert saved(run) == ["step-000000", "step-000001"] and not (run / "final").exists()
    good = saved_weights(run / "checkpoints" / "step-000001")
    assert torch.equal(weights[1, "after"], good) and torch.equal(weights[3, "after"], good)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert [e["action"] for r in rows[2:] for e in r["health/events"]] == ["skip", "stop"]

    poisoned["on"] = False  # the cause is fixed
    resumed = Trainer(cfg, resume=True, reward_fn=format_reward)
    assert resumed.start_step == 2 and torch.equal(flat(resumed.policy), good)
    history = resumed.train()
    resumed.close()
    assert [m["health/skipped_update"] for m in history] == [0.0, 0.0, 0.0]
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2, 3, 4]
    assert (run / "final").is_dir()


def test_a_collapsing_reward_rolls_back_to_the_checkpoint_before_it_with_a_lower_learning_rate(
        policy_dir, born, tmp_path):
    """Rewards 1 (+ 0.1 for the right format) at steps 0-3, 0 at 4-5, 1 again from 6. With a 2-step window and a
    0.3 drop, the average is below its best (>= 1) at step 4 (<= 0.6, window 3-4) and 5 (<= 0.1): the watch fires at
    step 5 and the newest checkpoint that sampled none of steps 3-5 is step 1's."""
    base = [1, 1, 1, 1, 0, 0, 1, 1]
    cfg = config(policy_dir, born, tmp_path, "trainer.total_steps=8", "curriculum.steps=8",
                 "trainer.keep_checkpoints=10", "health.action=rollback", "health.window=2",
                 "health.reward_drop=0.3", "health.lr_factor=0.5", "health.max_rollbacks=1", *COLLAPSE_WATCHES_OFF)
    now = {}

    def reward(tr):
        s = format_reward(tr)
        return dataclasses.replace(s, reward=base[now["step"]] + 0.1 * s.reward)

    trainer = Trainer(cfg, reward_fn=reward)
    weights, opt = {}, {}

    def hook(step, phase):
        now["step"] = step
        weights[step, phase] = flat(trainer.policy)
        opt[step, phase] = copy.deepcopy(trainer.optimizer.state_dict()["state"])

    around_steps(trainer, hook)
    history = trainer.train()
    trainer.close()
    ckpt = tmp_path / "run" / "checkpoints" / "step-000001"
    assert torch.equal(weights[6, "before"], saved_weights(ckpt))  # what the rollback left, bit for bit
    assert not torch.equal(weights[5, "after"], weights[6, "before"])
    assert same_tensors(opt[6, "before"], torch.load(ckpt / "state.pt", weights_only=False)["optimizer"]["state"])
    assert [m["actor/lr"] for m in history] == pytest.approx([1e-2] * 6 + [5e-3] * 2)
    (event,) = trainer.health_events
    assert (event.step, event.watch, event.action, event.since) == (5, "reward_drop", "rollback", 3)
    assert "rolled back to step-000001" in event.message
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "health/events" in r] == [5]
