"""Checkpoints that are never half-written (docs/design.md, §Nothing is lost).

A checkpoint folder ``checkpoints/step-000050/`` holds ``policy/`` (Hugging Face format, loadable by
``from_pretrained`` or served by vLLM/sglang), ``state.pt`` (optimizers, RNG, data-loader and trainer
state, the value model when there is one) and ``config.yaml`` (the resolved config). It is written
into a temporary folder and renamed into place, so a run killed mid-write leaves the previous
checkpoint intact and no partial one behind.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from zerosearch_rl.config import Config, save_config
from zerosearch_rl.distributed import load_full_state_dict
from zerosearch_rl.run_folder import checkpoint_dir, list_checkpoints


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: str | Path, step: int, policy: Any, tokenizer: Any, state: dict[str, Any],
                    cfg: Config, keep: int = 2, weights: Mapping[str, Any] | None = None) -> Path:
    """Write checkpoint ``step`` atomically; keep only the newest ``keep`` checkpoints. ``weights`` replaces
    ``policy.state_dict()`` (the gathered full weights of a sharded policy)."""
    final = checkpoint_dir(run_dir, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save_pretrained(tmp / "policy", **({"state_dict": weights} if weights is not None else {}))
    tokenizer.save_pretrained(tmp / "policy")
    torch.save({**state, "rng": rng_state(), "step": step}, tmp / "state.pt")
    save_config(cfg, tmp / "config.yaml")
    if final.exists():  # the same step saved twice (a resumed run): replace it whole
        shutil.rmtree(final)
    tmp.rename(final)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(path: str | Path) -> dict[str, Any]:
    """The ``state.pt`` of a checkpoint (restores the RNG as a side effect)."""
    state = torch.load(Path(path) / "state.pt", map_location="cpu", weights_only=False)
    set_rng_state(state["rng"])
    return state


def load_policy_weights(policy: Any, path: str | Path) -> None:
    """Load a checkpoint's policy weights into an already built policy (full model or LoRA adapters; a sharded
    one too, for a rollback during training)."""
    folder = Path(path) / "policy"
    if hasattr(policy, "load_adapter") and (folder / "adapter_config.json").is_file():
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(policy, load_file(str(folder / "adapter_model.safetensors")))
        return
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=next(policy.parameters()).dtype)
    load_full_state_dict(policy, loaded.state_dict())
