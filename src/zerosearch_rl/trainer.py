"""Orchestration only: rollout -> reward -> reference log-probs -> advantages -> update -> log/checkpoint.

The math lives in ``algorithms`` (pure tensor functions), the episodes in ``rollout``, the tensors in
``policy``. Under ``torchrun`` each process rolls out its slice of the step's prompts (whole GRPO
groups stay on one process), token counts are summed over processes so the loss is the token mean
of the whole mini-batch, and DDP averages the gradients.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from zerosearch_rl import algorithms as algo
from zerosearch_rl import distributed as par
from zerosearch_rl.checkpoint import load_policy_weights, load_state, save_checkpoint
from zerosearch_rl.config import (
    Config,
    ConfigError,
    TrainerConfig,
    config_to_dict,
    save_config,
    with_overrides,
)
from zerosearch_rl.console import progress
from zerosearch_rl.cost import RunCost, run_cost, write_summary
from zerosearch_rl.curriculum import unit_draw
from zerosearch_rl.data import PromptSampler, load_examples
from zerosearch_rl.generation.base import TokenGenerator
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.generation.transformers import HFGenerator
from zerosearch_rl.health import NONFINITE, SKIPPED, HealthEvent, HealthStop, HealthWatch
from zerosearch_rl.lr_schedule import lr_multiplier
from zerosearch_rl.policy import StepBatch, TokenBatch, frozen_copy, load_policy, token_logprobs, value_model_like
from zerosearch_rl.precision import autocast
from zerosearch_rl.preflight import require_batches
from zerosearch_rl.protocol import STOP_STRINGS
from zerosearch_rl.records import Trajectory
from zerosearch_rl.reward import RewardScores, score_trajectory
from zerosearch_rl.rollout import Rollout
from zerosearch_rl.run_folder import (
    Interrupted,
    checkpoint_step,
    interrupted_message,
    list_checkpoints,
    prepare_run,
    resume_mismatch,
)
from zerosearch_rl.search import build_backend
from zerosearch_rl.tracking import MetricsLogger


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _finite(value: Tensor | float | None) -> bool:
    if value is None:
        return True
    if isinstance(value, Tensor):
        return bool(torch.isfinite(value).all())
    return math.isfinite(value)


def first_nonfinite(named: list[tuple[str, Tensor | float | None]]) -> str | None:
    """The name of the first value that is non-finite on any process (None when all are finite): one collective,
    so every process takes the same decision."""
    local = torch.tensor([0.0 if _finite(v) else 1.0 for _, v in named], dtype=torch.float64)
    flags = par.all_reduce(local).tolist()
    return next((name for (name, _), flag in zip(named, flags, strict=True) if flag), None)


def _stat_key(name: str) -> str:
    """A micro-step statistic's metric name."""
    return "critic/value_loss" if name == "value_loss" else f"actor/{name}"


def step_means(per_trajectory: dict[str, list[float]]) -> dict[str, float]:
    """Each metric's mean over the whole step's trajectories, on every process (one collective for all)."""
    keys = sorted(per_trajectory)
    local = torch.tensor([sum(per_trajectory[k]) for k in keys] + [len(per_trajectory[keys[0]]) if keys else 0],
                         dtype=torch.float64)
    sums = par.all_reduce(local).tolist()
    count = sums[-1]
    return {k: v / count if count else 0.0 for k, v in zip(keys, sums, strict=False)}


RewardFn = Callable[[Trajectory], RewardScores]


def configured_reward(train_cfg: TrainerConfig) -> RewardFn:
    """The reward ``trainer`` configures: ``reward_metric`` (F1 per ``f1_yes_no_rule``) on the policy's own text."""
    return lambda traj: score_trajectory(traj, train_cfg.reward_metric, train_cfg.f1_yes_no_rule)


class Trainer:
    """One training run of ``cfg``; ``resume=True`` continues from the run folder's newest intact checkpoint,
    ``overwrite=True`` replaces a run found there (without either, a folder holding a run is refused:
    ``run_folder.prepare_run``).

    ``reward_fn`` replaces the configured reward (``trainer.reward_metric`` on the policy's own text) with
    any function of the trajectory; it must still score the response only (``Trajectory.policy_text``).
    ``health_events`` collects what the health watch (``cfg.health``) reported during ``train``.
    """

    def __init__(self, cfg: Config, resume: bool = False, reward_fn: RewardFn | None = None,
                 overwrite: bool = False) -> None:
        self.cfg, train_cfg = cfg, cfg.trainer
        self.reward_fn = reward_fn or configured_reward(train_cfg)
        self.rank, self.world, self.strategy = par.init_distributed(train_cfg.strategy)
        require_batches(cfg, self.world)  # the pre-flight's batch arithmetic, for the real process count
        if self.strategy == "fsdp" and cfg.model.lora_rank:
            raise ConfigError("trainer.strategy=fsdp needs model.lora_rank=0 (LoRA already keeps the trained "
                              "state small: use ddp with LoRA)")
        self.run_dir = Path(train_cfg.output_dir)
        resume_from = prepare_run(cfg, resume, overwrite, writer=self.rank == 0)  # before anything loads or writes
        if dist.is_initialized():
            dist.barrier()  # every process sees the folder as rank 0 left it
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own bar is the one to watch
        torch.manual_seed(train_cfg.seed)
        examples = load_examples(cfg.data.train_files, cfg.data.sources, cfg.data.limit)
        self.policy, self.tokenizer = load_policy(cfg.model, train_cfg.seed)
        self.device = next(self.policy.parameters()).device
        self.ref = frozen_copy(self.policy) if cfg.algorithm.kl_coef > 0 and cfg.model.lora_rank == 0 else None
        self.value = value_model_like(self.policy) if cfg.algorithm.advantage == "gae" else None
        state = self._resume_weights(resume_from) if resume_from is not None else None
        # Under FSDP sampling runs on an unsharded copy that follows the policy (see distributed.py).
        sharded = self.strategy == "fsdp"
        self.gen_model = (frozen_copy(self.policy) if sharded and cfg.rollout.generator == "transformers"
                          else self.policy)
        self.trained = par.wrap(self.policy, self.strategy)
        self.value = par.wrap(self.value, self.strategy) if self.value is not None else None
        self.ref = par.shard(self.ref) if sharded and self.ref is not None else self.ref
        params = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_multiplier(s, train_cfg.total_steps, train_cfg.warmup, train_cfg.lr_schedule,
                                                    train_cfg.min_lr_ratio))
        self.critic_opt = (torch.optim.AdamW(self.value.parameters(), lr=cfg.algorithm.critic_lr)
                           if self.value is not None else None)
        critic_warmup = int(cfg.algorithm.critic_warmup_ratio * train_cfg.total_steps)
        self.critic_scheduler = (torch.optim.lr_scheduler.LambdaLR(
            self.critic_opt, lambda s: lr_multiplier(s, train_cfg.total_steps, critic_warmup))
            if self.critic_opt is not None else None)
        self.search = build_backend(cfg)
        self.generator = self._generator()
        self.rollout = Rollout(self.tokenizer, self.search, cfg.rollout, train_cfg.seed, cfg.model.prompt_style,
                               cfg.model.prompt_template)
        self.schedule = cfg.curriculum.noise_schedule(train_cfg.total_steps)
        self.sampler = PromptSampler(examples, train_cfg.batch_size, train_cfg.seed, cfg.data.shuffle, self.rank,
                                     self.world)
        self.estimator = algo.get_advantage_estimator(cfg.algorithm.advantage)
        self.eval_examples = (load_examples(cfg.data.eval_files, cfg.data.sources, cfg.eval.limit)
                              if train_cfg.eval_every else [])
        if train_cfg.eval_every and not self.eval_examples:
            raise ConfigError("trainer.eval_every > 0 needs data.eval_files with at least one example")
        self.eval_search = (build_backend(with_overrides(cfg, train_cfg.eval_search))
                            if train_cfg.eval_every and train_cfg.eval_search else self.search)
        self.eval_rollout = self.rollout if self.eval_search is self.search else Rollout(
            self.tokenizer, self.eval_search, cfg.rollout, train_cfg.seed, cfg.model.prompt_style,
            cfg.model.prompt_template)
        self.start_step = 0
        self.watch = HealthWatch(cfg.health)
        self.health_events: list[HealthEvent] = []
        self.rollbacks, self.lr_scale = 0, 1.0
        self.cost: RunCost | None = None  # set by train: the searches it made and their cost
        if state is not None:
            self._restore_state(state)
        self._apply_lr()
        self._sync_generator()
        self.logger = (MetricsLogger(self.run_dir, self.start_step - 1 if state is not None else None,
                                     train_cfg.tensorboard, train_cfg.wandb_project, config_to_dict(cfg))
                       if self.rank == 0 else None)
        if self.rank == 0:
            save_config(cfg, self.run_dir / "config.yaml")

    # ---------------------------------------------------------------- generation

    def _generator(self) -> TokenGenerator:
        """The policy's sampler: in-process transformers, or a vLLM engine that receives the policy's
        weights after every update (rollouts are never stale; the log-prob ratio is logged)."""
        kind = self.cfg.rollout.generator
        if kind == "transformers":
            return HFGenerator(self.gen_model, self.tokenizer, STOP_STRINGS, self.cfg.model.autocast)
        if kind == "vllm":
            if self.cfg.model.lora_rank:
                raise ConfigError("rollout.generator=vllm needs model.lora_rank=0 (adapters would have to be "
                                  "merged before every weight sync)")
            from zerosearch_rl.generation.vllm import VLLMGenerator

            start = self.run_dir / "vllm_start" / f"rank{self.rank}"  # the engine's architecture and tokenizer
            weights = par.full_state_dict(self.policy)
            self.policy.save_pretrained(start, state_dict=weights)
            self.tokenizer.save_pretrained(start)
            return VLLMGenerator(str(start), STOP_STRINGS)
        raise ConfigError(f"rollout.generator={kind} cannot train: it cannot receive the policy's weights after "
                          f"an update; use transformers or vllm")

    def _sync_generator(self) -> float:
        """Hand the policy's current weights to a generator that holds its own copy (vLLM, or the unsharded
        sampling copy under FSDP); returns the seconds it took."""
        sync = getattr(self.generator, "sync_weights", None)
        if sync is None and self.gen_model is self.policy:
            return 0.0
        start = time.perf_counter()
        weights = par.full_state_dict(self.policy)
        if self.gen_model is not self.policy:
            self.gen_model.load_state_dict(weights)
        else:
            sync(weights)
        return time.perf_counter() - start

    # ---------------------------------------------------------------- checkpoints

    def _state(self) -> dict[str, Any]:
        """Optimizer, schedule, data order and critic, whole (a collective under FSDP: every process calls)."""
        state: dict[str, Any] = {"optimizer": par.optimizer_state(self.policy, self.optimizer),
                                 "scheduler": self.scheduler.state_dict(), "sampler": self.sampler.state(),
                                 "health": {"watch": self.watch.state(), "rollbacks": self.rollbacks,
                                            "lr_scale": self.lr_scale}}
        if self.value is not None and self.critic_opt is not None:
            critic = getattr(self.value, "module", self.value)
            state["value"] = par.full_state_dict(critic)
            state["critic_opt"] = par.optimizer_state(critic, self.critic_opt)
            state["critic_scheduler"] = self.critic_scheduler.state_dict() if self.critic_scheduler else None
        return state

    def _restore_weights(self, path: Path) -> dict[str, Any]:
        """Load a checkpoint's weights into the models (wrapped or not yet); returns the rest of it."""
        state = load_state(path)
        load_policy_weights(self.policy, path)
        if self.value is not None:
            par.load_full_state_dict(getattr(self.value, "module", self.value), state["value"])
        return state

    def _resume_weights(self, path: Path) -> dict[str, Any]:
        """``_restore_weights`` for a resume: a checkpoint that does not fit the configured model is an error that
        says what differs between its config and this one, not the loader's dump."""
        try:
            return self._restore_weights(path)
        except (RuntimeError, KeyError, ValueError, OSError) as exc:
            raise resume_mismatch(path, self.cfg, exc) from exc

    def _restore_optimizers(self, state: dict[str, Any]) -> None:
        par.load_optimizer_state(self.policy, self.optimizer, state["optimizer"])
        if self.value is not None and self.critic_opt is not None:
            par.load_optimizer_state(getattr(self.value, "module", self.value), self.critic_opt, state["critic_opt"])

    def _restore_state(self, state: dict[str, Any]) -> None:
        self._restore_optimizers(state)
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state(state["sampler"])
        if self.critic_scheduler is not None and state.get("critic_scheduler"):
            self.critic_scheduler.load_state_dict(state["critic_scheduler"])
        if "health" in state:  # checkpoints written before the health watch have none
            self.watch.load_state(state["health"]["watch"])
            self.rollbacks, self.lr_scale = state["health"]["rollbacks"], state["health"]["lr_scale"]
        self.start_step = int(state["step"]) + 1

    def _apply_lr(self) -> None:
        """The policy's base learning rate is ``trainer.lr`` times the rollbacks' factor (a resumed run takes a new
        ``trainer.lr`` from its config); the current step's rate follows it, the schedule keeps its position."""
        s = self.scheduler
        s.base_lrs = [self.cfg.trainer.lr * self.lr_scale for _ in s.base_lrs]
        for group, base, factor in zip(self.optimizer.param_groups, s.base_lrs, s.lr_lambdas, strict=True):
            group["lr"] = base * factor(s.last_epoch)

    def save(self, step: int) -> None:
        weights = par.full_state_dict(self.policy, rank0_only=True) if self.strategy == "fsdp" else None
        state = self._state()
        if self.rank == 0:
            save_checkpoint(self.run_dir, step, self.policy, self.tokenizer, state, self.cfg,
                            self.cfg.trainer.keep_checkpoints, weights)
        if dist.is_initialized():
            dist.barrier()

    # ---------------------------------------------------------------- one step

    @contextmanager
    def _reference(self) -> Iterator[Any]:
        """The frozen reference: a copy, or the policy with its LoRA adapters switched off."""
        if self.ref is not None:
            yield self.ref
        else:
            with self.policy.disable_adapter():
                yield self.policy

    def _forward_no_grad(self, fn: Callable[[TokenBatch], Tensor], batch: TokenBatch) -> Tensor:
        """``fn`` (per-target values: log-probs or state values) over the whole batch, micro-batch by
        micro-batch, without gradients."""
        out = torch.zeros_like(batch.loss_mask)
        size = self.cfg.trainer.micro_batch_size
        with torch.no_grad():
            for start in range(0, batch.size, size):
                idx = list(range(start, min(start + size, batch.size)))
                values = fn(batch.select(idx))
                out[idx, : values.shape[1]] = values
        return out

    def _logprobs_of(self, model: Any) -> Callable[[TokenBatch], Tensor]:
        def logprobs(b: TokenBatch) -> Tensor:
            with autocast(self.cfg.model.autocast, self.device):
                return token_logprobs(model, b, self.cfg.rollout.temperature)[0]

        return logprobs

    def _rewards(self, trajectories: list[Trajectory]) -> dict[str, list[float]]:
        scores = [self.reward_fn(traj) for traj in trajectories]
        for traj, s in zip(trajectories, scores, strict=True):
            traj.reward = s.reward
        return {"mean": [s.reward for s in scores], "exact_match": [s.exact_match for s in scores],
                "cover_em": [s.cover_em for s in scores], "f1": [s.f1 for s in scores],
                "format_valid": [float(s.format_valid) for s in scores],
                "answered": [float(s.answered) for s in scores]}

    def step(self, step: int) -> dict[str, float]:
        cfg, t0 = self.cfg, time.perf_counter()
        noise_p = self.schedule.probability(step)
        self.policy.eval()
        sampling = Sampling(temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p)
        with torch.no_grad():
            result = self.rollout.run(self.generator, self.sampler.next_batch(), cfg.rollout.n_samples, step,
                                      noise_p, sampling)
        trajs = result.trajectories
        rewards = self._rewards(trajs)
        batch = TokenBatch.from_trajectories(trajs, self.tokenizer.pad_token_id, self.device)
        t1 = time.perf_counter()
        metrics: dict[str, float] = {}
        old = batch.behaviour_logprobs
        if cfg.algorithm.old_logprobs == "recompute":
            old = self._forward_no_grad(self._logprobs_of(self.policy), batch)
            ratio = torch.exp((old - batch.behaviour_logprobs).clamp(-20, 20))[batch.loss_mask.bool()]
            metrics.update({"actor/behaviour_ratio_mean": float(ratio.mean()),
                            "actor/behaviour_ratio_max": float(ratio.max())})
        alg = cfg.algorithm
        ref = token_rewards = None
        if alg.kl_coef > 0:
            with self._reference() as model:
                ref = self._forward_no_grad(self._logprobs_of(model), batch)
        if ref is not None and alg.kl_in_reward:  # a reward penalty instead of a loss term (veRL's apply_kl_penalty)
            token_rewards = -alg.kl_coef * algo.kl_penalty(old, ref, alg.kl_estimator) * batch.loss_mask
            rewards["kl_penalty"] = token_rewards.sum(-1).tolist()
            ref = None
        values = self._forward_no_grad(self.value, batch) if self.value is not None else None
        adv, returns = self.estimator(
            algo.AdvantageBatch(torch.tensor(rewards["mean"], device=self.device), batch.loss_mask,
                                [traj.group_id for traj in trajs], values, reduce_sum=par.all_reduce,
                                token_rewards=token_rewards),
            algo.AdvantageOptions.from_config(alg))
        t2 = time.perf_counter()
        lr = float(self.optimizer.param_groups[0]["lr"])  # this step's (the schedulers move on after the update)
        if self.critic_scheduler is not None:
            metrics["critic/lr"] = float(self.critic_scheduler.get_last_lr()[0])
        mask = batch.loss_mask.bool()  # only the policy's tokens count; the values elsewhere are never used
        bad = first_nonfinite([("rewards", torch.tensor(rewards["mean"])), ("old_logprobs", old[mask]),
                               ("ref_logprobs", None if ref is None else ref[mask]), ("advantages", adv[mask]),
                               ("returns", returns[mask])])
        if bad is None:
            update, bad = self._update(StepBatch(batch, old, adv, returns, ref, values), step)
            metrics.update(update)
        # A skipped update still spends its step: the schedules stay in step with the curriculum and the data.
        self.scheduler.step()
        if self.critic_scheduler is not None:
            self.critic_scheduler.step()
        metrics[SKIPPED] = float(bad is not None)
        if bad is not None:
            metrics[NONFINITE + bad] = 1.0
        metrics["time/weight_sync"] = self._sync_generator()
        t3 = time.perf_counter()
        per_trajectory = {f"reward/{k}": v for k, v in rewards.items()}
        for key in ("searches", "noisy_searches", "turns", "invalid_actions", "skipped_searches", "failed_searches",
                    "truncated_observations", "truncated_response", "policy_tokens", "observation_tokens"):
            per_trajectory[f"rollout/{key}"] = [traj.metrics[key] for traj in trajs]
        means = step_means(per_trajectory)  # over every process's trajectories
        noisy = means.pop("rollout/noisy_searches")
        metrics.update(means)
        metrics.update({
            "noise/probability": noise_p,
            "noise/served_share": noisy / means["rollout/searches"] if means["rollout/searches"] else 0.0,
            "actor/lr": lr,
            "time/generate": result.generate_s, "time/search": result.search_s, "time/reference": t2 - t1,
            "time/update": t3 - t2, "time/step": t3 - t0,
        })
        return metrics

    def _update(self, data: StepBatch, step: int) -> tuple[dict[str, float], str | None]:
        """``ppo_epochs`` passes; each splits the step's trajectories into ``mini_batches`` optimizer steps
        of gradient-accumulated micro-batches. Returns the metrics, and the name of the first non-finite value
        (loss, grad_norm, critic_grad_norm) if one stopped the update: that optimizer step and the rest of this
        step's are not taken (the ones before it stay; undoing them would need a copy of the weights and
        optimizer state)."""
        cfg = self.cfg.trainer
        self.trained.train()
        sums: dict[str, float] = {}
        norms: list[float] = []
        ratio_max, updates, n = 0.0, 0, data.tokens.size
        mini_size = n // cfg.mini_batches  # equal on every process (preflight.batch_checks)
        for epoch in range(cfg.ppo_epochs):
            seed = int(unit_draw("minibatch", cfg.seed, step, epoch) * 2**31)
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
            for first in range(0, n, mini_size):
                mini = order[first : first + mini_size]
                tokens = par.sum_over_ranks(float(data.tokens.loss_mask[mini].sum()))
                micro = [mini[i : i + cfg.micro_batch_size] for i in range(0, len(mini), cfg.micro_batch_size)]
                for k, rows in enumerate(micro):
                    stats = self._micro_step(data.select(rows), tokens, sync=k == len(micro) - 1)
                    ratio_max = max(ratio_max, stats.pop("ratio_max"))
                    for key, v in stats.items():
                        sums[key] = sums.get(key, 0.0) + v
                norm = float(torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm))
                critic_norm = (float(torch.nn.utils.clip_grad_norm_(self.value.parameters(), cfg.max_grad_norm))
                               if self.critic_opt is not None and self.value is not None else None)
                # the sums so far hold every loss term of this mini-batch (those before it were finite)
                bad = first_nonfinite([("loss", sum(sums.values())), ("grad_norm", norm),
                                       ("critic_grad_norm", critic_norm)])
                for opt in (self.optimizer, self.critic_opt):
                    if opt is not None:
                        if bad is None:
                            opt.step()
                        opt.zero_grad(set_to_none=True)
                if bad is not None:
                    return {}, bad
                norms.append(norm)
                updates += 1
        out = {_stat_key(k): par.sum_over_ranks(v) / updates for k, v in sums.items()}
        out["actor/ratio_max"] = par.max_over_ranks(ratio_max)
        out["actor/grad_norm"] = _mean(norms)
        return out, None

    def _micro_step(self, micro: StepBatch, tokens: float, sync: bool) -> dict[str, float]:
        """Forward/backward of one micro-batch. Losses are sums over its tokens divided by the
        mini-batch's token count ``tokens``, so the micro-batches add up to the mini-batch token mean."""
        alg = self.cfg.algorithm
        mask = micro.tokens.loss_mask
        with par.gradient_sync(self.trained, sync):
            with autocast(self.cfg.model.autocast, self.device):
                logp, entropy = token_logprobs(self.trained, micro.tokens, self.cfg.rollout.temperature,
                                               with_entropy=True)
            pg, stats = algo.ppo_clip_loss(logp, micro.old_logprobs, micro.advantages, mask,
                                           clip_ratio_low=alg.clip_ratio_low, clip_ratio_high=alg.clip_ratio_high,
                                           token_count=tokens)
            kl = (algo.token_mean(algo.kl_penalty(logp, micro.ref_logprobs, alg.kl_estimator), mask, tokens)
                  if micro.ref_logprobs is not None else torch.zeros((), device=logp.device))
            ent = algo.token_mean(entropy, mask, tokens) if entropy is not None else torch.zeros(())
            (algo.total_loss(pg, kl, ent, alg.kl_coef, alg.entropy_coef) * self.world).backward()
        share = float(mask.sum()) / tokens if tokens else 0.0  # this micro-batch's weight in token means
        out = {"pg_loss": float(pg.detach()), "kl": float(kl.detach()), "entropy": float(ent.detach()),
               "ratio_max": float(stats["ratio_max"])}
        out.update({k: float(stats[k]) * share for k in ("clip_fraction", "approx_kl", "ratio_mean")})
        if self.value is not None and micro.values is not None:
            with par.gradient_sync(self.value, sync):
                vloss, _ = algo.value_loss(self.value(micro.tokens), micro.values, micro.returns, mask,
                                           clip=alg.value_clip, token_count=tokens)
                (vloss * self.world).backward()
            out["value_loss"] = float(vloss.detach())
        return out

    # ---------------------------------------------------------------- the loop

    def evaluate(self, step: int) -> dict[str, float]:
        """Greedy episodes on the eval questions (noise-free searches, with trainer.eval_search's engine when set);
        rewards averaged over ranks."""
        self.policy.eval()
        mine = self.eval_examples[self.rank :: self.world]
        with torch.no_grad():
            trajs = self.eval_rollout.run(self.generator, mine, 1, step, 0.0, Sampling(temperature=0.0)).trajectories
        rewards = self._rewards(trajs) if trajs else {}
        out = {}
        for key in ("mean", "exact_match", "cover_em", "f1", "format_valid"):
            total = par.sum_over_ranks(sum(rewards.get(key, [])))
            out[f"eval/{key}"] = total / len(self.eval_examples)
        out["eval/searches"] = par.sum_over_ranks(sum(traj.metrics["searches"] for traj in trajs)) / len(
            self.eval_examples)
        return out

    def _check_replicas(self) -> None:
        """Under DDP every process must end with the same weights: compare checksums, write them down.
        (FSDP holds one copy, sharded: there is nothing to compare.)"""
        if self.strategy != "ddp":
            return
        sums = par.replica_sums(self.policy)
        if self.rank == 0:
            (self.run_dir / "replicas.json").write_text(json.dumps(
                {"parameter_sums": sums, "backend": dist.get_backend(), "device": str(self.device)}))
        if len(set(sums)) != 1:
            raise RuntimeError(f"data-parallel replicas diverged: parameter sums per rank {sums}")

    def train(self) -> list[dict[str, float]]:
        """Run the remaining steps with a progress bar; returns this process's metrics per step. Raises
        ``HealthStop`` when the health watch stops the run (its events are in ``health_events`` either way)."""
        train_cfg, history, start = self.cfg.trainer, [], time.perf_counter()
        step = self.start_step
        try:
            with progress("train", train_cfg.total_steps, completed=self.start_step, show=self.rank == 0) as bar:
                for step in range(self.start_step, train_cfg.total_steps):
                    metrics = self.step(step)
                    if train_cfg.eval_every and (step + 1) % train_cfg.eval_every == 0:
                        metrics.update(self.evaluate(step))
                    history.append(metrics)
                    events, stop = self._act(self.watch.observe(step, metrics))
                    self.health_events += events
                    if self.logger is not None:
                        self.logger.log(step, {**metrics, **self.search.metrics()}, [e.record() for e in events])
                        for e in events:
                            bar.print(f"[yellow]health: {e.line()}")
                    if stop is not None:
                        raise HealthStop(stop)
                    bar.advance(info=f"reward {metrics['reward/mean']:.3f}  noise {metrics['noise/probability']:.2f}")
                    last = step + 1 == train_cfg.total_steps
                    # a skipped update is never checkpointed: the latest checkpoint stays the last good state
                    every = train_cfg.save_every
                    if not metrics[SKIPPED] and (last or (every and (step + 1) % every == 0)):
                        self.save(step)
            self._check_replicas()
            self.export(self.run_dir / "final")
            self.cost = self._summarize(history, time.perf_counter() - start)
        except KeyboardInterrupt:  # the metrics written so far are whole lines (each is flushed at once)
            raise Interrupted(interrupted_message(self.run_dir, step)) from None
        finally:
            if self.logger is not None:
                self.logger.close()
        return history

    def _summarize(self, history: list[dict[str, float]], wall_s: float) -> RunCost:
        """This session's searches and their cost (``cost.py``), summed over the processes; rank 0 writes
        ``summary.json`` with them and the last step's reward."""
        engines = [("train", self.search)] + ([("eval", self.eval_search)] if self.eval_search is not self.search
                                              else [])
        cost = run_cost(engines, self.cfg.tracking, wall_s,
                        lambda xs: par.all_reduce(torch.tensor(xs, dtype=torch.float64)).tolist())
        if self.rank == 0:
            last = history[-1] if history else {}
            write_summary(self.run_dir, {"steps": len(history), "total_steps": self.cfg.trainer.total_steps,
                                         **{k: last[k] for k in ("reward/mean", "reward/exact_match") if k in last},
                                         **cost.to_json()})
        return cost

    # ---------------------------------------------------------------- health

    def _act(self, events: list[HealthEvent]) -> tuple[list[HealthEvent], str | None]:
        """Carry out a step's events: a rollback happens here, one per step however many watches ask (each
        rollback event then says where to, or becomes a stop when none is possible). Returns the events as
        carried out and, when one stops the run, the message to stop with."""
        wanted = [e for e in events if e.action == "rollback"]
        if wanted:
            outcome, action = self._rollback(min(e.since for e in wanted))
            events = [dataclasses.replace(e, action=action, message=f"{e.message}; {outcome}")
                      if e.action == "rollback" else e for e in events]
        stop = next((e for e in events if e.action == "stop"), None)
        if stop is None:
            return events, None
        latest = list_checkpoints(self.run_dir)
        where = (f"the latest checkpoint is {latest[-1]} (`zerosearch train --resume` continues from it)" if latest
                 else "no checkpoint was saved")
        return events, (f"training stopped at step {stop.step} by the health watch: {stop.message}; {where}; "
                        f"docs/training-health.md says what to change")

    def _rollback(self, since: int) -> tuple[str, str]:
        """Reload the newest checkpoint whose weights sampled none of the steps from ``since`` on (the policy's
        and critic's weights and optimizers, the watch's state), lower the learning rate, go on. Returns what
        happened and the action it amounts to: rollback, or stop when it was not possible."""
        h = self.cfg.health
        if self.rollbacks >= h.max_rollbacks:
            return f"no rollback left (health.max_rollbacks={h.max_rollbacks})", "stop"
        # the rollout of step s samples with the weights saved at step s - 1
        older = [c for c in list_checkpoints(self.run_dir) if checkpoint_step(c) + 1 < since]
        if not older:
            return (f"no checkpoint from before step {since - 1} to roll back to (trainer.save_every, "
                    f"trainer.keep_checkpoints)"), "stop"
        state = self._restore_weights(older[-1])
        self._restore_optimizers(state)
        if "health" in state:
            self.watch.load_state(state["health"]["watch"])
        self.rollbacks += 1
        self.lr_scale *= h.lr_factor
        self._apply_lr()
        self._sync_generator()
        return (f"rolled back to {older[-1].name} ({self.rollbacks} of {h.max_rollbacks}), learning rate now "
                f"{self.cfg.trainer.lr * self.lr_scale:.3g} x the schedule"), "rollback"

    def export(self, folder: Path) -> Path:
        """The trained policy in Hugging Face format (LoRA adapters merged), loadable by vLLM/sglang.
        Every process calls it (FSDP gathers the shards); rank 0 writes."""
        weights = par.full_state_dict(self.policy, rank0_only=True) if self.strategy == "fsdp" else None
        if self.rank != 0:
            return folder
        model = self.policy
        if hasattr(model, "merge_and_unload"):
            import copy

            model = copy.deepcopy(model).merge_and_unload()
        model.save_pretrained(folder, **({"state_dict": weights} if weights is not None else {}))
        self.tokenizer.save_pretrained(folder)
        return folder

    def close(self) -> None:
        self.search.close()
        if self.eval_search is not self.search:
            self.eval_search.close()
        getattr(self.generator, "close", lambda: None)()
        if dist.is_initialized():
            dist.barrier()  # no process tears gloo down while another still exports (it aborted a rank at exit)
            # Free the DDP wrappers (their reducers hold the process group) while the group is still registered:
            # freed later, the reducer's last reference runs gloo's destructor with the GIL held, which joins a
            # worker thread that needs the GIL to finish the barrier's work (a rank hung at exit).
            self.trained = self.policy
            if self.value is not None:
                self.value = getattr(self.value, "module", self.value)
            gc.collect()
            dist.destroy_process_group()
