"""Training as separate processes: killed and resumed, and data-parallel under torchrun (gloo on CPU)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from fakes.primed import primed_policy_dir
from zerosearch_rl.demo import asset

pytestmark = pytest.mark.slow

DETERMINISTIC_KEYS = ("reward/", "rollout/", "actor/", "noise/")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("procs")
    born = root / "born.jsonl"
    born.write_text("\n".join(r for r in asset("mini_qa.jsonl").read_text().splitlines() if "Where was" in r) + "\n")
    return primed_policy_dir(str(root)), born, root


def overrides(policy, born, out, *extra):
    return [f"model.policy={policy}", f"data.train_files=[{born}]", f"trainer.output_dir={out}",
            "rollout.max_new_tokens=12", "trainer.lr=1e-2", "trainer.total_steps=4", "trainer.save_every=1",
            "trainer.keep_checkpoints=5", "curriculum.steps=4", "search.backend=fake",
            "algorithm.old_logprobs=recompute", *extra]


def train_cmd(*args):
    return [sys.executable, "-m", "zerosearch_rl", "train", "--config", "configs/smoke.yaml", *args]


def rows(run):
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        out.append({k: v for k, v in r.items() if k == "step" or k.startswith(DETERMINISTIC_KEYS)})
    return out


def weights(folder):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_killed_run_resumes_exactly(setup):
    policy, born, root = setup
    whole, broken = root / "whole", root / "broken"
    subprocess.run(train_cmd(*overrides(policy, born, whole)), check=True, capture_output=True, timeout=600)
    proc = subprocess.Popen(train_cmd(*overrides(policy, born, broken)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    target = broken / "checkpoints" / "step-000001" / "state.pt"
    deadline = time.monotonic() + 600
    while not target.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL  # it really died mid-run
    assert not (broken / "final").exists()
    saved = sorted(p.name for p in (broken / "checkpoints").iterdir() if p.name.startswith("step-"))
    assert saved and saved[-1] < "step-000003"
    subprocess.run(train_cmd(*overrides(policy, born, broken), "--resume"), check=True, capture_output=True,
                   timeout=600)
    assert rows(broken) == rows(whole)  # same prompts, same samples, same updates, no duplicated lines
    assert torch.equal(weights(broken / "final"), weights(whole / "final"))


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), "torchrun")), reason="torchrun not installed")
def test_two_process_ddp_keeps_replicas_identical(setup):
    policy, born, root = setup
    out = root / "ddp"
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "zerosearch_rl", "train", "--config",
           "configs/smoke.yaml", *overrides(policy, born, out, "trainer.total_steps=2", "curriculum.steps=2")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    sums = json.loads((out / "replicas.json").read_text())["parameter_sums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    assert [r["step"] for r in rows(out)] == [0, 1]
    assert not torch.equal(weights(out / "final"), weights(policy))  # and training did move them
