"""Write a world to a folder: both eras' corpora, the QA splits (JSONL and ZeroSearch parquet), the facts.

Files (all byte-identical for the same size and seed):

- ``corpus.jsonl``: era B, the truth the search engine indexes (``{id, title, text}`` rows);
- ``corpus_era_a.jsonl``: era A, the outdated knowledge the base policy is pretrained on;
- ``train.jsonl`` / ``test.jsonl`` and ``train.parquet`` / ``test.parquet``: the questions, sources
  ``single_hop`` and ``two_hop``;
- ``world.json``: size, seed and every fact of both eras, for inspection.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zerosearch_rl.data import write_jsonl, write_zerosearch_parquet
from zerosearch_rl.records import Document
from zerosearch_rl.world.facts import World, generate_world
from zerosearch_rl.world.text import documents, questions

CORPUS = "corpus.jsonl"
CORPUS_ERA_A = "corpus_era_a.jsonl"
FACTS = "world.json"


@dataclass(frozen=True)
class WorldFiles:
    """Where the files of one built world are."""

    root: Path

    @property
    def corpus(self) -> Path:
        return self.root / CORPUS

    @property
    def corpus_era_a(self) -> Path:
        return self.root / CORPUS_ERA_A

    def qa(self, split: str, ext: str = "jsonl") -> Path:
        return self.root / f"{split}.{ext}"

    @property
    def facts(self) -> Path:
        return self.root / FACTS

    def all(self) -> list[Path]:
        qa = [self.qa(split, ext) for split in ("train", "test") for ext in ("jsonl", "parquet")]
        return [self.corpus, self.corpus_era_a, *qa, self.facts]


def write_corpus(docs: Sequence[Document], path: Path) -> Path:
    """Documents as corpus JSONL rows ``{id, title, text}`` (the format of ``search/corpus.py``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps({"id": d.id, "title": d.title, "text": d.text}, ensure_ascii=False) + "\n")
    return path


def _facts_json(world: World) -> str:
    body = {"seed": world.seed, "size": dataclasses.asdict(world.size),
            "entities": {"countries": world.countries, "towns": world.towns, "companies": world.companies,
                         "people": world.people},
            "eras": {era: dataclasses.asdict(f) for era, f in world.eras.items()}}
    return json.dumps(body, indent=1, ensure_ascii=False) + "\n"


def build_world(out: str | Path, size: str = "demo", seed: int = 0) -> WorldFiles:
    """Generate the world of ``size`` from ``seed`` and write every file under ``out``."""
    world = generate_world(size, seed)
    files = WorldFiles(Path(out))
    files.root.mkdir(parents=True, exist_ok=True)
    write_corpus(documents(world, "B"), files.corpus)
    write_corpus(documents(world, "A"), files.corpus_era_a)
    for split, examples in questions(world).items():
        write_jsonl(examples, files.qa(split))
        write_zerosearch_parquet(examples, files.qa(split, "parquet"), split)
    files.facts.write_text(_facts_json(world), encoding="utf-8")
    return files
