"""Loading Hugging Face causal LMs the way this machine runs them best."""

from __future__ import annotations

import inspect
from typing import Any

import torch


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is an error, not a silent CPU run."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA device; use device=cpu or auto")
    return torch.device(device)


def load_causal_lm(path: str, dtype: str = "float32", device: str = "auto") -> tuple[Any, Any]:
    """(model, tokenizer) from a local directory or an already cached hub name, with SDPA attention
    (``generation.decoding_attention`` switches CPU decoding to eager, where eager is faster)."""
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
