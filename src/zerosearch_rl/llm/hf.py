"""Loading Hugging Face causal LMs the way this machine runs them best."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from zerosearch_rl.distributed import local_rank


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is an error, not a silent CPU run.

    ``cuda`` (and ``auto`` on CUDA) is this process's own GPU, ``LOCAL_RANK`` (under ``torchrun`` every
    process takes one; alone it is GPU 0). An explicit ``cuda:N`` is kept as it is.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for but torch sees no CUDA device; use device=cpu or auto")
    if device == "cuda":
        return torch.device("cuda", local_rank())
    return torch.device(device)


def enable_checkpointing(model: Any) -> None:
    """Gradient (activation) checkpointing, non-reentrant, by whichever name this transformers release uses."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def load_causal_lm(path: str, dtype: str = "float32", device: str = "auto") -> tuple[Any, Any]:
    """(model, tokenizer) from a local directory or an already cached hub name, with SDPA attention
    (``generation.transformers.decoding_attention`` switches CPU decoding to eager, where eager is faster)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path:
        raise ValueError("no model path given: set a local model directory")
    target = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), attn_implementation="sdpa")
    return model.to(target), tokenizer  # type: ignore[arg-type]


def cache_kwarg(model: Any) -> str:
    """The name of the KV-cache argument of ``model.forward``: transformers 5.x renames ``past_key_values`` to
    ``cache``; older releases (and wrappers that take ``**kwargs``) only know the former."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"
