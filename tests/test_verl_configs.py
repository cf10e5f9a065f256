"""configs/verl against veRL itself (marker ``verl``): every veRL config composes with veRL's own Hydra
defaults and sets only keys that veRL's full trainer config has; our side of each run loads as ours.
Run with ``make test-verl`` (see test_verl_plugin.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.verl
pytest.importorskip("verl")

import yaml  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from zerosearch_rl.config import load_config  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "verl"


def is_trainer_config(path: Path) -> bool:
    """A veRL trainer config of ours: a mapping with a Hydra defaults list (not _verl_base, not a list)."""
    data = yaml.safe_load(path.read_text())
    return not path.stem.startswith("_") and isinstance(data, dict) and "defaults" in data


TRAINER_CONFIGS = sorted(p for p in CONFIGS.glob("*.yaml") if is_trainer_config(p))
OUR_SIDE = {"smoke_qwen05b_1gpu": "zerosearch_smoke.yaml"}  # the others run with zerosearch_sim14b.yaml


def leaves(tree: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        out.extend(leaves(value, path + ".") if isinstance(value, dict) and value else [path])
    return out


def test_there_are_grpo_ppo_reinforce_and_multinode_configs():
    assert {p.stem for p in TRAINER_CONFIGS} >= {"grpo_qwen3b_sim14b_1node", "ppo_qwen3b_sim14b_1node",
                                                 "reinforce_qwen3b_sim14b_1node", "grpo_qwen3b_sim14b_multinode",
                                                 "smoke_qwen05b_1gpu"}


@pytest.mark.parametrize("path", TRAINER_CONFIGS, ids=lambda p: p.stem)
def test_trainer_config_composes_and_uses_only_real_veRL_keys(path):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        composed = compose(config_name=path.stem)
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        base = OmegaConf.to_container(compose(config_name="_verl_base"), resolve=False)
    ours = {k: v for k, v in yaml.safe_load(path.read_text()).items() if k not in ("hydra", "defaults")}
    unknown = []
    for key in leaves(ours):
        node = base
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                unknown.append(key)
                break
            node = node[part]
    assert unknown == [], f"{path.name}: keys veRL does not have: {unknown}"
    assert OmegaConf.select(composed, "actor_rollout_ref.rollout.agent.default_agent_loop") == "zerosearch_agent"
    assert composed.algorithm.adv_estimator in ("grpo", "gae", "reinforce_plus_plus_baseline")
    cfg = load_config(CONFIGS / OUR_SIDE.get(path.stem, "zerosearch_sim14b.yaml"))
    assert cfg.rollout.max_response_tokens <= composed.data.max_response_length
    assert cfg.rollout.max_prompt_tokens <= composed.data.max_prompt_length
