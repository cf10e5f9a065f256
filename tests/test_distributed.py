"""Data parallelism without a GPU: rank-to-device mapping, where collectives put their tensors, and step-wide
statistics over a real 2-process gloo group."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist

from fakes import ddp_workers
from zerosearch_rl import algorithms as algo
from zerosearch_rl import distributed as par
from zerosearch_rl.config import ConfigError, load_config
from zerosearch_rl.llm.hf import resolve_device
from zerosearch_rl.preflight import require_batches
from zerosearch_rl.trainer import step_means

TORCHRUN_ENV = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999", "RANK": "1", "WORLD_SIZE": "2",
                "LOCAL_RANK": "3"}


@pytest.fixture
def fake_cuda(monkeypatch):
    """A machine that reports CUDA devices (nothing touches one: the calls are recorded)."""
    calls: dict[str, object] = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.setdefault("set_device", d))
    return calls


def test_alone_without_torchrun_no_group_is_started(monkeypatch):
    for key in TORCHRUN_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(dist, "init_process_group", lambda *a, **k: pytest.fail("no group without torchrun"))
    assert par.init_distributed("ddp") == (0, 1, "none")


def test_each_rank_takes_its_own_gpu_before_nccl_starts(monkeypatch, fake_cuda):
    for key, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group",
                        lambda backend, **kw: fake_cuda.update(backend=backend, device_id=kw.get("device_id")))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    assert par.init_distributed("fsdp") == (1, 2, "fsdp")
    assert fake_cuda == {"set_device": torch.device("cuda", 3), "backend": "nccl",
                         "device_id": torch.device("cuda", 3)}


@pytest.mark.parametrize(("asked", "local_rank", "expected"), [
    ("auto", "3", "cuda:3"),
    ("cuda", "3", "cuda:3"),
    ("cuda", None, "cuda:0"),  # not under torchrun: the first GPU
    ("cuda:1", "3", "cuda:1"),  # an explicit index is the user's choice
    ("cpu", "3", "cpu"),
])
def test_models_load_on_the_rank_s_gpu(monkeypatch, fake_cuda, asked, local_rank, expected):
    if local_rank is None:
        monkeypatch.delenv("LOCAL_RANK", raising=False)
    else:
        monkeypatch.setenv("LOCAL_RANK", local_rank)
    assert resolve_device(asked) == torch.device(expected)


@pytest.mark.parametrize(("backend", "expected"), [("nccl", "cuda:2"), ("gloo", "cpu")])
def test_group_device_follows_the_backend(monkeypatch, backend, expected):
    monkeypatch.setattr(dist, "get_backend", lambda *a: backend)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
    assert par.group_device() == torch.device(expected)


class Handed(Exception):
    """Raised by a fake collective once it has seen its tensor (nothing is reduced on the meta device)."""


@pytest.fixture
def nccl_group(monkeypatch):
    """A process group whose device is not the CPU (meta stands in for the GPU): the devices the collectives
    were handed are recorded."""
    seen: list[torch.device] = []

    def collective(tensor, *args, **kwargs):
        seen.append((tensor[0] if isinstance(tensor, list) else tensor).device)
        raise Handed

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda *a: 2)
    monkeypatch.setattr(par, "group_device", lambda: torch.device("meta"))
    monkeypatch.setattr(dist, "all_reduce", collective)
    monkeypatch.setattr(dist, "all_gather", collective)
    return seen


@pytest.mark.parametrize("call", [
    lambda: par.sum_over_ranks(1.0),
    lambda: par.max_over_ranks(1.0),
    lambda: par.replica_sums(torch.nn.Linear(2, 2)),
    lambda: step_means({"reward/mean": [1.0, 0.0]}),
    lambda: algo.reinforce_advantages(algo.AdvantageBatch(torch.ones(2), torch.ones(2, 3),
                                                          reduce_sum=par.all_reduce)),
])
def test_collectives_get_tensors_on_the_group_s_device(nccl_group, call):
    with pytest.raises(Handed):
        call()
    assert nccl_group == [torch.device("meta")]


def test_mini_batches_are_checked_per_process():
    """64 prompts x 5 samples on 8 processes is 40 trajectories each: 16 mini-batches of the whole step's 320
    would be 14 unequal optimizer steps per process."""
    cfg = load_config(None, ["trainer.batch_size=64", "rollout.n_samples=5", "trainer.mini_batches=16"])
    require_batches(cfg, 1)
    with pytest.raises(ConfigError, match=r"mini_batches=16 must divide the 40 trajectories of a step on each of 8 "
                                          r"processes .*valid: 1, 2, 4, 5, 8, 10, 20, 40"):
        require_batches(cfg, 8)
    with pytest.raises(ConfigError, match=r"batch_size=64 prompts cannot be split over 6 processes"):
        require_batches(cfg, 6)
    require_batches(load_config(None, ["trainer.batch_size=64", "rollout.n_samples=5",
                                           "trainer.mini_batches=8"]), 8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_batch_statistics_are_the_whole_step_s(tmp_path):
    """Two gloo processes, each with half the step: REINFORCE's baseline, GAE's whitening and the logged means
    are those of the whole step (as one process holding it all computes them), not of each half."""
    torch.multiprocessing.start_processes(ddp_workers.batch_statistics, args=(2, free_port(), str(tmp_path)),
                                          nprocs=2, start_method="spawn")
    got = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    rewards, mask, values = ddp_workers.whole_step()
    whole = algo.AdvantageBatch(rewards, mask, None, values)
    want_reinforce = algo.reinforce_advantages(whole)[0]
    want_gae = algo.gae_advantages(whole, algo.AdvantageOptions(gamma=0.9, lam=0.8))[0]
    for rank, result in enumerate(got):
        mine = ddp_workers.share(rank, 2)
        width = result["reinforce"].shape[1]
        assert torch.allclose(result["reinforce"], want_reinforce[mine, :width], atol=1e-6)
        assert torch.allclose(result["gae"], want_gae[mine, :width], atol=1e-5)
        assert result["means"] == pytest.approx({"reward/mean": float(rewards.mean()),
                                                 "rollout/turns": float(mask.sum(1).mean())})
    halves = [algo.reinforce_advantages(algo.AdvantageBatch(rewards[ddp_workers.share(r, 2)],
                                                            mask[ddp_workers.share(r, 2)]))[0] for r in range(2)]
    assert not torch.allclose(torch.cat(halves), want_reinforce)  # each half's own baseline would differ
