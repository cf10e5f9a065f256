from __future__ import annotations

import dataclasses

import pytest

from zerosearch_rl.config import (
    SECTIONS,
    Config,
    ConfigError,
    SearchConfig,
    TrainerConfig,
    config_from_dict,
    describe_fields,
    dump_config,
    load_config,
    save_config,
)


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_follow_zerosearch():
    cfg = load_config()
    assert cfg.simulator.temperature == 0.8 and cfg.simulator.max_new_tokens == 600
    assert cfg.rollout.n_samples == 5 and cfg.rollout.temperature == 1.0 and cfg.rollout.max_new_tokens == 500
    assert cfg.trainer.lr == 1e-6 and cfg.trainer.batch_size == 64 and cfg.trainer.total_steps == 203
    assert cfg.algorithm.kl_coef == 0.001 and cfg.algorithm.kl_estimator == "k3"
    assert cfg.algorithm.clip_ratio_low == 0.2 and cfg.search.topk == 5
    assert (cfg.curriculum.start, cfg.curriculum.end, cfg.curriculum.schedule) == (0.0, 0.5, "exponential")


def test_yaml_then_overrides_in_order(tmp_path):
    path = write(tmp_path, "trainer:\n  lr: 1e-5\n  seed: 3\nsearch:\n  backend: bm25\n")  # 1e-5: a YAML string
    cfg = load_config(path, ["trainer.seed=9", "search.urls=[http://a:1, http://b:2]", "trainer.seed=11"])
    assert cfg.trainer.lr == 1e-5
    assert cfg.trainer.seed == 11  # later overrides win
    assert cfg.search.backend == "bm25"
    assert cfg.search.urls == ("http://a:1", "http://b:2")


def test_override_values_are_typed():
    cfg = load_config(None, ["trainer.lr=3e-4", "data.shuffle=false", "eval.limit=null", "model.policy=123",
                             "search.urls=http://x:1", "search.timeout_s=5"])
    assert cfg.trainer.lr == 3e-4 and isinstance(cfg.trainer.lr, float)
    assert cfg.data.shuffle is False
    assert cfg.eval.limit is None
    assert cfg.model.policy == "123"  # a numeric-looking name stays a string
    assert cfg.search.urls == ("http://x:1",)  # one string is a one-item list
    assert cfg.search.timeout_s == 5.0 and isinstance(cfg.search.timeout_s, float)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["search.topkk=3"], r"unknown key 'search.topkk' \(did you mean 'search.topk'\?\); valid: search.backend"),
        (["trainr.lr=1"], r"unknown key 'trainr.lr' \(did you mean 'trainer'\?\)"),
        (["search.backend=bing"], r"search.backend: 'bing' is not valid; valid: simulate_prompt, simulate_sft"),
        (["trainer.lr=fast"], r"trainer.lr: expected a number, got 'fast'"),
        (["trainer.seed=1.5"], r"trainer.seed: expected an integer"),
        (["data.shuffle=yes please"], r"data.shuffle: expected true or false"),
        (["trainer.batch_size=0"], r"trainer.batch_size must be >= 1, got 0"),
        (["curriculum.end=1.5"], r"curriculum.end must be <= 1.0, got 1.5"),
        (["rollout.top_p=0"], r"rollout.top_p must be > 0.0"),
        (["simulator.top_p=0"], r"simulator.top_p must be > 0.0, got 0.0"),  # null is the default: a set value
        (["simulator.top_p=1.5"], r"simulator.top_p must be <= 1.0, got 1.5"),  # is checked all the same
        (["simulator.top_p=most"], r"simulator.top_p: expected a number, got 'most'"),
        (["simulator.prompt=mine"], r"simulator.prompt: 'mine' is not valid; valid: zerosearch, own"),
        (["eval.methods=[agent, oracle]"], r"eval.methods: 'oracle' is not valid; valid: direct, cot, rag, agent"),
        (["trainer.lr"], r"must look like section.field=value"),
        (["lr=1"], r"must look like section.field=value"),
        (["trainer.lr=[1"], r"not valid YAML"),
        (["search.cache=sqlite"], r"search.cache=sqlite needs search.cache_path"),
        (["search.backend=mixture", "search.mixture_real=simulate_sft"], r"mixture_real must be a real engine"),
        (["curriculum.base=1"], r"curriculum.base must not be 1"),
        (["trainer.lr_schedule=step"], r"trainer.lr_schedule: .step. is not valid; valid: constant, linear, cosine"),
        (["trainer.min_lr_ratio=2"], r"trainer.min_lr_ratio must be <= 1"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "trainer: [1\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="section 'trainer' must be a mapping"):
        load_config(write(tmp_path, "trainer: 5\n"))
    with pytest.raises(ConfigError, match="unknown key 'optimizer'"):
        load_config(write(tmp_path, "optimizer: {lr: 1}\n"))


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == Config()


def test_dump_and_save_round_trip(tmp_path):
    cfg = load_config(None, ["search.backend=remote", "search.urls=[http://h:1]", "eval.methods=[rag, agent]",
                             "curriculum.steps=50", "eval.limit=7"])
    again = load_config(save_config(cfg, tmp_path / "run" / "config.yaml"))
    assert again == cfg
    assert "backend: remote" in dump_config(cfg)


def test_configs_are_frozen_and_validate_on_direct_construction():
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.trainer.lr = 1.0  # type: ignore[misc]
    with pytest.raises(ConfigError, match=r"search\.topk must be >= 1"):
        SearchConfig(topk=0)
    with pytest.raises(ConfigError, match=r"trainer\.ppo_epochs must be >= 1"):
        TrainerConfig(ppo_epochs=0)


def test_curriculum_steps_default_to_total_steps():
    cfg = load_config(None, ["trainer.total_steps=10"])
    schedule = cfg.curriculum.noise_schedule(cfg.trainer.total_steps)
    assert schedule.steps == 10 and schedule.probability(10) == 0.5
    assert load_config(None, ["curriculum.steps=4"]).curriculum.noise_schedule(10).steps == 4


def test_every_field_is_documented():
    rows = describe_fields()
    assert len(rows) == sum(len(dataclasses.fields(cls)) for cls in SECTIONS.values())
    for key, _tp, _default, help_text in rows:
        assert len(help_text) > 10, key


def test_config_from_dict_accepts_missing_sections():
    cfg = config_from_dict({"rollout": {"max_turns": 2}})
    assert cfg.rollout.max_turns == 2 and cfg.trainer == TrainerConfig()
