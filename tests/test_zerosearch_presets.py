"""configs/zerosearch/*.yaml carry ZeroSearch's train_*.sh values, and docs/reproducing.md lists every parameter.

The expected values are facts read from Alibaba-NLP/ZeroSearch's train_grpo.sh, train_ppo.sh, train_reinforce.sh,
its README's command line (MAX_TURNS 5, TOPK 5, START_THRESHOLD 0, END_THRESHOLD 0.5) and its fork's defaults
(verl/trainer/config/ppo_trainer.yaml, the AdamW of fsdp_workers.py, GenerationConfig of llm_agent/generation.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zerosearch_rl.config import load_config

PRESETS = Path("configs/zerosearch")

# Every `key=value` of the three scripts (facts), the actor_rollout_ref prefix kept.
SCRIPT_KEYS = """
actor_rollout_ref.actor.fsdp_config.grad_offload actor_rollout_ref.actor.fsdp_config.optimizer_offload
actor_rollout_ref.actor.fsdp_config.param_offload actor_rollout_ref.actor.kl_loss_coef
actor_rollout_ref.actor.kl_loss_type actor_rollout_ref.actor.optim.lr
actor_rollout_ref.actor.optim.lr_warmup_steps_ratio
actor_rollout_ref.actor.ppo_micro_batch_size actor_rollout_ref.actor.ppo_mini_batch_size
actor_rollout_ref.actor.state_masking actor_rollout_ref.actor.use_kl_loss
actor_rollout_ref.model.enable_gradient_checkpointing actor_rollout_ref.model.path
actor_rollout_ref.model.use_remove_padding actor_rollout_ref.ref.fsdp_config.param_offload
actor_rollout_ref.ref.log_prob_micro_batch_size actor_rollout_ref.rollout.gpu_memory_utilization
actor_rollout_ref.rollout.log_prob_micro_batch_size actor_rollout_ref.rollout.n_agent actor_rollout_ref.rollout.name
actor_rollout_ref.rollout.temperature actor_rollout_ref.rollout.tensor_model_parallel_size algorithm.adv_estimator
algorithm.kl_ctrl.kl_coef algorithm.no_think_rl critic.model.enable_gradient_checkpointing
critic.model.fsdp_config.grad_offload critic.model.fsdp_config.optimizer_offload critic.model.fsdp_config.param_offload
critic.model.path critic.model.use_remove_padding critic.optim.lr critic.optim.lr_warmup_steps_ratio
critic.ppo_micro_batch_size data.max_obs_length data.max_prompt_length data.max_response_length data.max_start_length
data.shuffle_train_dataloader data.train_batch_size data.train_data_num data.train_files data.val_batch_size
data.val_data_num data.val_files retriever.end_threshold retriever.llm_ip retriever.search_engine retriever.search_mode
retriever.simulate_llm retriever.start_threshold retriever.topk trainer.critic_warmup trainer.default_hdfs_dir
trainer.default_local_dir trainer.do_search trainer.experiment_name trainer.logger trainer.max_turns
trainer.n_gpus_per_node trainer.nnodes trainer.project_name trainer.reward_function trainer.save_freq trainer.test_freq
trainer.total_epochs trainer.total_training_steps trainer.val_before_train trainer.val_only
""".split()

# (script value, our key, our value), the same in all three scripts
COMMON = [
    ("data.train_batch_size=64", "trainer.batch_size", 64),
    ("data.max_response_length=500", "rollout.max_new_tokens", 500),
    ("data.max_start_length=2048", "rollout.max_prompt_tokens", 2048),
    ("data.max_obs_length=2048", "rollout.max_obs_tokens", 2048),
    ("data.shuffle_train_dataloader=True", "data.shuffle", True),
    ("actor_rollout_ref.model.enable_gradient_checkpointing=true", "model.gradient_checkpointing", True),
    ("actor_rollout_ref.actor.optim.lr=1e-6", "trainer.lr", 1e-6),
    ("actor_rollout_ref.rollout.n_agent=5", "rollout.n_samples", 5),
    ("actor_rollout_ref.rollout.temperature=1", "rollout.temperature", 1.0),
    ("rollout.top_p: 0.95 (fork default)", "rollout.top_p", 0.95),
    ("actor.entropy_coeff: 0.001 (fork default)", "algorithm.entropy_coef", 0.001),
    ("actor.clip_ratio: 0.2 (fork default)", "algorithm.clip_ratio_low", 0.2),
    ("actor.clip_ratio: 0.2 (fork default)", "algorithm.clip_ratio_high", 0.2),
    ("actor.grad_clip: 1.0 (fork default)", "trainer.max_grad_norm", 1.0),
    ("actor.ppo_epochs: 1 (fork default)", "trainer.ppo_epochs", 1),
    ("AdamW weight_decay 1e-2 (fork default)", "trainer.weight_decay", 0.01),
    ("warmup_style: constant (fork default)", "trainer.lr_schedule", "constant"),
    ("trainer.save_freq=50", "trainer.save_every", 50),
    ("trainer.reward_function=f1", "trainer.reward_metric", "f1"),
    ("TOTAL_STEPS 203", "trainer.total_steps", 203),
    ("MAX_TURNS 5 (turns that may search, then a final answer)", "rollout.max_turns", 5),
    ("MAX_TURNS: k searches and a final turn", "rollout.final_answer_turn", True),
    ("TOPK 5", "search.topk", 5),
    ("START_THRESHOLD 0", "curriculum.start", 0.0),
    ("END_THRESHOLD 0.5", "curriculum.end", 0.5),
    ("dynamic_threshold exp_base 4", "curriculum.base", 4.0),
    ("dynamic_threshold: exponential", "curriculum.schedule", "exponential"),
    ("SEARCH_MODE simulate_sft", "search.backend", "simulate_sft"),
    ("ask_llm: http://{ip}:6001/v1, IP localhost", "simulator.base_urls", ("http://localhost:6001/v1",)),
    ("ask_llm max_tokens=600", "simulator.max_new_tokens", 600),
    ("GenerationConfig temperature 0.8", "simulator.temperature", 0.8),
    ("ask_llm: no top_p", "simulator.top_p", None),
    ("ask_llm: [{'role': 'system', 'content': ''}, {'role': 'user', ...}]", "simulator.system_message", ""),
    ("search_simulate_prompt's few-shot prompts", "simulator.prompt", "zerosearch"),
    ("one ask_llm call per search (sampling at 0.8: auto shares none)", "simulator.deduplicate", "auto"),
    ("RLHFDataset: the row's prompt messages", "model.prompt_template", "data"),
    ("RLHFDataset: chat template when the tokenizer has one", "model.prompt_style", "auto"),
    ("execute_predictions' observations", "rollout.observation_format", "zerosearch"),
]
PER_SCRIPT = {
    "grpo": [("algorithm.adv_estimator=grpo", "algorithm.advantage", "grpo"),
             ("actor.optim.lr_warmup_steps_ratio=0.95", "trainer.warmup_ratio", 0.95),
             ("actor.use_kl_loss=true", "algorithm.kl_in_reward", False),
             ("actor.kl_loss_coef=0.001", "algorithm.kl_coef", 0.001),
             ("actor.kl_loss_type=low_var_kl", "algorithm.kl_estimator", "k3")],
    "reinforce": [("algorithm.adv_estimator=reinforce", "algorithm.advantage", "reinforce"),
                  ("compute_reinforce_outcome_advantage: the score itself", "algorithm.reinforce_baseline", False),
                  ("actor.optim.lr_warmup_steps_ratio=0.95", "trainer.warmup_ratio", 0.95),
                  ("actor.use_kl_loss=true", "algorithm.kl_in_reward", False),
                  ("actor.kl_loss_coef=0.001", "algorithm.kl_coef", 0.001),
                  ("actor.kl_loss_type=low_var_kl", "algorithm.kl_estimator", "k3")],
    "ppo": [("algorithm.adv_estimator=gae", "algorithm.advantage", "gae"),
            ("actor.optim.lr_warmup_steps_ratio=0.285", "trainer.warmup_ratio", 0.285),
            ("actor.use_kl_loss: false (fork default)", "algorithm.kl_in_reward", True),
            ("algorithm.kl_ctrl.kl_coef=0.001", "algorithm.kl_coef", 0.001),
            ("algorithm.kl_penalty: kl (fork default)", "algorithm.kl_estimator", "k1"),
            ("critic.optim.lr=1e-5", "algorithm.critic_lr", 1e-5),
            ("critic.optim.lr_warmup_steps_ratio=0.015", "algorithm.critic_warmup_ratio", 0.015),
            ("critic.cliprange_value: 0.5 (fork default)", "algorithm.value_clip", 0.5),
            ("algorithm.gamma: 1.0 (fork default)", "algorithm.gamma", 1.0),
            ("algorithm.lam: 1.0 (fork default)", "algorithm.lam", 1.0),
            ("compute_gae_advantage_return whitens", "algorithm.gae_whiten", True)],
}


def value(cfg, key):
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


@pytest.mark.parametrize("name", sorted(PER_SCRIPT))
def test_each_preset_carries_the_script_s_values(name):
    cfg = load_config(PRESETS / f"{name}.yaml")
    for fact, key, expected in COMMON + PER_SCRIPT[name]:
        assert value(cfg, key) == expected, f"{name}: {key} = {value(cfg, key)!r}, the original's {fact}"


def test_the_whole_step_splits_as_the_original_s_mini_batches_do():
    """320 trajectories; ppo_mini_batch_size 256: the original takes two optimizer steps (256 + 64), ours two equal."""
    for name in PER_SCRIPT:
        cfg = load_config(PRESETS / f"{name}.yaml")
        assert cfg.trainer.batch_size * cfg.rollout.n_samples == 320 and cfg.trainer.mini_batches == 2


def test_the_reproducing_page_lists_every_parameter_of_the_scripts():
    page = Path("docs/reproducing.md").read_text()
    listed = set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", page))
    short = {k.replace("actor_rollout_ref.actor.", "actor.").replace("actor_rollout_ref.rollout.", "rollout.")
             .replace("actor_rollout_ref.ref.", "ref.") for k in SCRIPT_KEYS}
    assert sorted(short - listed) == []


def test_the_released_policy_eval_recipe_uses_the_faithful_mode():
    cfg = load_config(PRESETS / "eval_released.yaml")
    assert (cfg.model.prompt_template, cfg.rollout.observation_format, cfg.rollout.final_answer_turn) == (
        "search_r1", "zerosearch", True)
