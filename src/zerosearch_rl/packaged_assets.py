"""The files shipped inside the package, under ``zerosearch_rl/assets``: the demo's questions and corpus
(``mini_qa.jsonl``, ``mini_corpus.jsonl``) and the tiny world's trained models (``world/``).

Light module: no torch.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def asset(name: str) -> Path:
    """The path of ``name`` (a file or folder) in ``zerosearch_rl/assets``."""
    return Path(str(resources.files("zerosearch_rl") / "assets" / name))
