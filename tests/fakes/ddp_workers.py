"""Functions run by each process of a real 2-process gloo group (``torch.multiprocessing`` spawns them)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

from zerosearch_rl import algorithms as algo
from zerosearch_rl import distributed as par
from zerosearch_rl.trainer import step_means


def whole_step() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rewards [6], a loss mask [6, 7] with rows of different lengths, and values [6, 7]: the step's batch."""
    g = torch.Generator().manual_seed(0)
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.0, 0.0, 0.25])
    lengths = torch.tensor([7, 2, 5, 3, 6, 1])
    mask = (torch.arange(7)[None, :] < lengths[:, None]).float()
    return rewards, mask, torch.randn(6, 7, generator=g)


def share(rank: int, world: int) -> slice:
    n = whole_step()[0].shape[0] // world
    return slice(rank * n, (rank + 1) * n)


def batch_statistics(rank: int, world: int, port: int, out: str) -> None:
    """This process's share of the step: REINFORCE and GAE advantages, and the step's metric means."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    assert par.init_distributed("ddp") == (rank, world, "ddp")
    rewards, mask, values = whole_step()
    mine = share(rank, world)
    batch = algo.AdvantageBatch(rewards[mine], mask[mine], None, values[mine], reduce_sum=par.all_reduce)
    result = {
        "reinforce": algo.reinforce_advantages(batch)[0],
        "gae": algo.gae_advantages(batch, algo.AdvantageOptions(gamma=0.9, lam=0.8))[0],
        "means": step_means({"reward/mean": rewards[mine].tolist(), "rollout/turns": mask[mine].sum(1).tolist()}),
    }
    torch.save(result, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()
