"""The real plugin inside veRL (marker ``verl``; needs veRL, CPU is enough). Run it in a veRL venv::

    python3 -m venv .venv-verl && .venv-verl/bin/pip install torch==2.13.0 && \\
        .venv-verl/bin/pip install -e ".[verl,dev]"
    PYTHONPATH=tests .venv-verl/bin/python -m pytest -m verl tests/test_verl_plugin.py -q

veRL builds our agent loop exactly as ``AgentLoopWorker._run_agent_loop`` does (``hydra.utils.instantiate``
of the registry entry), runs it against a fake server manager, and pads the result with veRL's own
``AgentLoopWorker._agent_loop_postprocess``: the mask veRL trains on is 0 exactly on observation tokens.
"""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.verl
verl = pytest.importorskip("verl")

import hydra  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from verl.experimental.agent_loop.agent_loop import (  # noqa: E402
    AgentLoopWorker,
    DictConfigWrap,
    ToolListWrap,
    _agent_loop_registry,
)
from verl.utils.dataset.rl_dataset import RLHFDataset  # noqa: E402

import zerosearch_rl.integrations.verl.agent_loop as plugin  # noqa: E402
from test_verl_seam import TOK, VERL_PARAMS, FakeServer, row, search_then_answer  # noqa: E402

PROMPT_LEN, RESPONSE_LEN = 2048, 2048


def trainer_config():
    return OmegaConf.create({
        "actor_rollout_ref": {"rollout": {"name": "vllm", "prompt_length": PROMPT_LEN,
                                          "response_length": RESPONSE_LEN, "calculate_log_probs": True, "n": 5}},
        "data": {"apply_chat_template_kwargs": {}},
    })


def build_loop(server):
    config = trainer_config()
    entry = {**_agent_loop_registry["zerosearch_agent"],
             "overrides": ["search.backend=fake", "rollout.max_response_tokens=2000", "rollout.max_prompt_tokens=2000",
                           "trainer.seed=7"]}
    return hydra.utils.instantiate(entry, trainer_config=DictConfigWrap(config=config), server_manager=server,
                                   tokenizer=TOK, processor=None, hf_model_type=None, dataset_cls=RLHFDataset,
                                   data_config=DictConfigWrap(config.data), tools=ToolListWrap([]))


def test_registered_under_its_name_and_built_like_veRL_builds_it():
    assert _agent_loop_registry["zerosearch_agent"]["_target_"] == f"{plugin.__name__}.ZeroSearchAgentLoop"
    assert isinstance(build_loop(FakeServer(search_then_answer)), plugin.ZeroSearchAgentLoop)


def test_veRL_pads_our_output_with_the_observation_masked():
    server = FakeServer(search_then_answer, version=3)
    sample = {**row("Where was Ada born?", ["Marlow"], 5, "u"), "priority": 12}  # the 3rd sample of prompt 2
    out = asyncio.run(build_loop(server).run(dict(VERL_PARAMS), **sample))
    assert out.extra_fields["zs_sample_id"] == "nq-train-5#2"
    (gen1, lp1), (gen2, lp2) = server.replies
    n_obs = len(out.response_ids) - len(gen1) - len(gen2)
    assert out.response_mask == [1] * len(gen1) + [0] * n_obs + [1] * len(gen2)
    assert out.extra_fields["zs_step"] == 3 and out.extra_fields["zs_searches"] == 1.0

    worker = object.__new__(AgentLoopWorker)  # only what _agent_loop_postprocess reads
    worker.rollout_config = trainer_config().actor_rollout_ref.rollout
    worker.tokenizer, worker.processor, worker.reward_loop_worker_handles = TOK, None, None
    worker.distillation_enabled, worker.mm_processor_kwargs = False, {}
    padded = asyncio.run(worker._agent_loop_postprocess(out, validate=False, **sample))
    mask, logprobs = padded.response_mask[0], padded.response_logprobs[0]
    assert mask.shape == (RESPONSE_LEN,) and padded.prompt_ids.shape == (1, PROMPT_LEN)
    expected = torch.zeros(RESPONSE_LEN, dtype=mask.dtype)
    expected[: len(gen1)] = 1
    expected[len(gen1) + n_obs: len(out.response_ids)] = 1
    assert torch.equal(mask, expected)
    assert logprobs[: len(gen1)].tolist() == pytest.approx(lp1)
    assert logprobs[len(gen1) + n_obs: len(out.response_ids)].tolist() == pytest.approx(lp2)
    assert padded.response_ids[0, : len(out.response_ids)].tolist() == out.response_ids


def test_our_agent_loop_yaml_builds_the_loop_as_the_worker_loads_it(monkeypatch):
    # AgentLoopWorker: OmegaConf.load(agent_loop_config_path) -> registry[name] -> hydra.utils.instantiate
    from pathlib import Path

    configs = Path(__file__).resolve().parents[1] / "configs" / "verl"
    monkeypatch.setenv("ZEROSEARCH_CONFIG", str(configs / "zerosearch_sim14b.yaml"))
    (entry,) = OmegaConf.load(configs / "agent_loop.yaml")
    assert entry.name == "zerosearch_agent"
    entry.overrides = ["search.backend=fake"]  # no simulator server in a test
    config = trainer_config()
    loop = hydra.utils.instantiate({k: v for k, v in entry.items() if k != "name"},
                                   trainer_config=DictConfigWrap(config=config),
                                   server_manager=FakeServer(search_then_answer), tokenizer=TOK, processor=None,
                                   hf_model_type=None, dataset_cls=RLHFDataset, data_config=DictConfigWrap(config.data),
                                   tools=ToolListWrap([]))
    assert loop.runner.cfg.rollout.max_response_tokens == 2048 and loop.runner.cfg.curriculum.end == 0.5
    assert loop.runner.step_source == "weights"
