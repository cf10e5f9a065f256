"""Data parallelism for the trainer: process group, DDP or FSDP wrapping, full state dicts, reductions.

Under ``torchrun`` every process rolls out its own slice of the step's prompts and trains on it; the
gradients are averaged by DDP (each process holds the whole model) or by FSDP (FSDP2's
``fully_shard``: each process holds a shard of every parameter, gradient and optimizer state, and a
block's full weights exist only while it runs). With one process nothing is wrapped.

FSDP needs every process to run the same sequence of forward passes, which sampling cannot promise
(sequences end at different lengths on different processes). So under FSDP the policy's samples come
from a separate, unsharded generation copy (or a vLLM engine) that receives the full weights after
every update, the same hand-over an external inference engine gets.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from zerosearch_rl.config import ConfigError

#: The variables of torch's ``env://`` rendezvous: set together by ``torchrun`` (even for one process).
RENDEZVOUS_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE")


def launched_by_torchrun() -> bool:
    return all(v in os.environ for v in RENDEZVOUS_VARIABLES)


def local_rank() -> int:
    """This process's index on its machine (``LOCAL_RANK``, set by ``torchrun``): the GPU it takes."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_distributed(strategy: str) -> tuple[int, int, str]:
    """(rank, world size, strategy in effect: none | ddp | fsdp), starting the process group under torchrun.

    A process started by ``torchrun`` always joins a process group, even alone (``--nproc_per_node 1`` runs
    the multi-GPU code path on one GPU). On CUDA each process takes GPU ``LOCAL_RANK`` before the group
    starts (NCCL binds a communicator to the current device) and the group is NCCL; otherwise gloo.
    """
    if not launched_by_torchrun():
        return 0, 1, "none"
    if not dist.is_initialized():
        if torch.cuda.is_available():
            device = torch.device("cuda", local_rank())
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size(), "fsdp" if strategy == "fsdp" else "ddp"


def group_device() -> torch.device:
    """Where a collective's tensors must live: the current GPU for NCCL (it has no CPU tensors), else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce(tensor: Tensor, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> Tensor:
    """``tensor`` reduced over all processes (itself without a process group), on ``tensor``'s own device."""
    if not dist.is_initialized():
        return tensor
    moved = tensor.detach().to(group_device(), copy=True)
    dist.all_reduce(moved, op=op)
    return moved.to(tensor.device)


def sum_over_ranks(value: float) -> float:
    return float(all_reduce(torch.tensor([value], dtype=torch.float64)).item())


def max_over_ranks(value: float) -> float:
    return float(all_reduce(torch.tensor([value], dtype=torch.float64), dist.ReduceOp.MAX).item())


def _block_classes(model: nn.Module) -> set[str]:
    """Class names of the transformer blocks, as Hugging Face models declare them (``_no_split_modules``)."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    return names


def shard(model: nn.Module) -> nn.Module:
    """FSDP2: shard each transformer block, then the rest (embeddings, head), in place."""
    from torch.distributed.fsdp import fully_shard

    blocks = _block_classes(model)
    if not blocks:
        raise ConfigError(f"trainer.strategy=fsdp: {type(model).__name__} declares no transformer block classes "
                          "(_no_split_modules), so it cannot be sharded block by block; use ddp")
    for module in list(model.modules()):
        if type(module).__name__ in blocks:
            fully_shard(module)
    fully_shard(model)
    return model


def wrap(model: nn.Module, strategy: str) -> nn.Module:
    """The module to run forward/backward through: DDP around ``model``, or ``model`` sharded in place."""
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if strategy == "fsdp":
        return shard(model)
    return model


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def full_state_dict(model: nn.Module, rank0_only: bool = False) -> dict[str, Tensor]:
    """The whole model's weights under their usual names. Sharded models gather them (a collective: every
    process must call it); ``rank0_only`` leaves the other processes with an empty dict and keeps the
    gathered copy on the CPU."""
    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=rank0_only)
    return get_model_state_dict(model, options=options)


def load_full_state_dict(model: nn.Module, state: dict[str, Tensor]) -> None:
    if not is_sharded(model):
        model.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state, whole (gathered from the shards under FSDP: a collective, every process calls)."""
    if not is_sharded(model):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True))


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    if not is_sharded(model):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


@contextmanager
def gradient_sync(module: Any, enabled: bool) -> Iterator[None]:
    """Skip the gradient all-reduce (DDP) or reduce-scatter (FSDP) of micro-batches before the last one."""
    if enabled:
        yield
    elif hasattr(module, "no_sync"):
        with module.no_sync():
            yield
    elif hasattr(module, "set_requires_gradient_sync"):
        module.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            module.set_requires_gradient_sync(True)
    else:
        yield


def replica_sums(model: nn.Module) -> list[float]:
    """Every process's parameter checksum (DDP replicas must agree after each update)."""
    local = torch.tensor([float(sum(p.detach().double().sum() for p in model.parameters()))],
                         dtype=torch.float64, device=group_device())
    gathered = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    return [float(g.item()) for g in gathered]
