"""ZeroSearch's train_*.sh arguments run the same job here (``zerosearch script``, ``scripts/train_*.sh``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from zerosearch_rl.cli import main
from zerosearch_rl.config import ConfigError, load_config
from zerosearch_rl.original_scripts import KEYS, resolve

# Fact (Alibaba-NLP/ZeroSearch README): the training command, word for word.
README = ("NUM_GPUS_PER_NODE 4 MODEL_PATH Qwen2.5-3B-Instruct DATA_PATH ZeroSearch_dataset TOTAL_STEPS 203 "
          "IP localhost SEARCH_MODE simulate_sft SIMULATION_LLM Simulation_LLM_google_14B START_THRESHOLD 0 "
          "END_THRESHOLD 0.5 SEARCH_ENGINE google MAX_TURNS 5 TOPK 5").split()


def test_the_readme_command_resolves_to_the_script_s_job():
    job = resolve("train_grpo.sh", README)
    cfg = load_config(str(job.preset), list(job.overrides))
    assert job.processes == 4 and job.command()[1:4] == ["--standalone", "--nproc_per_node", "4"]
    assert cfg.model.policy == "Qwen2.5-3B-Instruct" and cfg.algorithm.advantage == "grpo"
    assert cfg.data.train_files == ("ZeroSearch_dataset/train.parquet",)
    assert cfg.data.eval_files == ("ZeroSearch_dataset/test.parquet",)
    assert (cfg.trainer.total_steps, cfg.search.backend, cfg.search.topk) == (203, "simulate_sft", 5)
    assert cfg.simulator.base_urls == ("http://localhost:6001/v1",)  # ask_llm's port
    assert (cfg.curriculum.start, cfg.curriculum.end, cfg.rollout.max_turns) == (0.0, 0.5, 5)
    # the original's EXPERIMENT_NAME names the run folder
    assert cfg.trainer.output_dir == ("runs/Qwen2.5-3B-Instruct_GRPO_simulate_sft_Simulation_LLM_google_14B_0_0.5_"
                                      "google_turns_5")


@pytest.mark.parametrize(("script", "advantage"), [("train_ppo.sh", "gae"), ("train_reinforce.sh", "reinforce")])
def test_each_script_has_its_preset(script, advantage):
    job = resolve(script, README)
    assert load_config(str(job.preset), list(job.overrides)).algorithm.advantage == advantage


@pytest.mark.parametrize(("args", "expected"), [
    (["SEARCH_MODE", "wiki"], {"search.backend": "remote", "search.urls": ("http://localhost:6002",)}),
    (["SEARCH_MODE", "google"], {"search.backend": "serpapi"}),
    (["IP", "10.0.0.1,10.0.0.2"], {"simulator.base_urls": ("http://10.0.0.1:6001/v1", "http://10.0.0.2:6001/v1")}),
    (["NUM_GPUS_PER_NODE", "1"], {}),
])
def test_values_map_to_our_keys(args, expected):
    job = resolve("train_grpo.sh", args)
    cfg = load_config(str(job.preset), list(job.overrides))
    for key, value in expected.items():
        section, name = key.split(".")
        assert getattr(getattr(cfg, section), name) == value
    if args[0] == "NUM_GPUS_PER_NODE":
        assert job.command()[1:3] == ["-m", "zerosearch_rl"]  # one process: no torchrun
        assert cfg.trainer.output_dir == "runs/zerosearch_grpo"  # without the name's parts, the preset's folder


@pytest.mark.parametrize(("script", "args", "message"), [
    ("train_grpo.sh", ["NUM_GPUS", "4"], "unknown key 'NUM_GPUS'; valid: " + ", ".join(KEYS)),
    ("train_grpo.sh", ["MODEL_PATH"], "KEY VALUE pairs"),
    ("train_grpo.sh", ["TOPK", "5", "TOPK", "3"], "TOPK given twice"),
    ("train_grpo.sh", ["TOTAL_STEPS", "lots"], "TOTAL_STEPS 'lots': expected an integer"),
    ("train_grpo.sh", ["SEARCH_MODE", "bing"],
     "SEARCH_MODE 'bing'; valid: simulate_sft, simulate_prompt, google, wiki"),
    ("train_dpo.sh", [], "unknown script 'train_dpo.sh'; valid: train_grpo.sh, train_ppo.sh, train_reinforce.sh"),
    ("train_grpo.sh", ["NUM_GPUS_PER_NODE", "0"], "expected at least 1"),
])
def test_bad_arguments_are_one_line_errors(script, args, message):
    with pytest.raises(ConfigError) as err:
        resolve(script, args)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_dry_run_prints_the_command_and_the_config(capsys):
    assert main(["script", "train_reinforce.sh", *README, "trainer.lr=2e-6", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].startswith("# runs: ") and "--nproc_per_node 4" in out.splitlines()[1]
    assert "advantage: reinforce" in out and "lr: 2.0e-06" in out  # our own overrides apply last
    assert main(["script", "train_grpo.sh", "GPUS", "4"]) == 2
    assert capsys.readouterr().err.startswith("zerosearch: error: unknown key 'GPUS'")


def test_the_shell_shim_takes_the_original_s_arguments():
    done = subprocess.run(["bash", "scripts/train_ppo.sh", *README, "--dry-run"], capture_output=True, text=True,
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "advantage: gae" in done.stdout and "Qwen2.5-3B-Instruct_PPO_simulate_sft" in done.stdout
