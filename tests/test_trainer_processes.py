"""Training as separate processes: killed and resumed, and data-parallel under torchrun (gloo on CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from fakes.primed import primed_policy_dir
from zerosearch_rl.packaged_assets import asset

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


TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
needs_torchrun = pytest.mark.skipif(not os.path.exists(TORCHRUN), reason="torchrun not installed in this venv")


def torchrun_train(policy, born, out, *extra):
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "zerosearch_rl", "train", "--config",
           "configs/smoke.yaml", *overrides(policy, born, out, "trainer.total_steps=2", "curriculum.steps=2", *extra)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@needs_torchrun
def test_two_process_ddp_keeps_replicas_identical(setup):
    policy, born, root = setup
    out = torchrun_train(policy, born, root / "ddp")
    sums = json.loads((out / "replicas.json").read_text())["parameter_sums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    assert [r["step"] for r in rows(out)] == [0, 1]
    assert not torch.equal(weights(out / "final"), weights(policy))  # and training did move them


@needs_torchrun
def test_two_process_fsdp_matches_ddp(setup):
    """Sharding changes where the weights live, not the math: one PPO step under FSDP (sharded policy,
    reference and critic; sampling from an unsharded copy) equals the DDP step up to float rounding.
    (One step, and no KL term: Adam's first update is lr * sign(gradient), so a gradient that is rounding
    noise, as the KL's is at the start where policy and reference agree, flips its parameter's update at
    random; a second step would then sample from slightly different weights and the runs would drift
    apart for a reason that is not FSDP's.)"""
    policy, born, root = setup
    # the entropy bonus gives every parameter a real gradient even when no sample earns a reward
    ppo = ("algorithm.advantage=gae", "algorithm.kl_coef=0", "algorithm.entropy_coef=0.01", "trainer.mini_batches=2",
           "trainer.total_steps=1", "curriculum.steps=1")
    ddp = torchrun_train(policy, born, root / "ddp-gae", "trainer.strategy=ddp", *ppo)
    fsdp = torchrun_train(policy, born, root / "fsdp-gae", "trainer.strategy=fsdp", *ppo)
    assert not (fsdp / "replicas.json").exists()
    start, after_ddp, after_fsdp = weights(policy), weights(ddp / "final"), weights(fsdp / "final")
    moved = (after_ddp - start).abs() > 1e-3
    assert float(moved.float().mean()) > 0.5  # the step moved most parameters
    differ = (after_fsdp - after_ddp).abs() > 1e-5
    assert float(differ.float().mean()) < 1e-3, f"{int(differ.sum())} of {differ.numel()} parameters differ"
    for a, b in zip(rows(fsdp), rows(ddp), strict=True):  # same samples, same rewards, same losses
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-4 * (1 + abs(b[k])) for k in a), (a, b)


@needs_torchrun
def test_mini_batches_that_do_not_split_per_process_are_refused(setup):
    """8 trajectories per step divide into 8 mini-batches, but each of 2 processes holds 4: refused before any
    model loads, naming the per-process count (it used to run with unequal optimizer steps)."""
    policy, born, root = setup
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "zerosearch_rl", "train", "--config",
           "configs/smoke.yaml", *overrides(policy, born, root / "uneven", "trainer.batch_size=2",
                                            "rollout.n_samples=4", "trainer.mini_batches=8")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "trainer.mini_batches=8 must divide the 4 trajectories of a step on each of 2 processes" in done.stderr
    assert not (root / "uneven" / "metrics.jsonl").exists()


@needs_torchrun
def test_gpu_check_script_runs_on_the_cpu():
    """scripts/gpu_check.py (the NCCL check for a GPU machine) runs the same two steps with gloo here."""
    done = subprocess.run([sys.executable, "scripts/gpu_check.py", "--device", "cpu", "--processes", "2"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "backend gloo" in lines[0] and lines[-1] == "OK"
    assert [line.split()[0] for line in lines[3:5]] == ["0", "1"]  # one row of phase times per step
